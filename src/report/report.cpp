// SPDX-License-Identifier: ISC
// Formats the fatal line by hand (no printf, no allocation): the heap may be corrupt when
// these run, so they touch nothing but the stack and write(2).
#include "report/report.hpp"

#include <cstdint>
#include <cstring>

#include "os/os.hpp"

namespace lockbox::report {
namespace {

[[noreturn]] void die(const char* what, const char* operation, const void* address,
                      bool with_address = true) {
  char line[160];
  std::size_t used = 0;
  auto append = [&](const char* text) {
    std::size_t length = std::strlen(text);
    if (used + length > sizeof line - 20) length = sizeof line - 20 - used;
    std::memcpy(line + used, text, length);
    used += length;
  };
  auto append_hex = [&](std::uintptr_t value) {
    char digits[16];
    int count = 0;
    do {
      digits[count++] = "0123456789abcdef"[value & 0xf];
      value >>= 4;
    } while (value != 0);
    while (count > 0) line[used++] = digits[--count];
  };
  append("lockbox: fatal: ");
  append(what);
  if (operation != nullptr) {
    append(" in ");
    append(operation);
  }
  if (with_address) {
    append(" at 0x");
    append_hex(reinterpret_cast<std::uintptr_t>(address));
  }
  line[used++] = '\n';
  os::write_stderr(line, used);
  os::abort_process();
}

}  // namespace

const char* operation_name(Operation operation) {
  switch (operation) {
    case Operation::kMalloc:
      return "lockbox_malloc";
    case Operation::kCalloc:
      return "lockbox_calloc";
    case Operation::kRealloc:
      return "lockbox_realloc";
    case Operation::kAlignedAlloc:
      return "lockbox_aligned_alloc";
    case Operation::kFree:
      return "lockbox_free";
    case Operation::kUsableSize:
      return "lockbox_usable_size";
    case Operation::kStrdup:
      return "lockbox_strdup";
    case Operation::kGuardedAlloc:
      return "lockbox_guarded_alloc";
    case Operation::kSeal:
      return "lockbox_seal";
    case Operation::kSealedOpen:
      return "lockbox_sealed_open";
    case Operation::kSealedOpenRw:
      return "lockbox_sealed_open_rw";
    case Operation::kSealedClose:
      return "lockbox_sealed_close";
    case Operation::kSealedSize:
      return "lockbox_sealed_size";
    case Operation::kSealedFree:
      return "lockbox_sealed_free";
    case Operation::kSealedRekey:
      return "lockbox_sealed_rekey";
  }
  return "lockbox";
}

void fatal_double_free(Operation operation, const void* address) {
  die("double free", operation_name(operation), address);
}
void fatal_invalid_pointer(Operation operation, const void* address) {
  die("pointer not allocated by lockbox", operation_name(operation), address);
}
void fatal_canary_broken(Operation operation, const void* address) {
  die("canary broken (heap overflow)", operation_name(operation), address);
}
void fatal_underflow(Operation operation, const void* address) {
  die("canary before the object broken (heap underflow)", operation_name(operation), address);
}
void fatal_slack_written(Operation operation, const void* address) {
  die("slack after the canary written (heap overflow)", operation_name(operation), address);
}
void fatal_write_after_free(Operation operation, const void* address) {
  die("write after free", operation_name(operation), address);
}
void fatal_sealed_tampered(Operation operation, const void* address) {
  die("sealed box tampered with (authentication failed)", operation_name(operation), address);
}
void fatal_not_a_sealed_box(Operation operation, const void* address) {
  die("not a live sealed box", operation_name(operation), address);
}
void fatal_view_not_open(Operation operation, const void* address) {
  die("view is not open on this sealed box", operation_name(operation), address);
}
void fatal_unsupported_page_size(std::size_t page_size, std::size_t built_for) {
  // Decimal by hand: no printf here either.
  auto decimal = [](std::size_t value, char* out) {
    char digits[24];
    int count = 0;
    do {
      digits[count++] = static_cast<char>('0' + value % 10);
      value /= 10;
    } while (value != 0);
    int used = 0;
    while (count > 0) out[used++] = digits[--count];
    out[used] = '\0';
  };
  char kernel[24], ours[24];
  decimal(page_size, kernel);
  decimal(built_for, ours);
  char what[120] = "this kernel's pages are ";
  std::strcat(what, kernel);
  std::strcat(what, " bytes; lockbox is built for ");
  std::strcat(what, ours);
  std::strcat(what, "-byte pages");
  die(what, nullptr, nullptr, false);
}

void fatal_not_async_signal_safe(const char* function) {
  die("called from a signal handler that interrupted lockbox (not async-signal-safe)", function,
      nullptr, false);
}

void fatal_os_failure(const char* operation, const void* address) {
  char what[64] = "kernel refused ";
  std::strncat(what, operation, sizeof what - std::strlen(what) - 1);
  die(what, nullptr, address);
}

}  // namespace lockbox::report
