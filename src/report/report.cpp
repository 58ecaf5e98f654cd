// Formats the fatal line by hand (no printf, no allocation): the heap may be corrupt when
// these run, so they touch nothing but the stack and write(2).
#include "report/report.hpp"

#include <cstdint>
#include <cstring>

#include "os/os.hpp"

namespace lockbox::report {
namespace {

[[noreturn]] void die(const char* what, const void* address) {
  char line[160];
  std::size_t used = 0;
  auto append = [&](const char* text) {
    std::size_t length = std::strlen(text);
    if (used + length > sizeof line - 20) length = sizeof line - 20 - used;
    std::memcpy(line + used, text, length);
    used += length;
  };
  append("lockbox: fatal: ");
  append(what);
  append(" at 0x");
  char digits[16];
  int count = 0;
  auto value = reinterpret_cast<std::uintptr_t>(address);
  do {
    digits[count++] = "0123456789abcdef"[value & 0xf];
    value >>= 4;
  } while (value != 0);
  while (count > 0) line[used++] = digits[--count];
  line[used++] = '\n';
  os::write_stderr(line, used);
  os::abort_process();
}

}  // namespace

void fatal_double_free(const void* address) { die("double free", address); }
void fatal_invalid_pointer(const void* address) {
  die("pointer not allocated by lockbox", address);
}
void fatal_canary_broken(const void* address) { die("canary broken (heap overflow)", address); }
void fatal_write_after_free(const void* address) { die("write after free", address); }
void fatal_os_failure(const char* operation, const void* address) {
  char what[64] = "kernel refused ";
  std::strncat(what, operation, sizeof what - std::strlen(what) - 1);
  die(what, address);
}

}  // namespace lockbox::report
