// SPDX-License-Identifier: ISC
// Every fatal message lockbox can print, in one place. Each writes exactly one line,
// "lockbox: fatal: <what> in <operation> at 0x<addr>", to stderr and aborts: a secure
// allocator fails closed.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lockbox::report {

// The public call during which a fault was found: the line names it, so a report from
// lockbox_realloc is not mistaken for one from lockbox_free.
enum class Operation : std::uint8_t {
  kMalloc,
  kCalloc,
  kRealloc,
  kAlignedAlloc,
  kFree,
  kUsableSize,
  kStrdup,
  kGuardedAlloc,
  kSeal,
  kSealedOpen,
  kSealedOpenRw,
  kSealedClose,
  kSealedSize,
  kSealedFree,
  kSealedRekey,
};

const char* operation_name(Operation operation);

[[noreturn]] void fatal_double_free(Operation operation, const void* address);
[[noreturn]] void fatal_invalid_pointer(Operation operation, const void* address);
[[noreturn]] void fatal_canary_broken(Operation operation, const void* address);
// A write before the object (the leading canary of a large block or guarded secret changed).
[[noreturn]] void fatal_underflow(Operation operation, const void* address);
// A write into the slack after a slot's canary (bytes that must stay zero).
[[noreturn]] void fatal_slack_written(Operation operation, const void* address);
[[noreturn]] void fatal_write_after_free(Operation operation, const void* address);
// A sealed box whose ciphertext (or the bytes bound to it) fails authentication.
[[noreturn]] void fatal_sealed_tampered(Operation operation, const void* address);
// A live lockbox allocation passed as a sealed box that is not one (or a box already freed).
[[noreturn]] void fatal_not_a_sealed_box(Operation operation, const void* address);
// lockbox_sealed_close of a view that is not the box's open view.
[[noreturn]] void fatal_view_not_open(Operation operation, const void* address);
// The kernel refused an operation that cannot fail on memory lockbox owns (munlock, mprotect
// of its own pages): the state is no longer what lockbox believes, so stop.
[[noreturn]] void fatal_os_failure(const char* operation, const void* address);
// A call that is not async-signal-safe (lockbox.h lists those that are) was made from a signal
// handler that interrupted lockbox on the same thread: it could only deadlock or corrupt.
[[noreturn]] void fatal_not_async_signal_safe(const char* function);
// lockbox cannot run here at all (found at start-up): one line, no address.
[[noreturn]] void fatal_unsupported_page_size(std::size_t page_size, std::size_t built_for);

}  // namespace lockbox::report
