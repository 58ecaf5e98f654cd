// Every fatal message lockbox can print, in one place. Each writes exactly one line,
// "lockbox: fatal: <what> at 0x<addr>", to stderr and aborts: a secure allocator fails closed.
#pragma once

namespace lockbox::report {

[[noreturn]] void fatal_double_free(const void* address);
[[noreturn]] void fatal_invalid_pointer(const void* address);
[[noreturn]] void fatal_canary_broken(const void* address);
[[noreturn]] void fatal_write_after_free(const void* address);
// The kernel refused an operation that cannot fail on memory lockbox owns (munlock, mprotect
// of its own pages): the state is no longer what lockbox believes, so stop.
[[noreturn]] void fatal_os_failure(const char* operation, const void* address);

}  // namespace lockbox::report
