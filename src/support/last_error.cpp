// A thread-local buffer: no allocation, so it works when the heap is what failed.
#include "support/last_error.hpp"

#include <cstdarg>
#include <cstdio>

namespace lockbox {
namespace {
thread_local char g_last_error[512] = "no error";
}

void set_last_error(const char* format, ...) {
  va_list args;
  va_start(args, format);
  std::vsnprintf(g_last_error, sizeof g_last_error, format, args);
  va_end(args);
}

const char* last_error() { return g_last_error; }

}  // namespace lockbox
