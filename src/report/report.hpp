// Every fatal message lockbox can print, in one place. Each writes exactly one line,
// "lockbox: fatal: <what> in <operation> at 0x<addr>", to stderr and aborts: a secure
// allocator fails closed.
#pragma once

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
// The kernel refused an operation that cannot fail on memory lockbox owns (munlock, mprotect
// of its own pages): the state is no longer what lockbox believes, so stop.
[[noreturn]] void fatal_os_failure(const char* operation, const void* address);

}  // namespace lockbox::report
