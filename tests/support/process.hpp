// SPDX-License-Identifier: ISC
// Helpers the system tests share: the kernel's view of this process (/proc/self), and
// becoming an ordinary user whose RLIMIT_MEMLOCK really binds.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lockbox_test {

// A field of /proc/self/status given in kB ("VmLck", "VmHWM", ...), in bytes (-1 if unreadable).
long long status_bytes(const char* field);
// "VmLck:" of /proc/self/status, in bytes (-1 if unreadable).
long long vmlck_bytes();
// Number of lines in /proc/self/maps: one per mapping.
std::size_t mapping_count();
// True if every page of the range is in a VMA whose VmFlags say "lo" (/proc/self/smaps).
bool kernel_says_locked(const void* address, std::size_t length);
// True if no page of the range is in a locked VMA.
bool kernel_says_unlocked(const void* address, std::size_t length);
// The protection of the page holding `address` as /proc/self/maps shows it: "---", "r--",
// "rw-", ...; empty if unmapped.
std::string page_protection(const void* address);

// Every readable mapping of the process, as [start, end) ranges.
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> readable_ranges();

// Every mapping of the process, readable or not (but [vvar] and [vsyscall]).
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> all_ranges();

// The address ranges [start, end) of every locked VMA, in ascending order.
std::vector<std::pair<std::uintptr_t, std::uintptr_t>> locked_ranges();

// True if every page of the range is excluded from core dumps (VmFlags "dd").
bool kernel_says_dont_dump(const void* address, std::size_t length);

// mlock / munlock as the application would call them, through the system call itself
// (AddressSanitizer turns the libc functions into no-ops).
int kernel_mlock(const void* address, std::size_t length);
int kernel_munlock(const void* address, std::size_t length);

// Makes this process look like a larger one beside lockbox: 64 KiB of its own memory mlocked
// and 10,000 more mappings (half of each 8 KiB read-only, so that none merge). False if the
// kernel refused either.
bool crowd_the_process();

// Sets RLIMIT_MEMLOCK to `memlock_bytes` (soft and hard), and if root, becomes nobody
// (uid/gid 65534) so that CAP_IPC_LOCK is gone. Returns an empty string, or why it failed;
// it also fails if CAP_IPC_LOCK is still effective afterwards (a test would prove nothing).
std::string become_unprivileged(std::size_t memlock_bytes);

// Redirects stderr into a temporary file until stop_capturing_stderr() returns its text.
void start_capturing_stderr();
std::string stop_capturing_stderr();

}  // namespace lockbox_test
