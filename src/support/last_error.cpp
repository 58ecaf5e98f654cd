// SPDX-License-Identifier: ISC
// This thread's last failure. The message lives in a buffer of the thread's own, allocated at
// its first failure; only a pointer is thread-local. A 512-byte thread_local array would put the
// library's whole TLS block past the room glibc keeps for libraries loaded with dlopen (its
// initial-exec variables, the thread-cache pointer, make the block static): dlopen and Python's
// ctypes would fail with "cannot allocate memory in static TLS block".
#include "support/last_error.hpp"

#include <cstdarg>
#include <cstdio>

#include "support/metadata.hpp"
#include "support/thread_exit.hpp"

namespace lockbox {
namespace {

constexpr std::size_t kMessageBytes = 512;
// A page of lockbox's bookkeeping memory, not the C library's heap (a failing call in a signal
// handler must not call malloc) nor lockbox's secret heap (which may be what failed).
__attribute__((tls_model("initial-exec"))) thread_local char* t_message = nullptr;
// A failure happened, with no memory to describe it.
__attribute__((tls_model("initial-exec"))) thread_local bool t_message_lost = false;

}  // namespace

void release_last_error_message() {
  if (t_message != nullptr) metadata::unmap(t_message, kMessageBytes);
  t_message = nullptr;
}

void set_last_error(const char* format, ...) {
  if (t_message == nullptr) {
    t_message = static_cast<char*>(metadata::map(kMessageBytes));
    thread_exit::arm();  // unmapped again when the thread exits
    if (t_message == nullptr) {
      t_message_lost = true;
      return;
    }
  }
  t_message_lost = false;
  va_list args;
  va_start(args, format);
  std::vsnprintf(t_message, kMessageBytes, format, args);
  va_end(args);
}

const char* last_error() {
  if (t_message_lost) return "lockbox: an error occurred, and there was no memory to describe it";
  return t_message != nullptr ? t_message : "no error";
}

}  // namespace lockbox
