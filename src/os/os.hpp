// SPDX-License-Identifier: ISC
// The only door to the kernel: every syscall and /proc read lockbox makes lives behind it.
// Functions return 0 or an errno value (never abort, never touch errno for the caller).
// None is a cancellation point: a thread that another asked to cancel must not end inside
// lockbox, holding a lock that every other thread will wait on for ever (or, in a fatal report,
// end quietly instead of aborting). The C library's open, read, close, write and msync are
// cancellation points, so they are made here as plain system calls.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lockbox::os {

inline constexpr std::size_t kPageSize = 4096;

std::size_t page_size_from_kernel();

// Address space: private anonymous, PROT_NONE, MAP_NORESERVE. Costs no RLIMIT_MEMLOCK
// (unless the application called mlockall(MCL_FUTURE)).
int reserve(std::size_t bytes, void** out);
// Like reserve(), but the start is aligned to `alignment` (a power of two >= page size).
int reserve_aligned(std::size_t bytes, std::size_t alignment, void** out);
int unmap(void* addr, std::size_t bytes);
// Read-write private anonymous memory for lockbox's own metadata (never for secrets).
int map_metadata(std::size_t bytes, void** out);

int protect_none(void* addr, std::size_t bytes);
int protect_read(void* addr, std::size_t bytes);
int protect_read_write(void* addr, std::size_t bytes);

int lock(const void* addr, std::size_t bytes);
int unlock(const void* addr, std::size_t bytes);
// Pages already resident and locked stay locked, and the range is marked lock-on-fault
// (mlock2 MLOCK_ONFAULT, Linux 4.4+). Why: when mprotect makes a locked private range writable
// again, the kernel walks it page by page to populate it (mprotect_fixup), unless it is
// lock-on-fault; that walk was two thirds of the second mprotect of a cached large block.
int mark_lock_on_fault(const void* addr, std::size_t bytes);

// One advice per call: madvise() takes a single advice, never an OR of several.
int advise_dont_dump(void* addr, std::size_t bytes);
int advise_do_dump(void* addr, std::size_t bytes);
int advise_wipe_on_fork(void* addr, std::size_t bytes);
int advise_dont_fork(void* addr, std::size_t bytes);
int advise_discard(void* addr, std::size_t bytes);  // MADV_DONTNEED: contents become zero
// Is any page of [addr, addr + bytes), which must hold nothing (a reservation never committed,
// a guard page), locked in the kernel's account (VM_LOCKED: mlock, mlockall, MAP_LOCKED)? One
// MADV_DONTNEED, which the kernel refuses on locked mappings and which has nothing to discard
// here: the cost does not depend on the process's other mappings.
bool empty_range_is_locked(void* addr, std::size_t bytes);
// MADV_COLD (Linux 5.4+) on pages that may hold data: it only ages them, and the kernel refuses
// it (EINVAL) on a locked mapping (and on hugetlb and PFN mappings, which it never locks
// either). 0: no page of the range is locked; EINVAL: some page is, or the kernel lacks the
// advice (cold_advice_supported() tells); ENOMEM: part of the range is unmapped.
int advise_cold(void* addr, std::size_t bytes);
// Does this kernel know MADV_COLD? Asked once, of a page of lockbox's own that it unlocks first.
bool cold_advice_supported();
// mincore: resident[i] & 1 says whether page i of [addr, addr + pages pages) is in memory.
int resident_pages(void* addr, std::size_t pages, unsigned char* resident);
// The advice a mapping gets before any secret page of it is committed: left out of core dumps
// and wiped in forked children (MADV_WIPEONFORK; on kernels before 4.14, which lack it, left out
// of children instead: MADV_DONTFORK). `absent_in_children`: a memfd_secret mapping, which
// children never get, needs only the first. 0 or an errno value.
int advise_secret_mapping(void* addr, std::size_t bytes, bool absent_in_children);

// memfd_secret(2) (Linux 5.14+): a file whose pages leave the kernel's direct map; O_CLOEXEC.
int memfd_secret_create(int* fd);
// Test hook: make memfd_secret_create fail with `error` (0 restores the real call).
void simulate_memfd_secret_error(int error);
// Test hook: page_size_from_kernel() answers `bytes` (a 16 KiB or 64 KiB page kernel).
void simulate_page_size(std::size_t bytes);
int set_file_size(int fd, std::size_t bytes);
// mmap(MAP_SHARED | MAP_FIXED) of [offset, offset+bytes) of `fd` over `addr`, PROT_NONE.
int map_file_over(void* addr, std::size_t bytes, int fd, std::size_t offset);
void close_file(int fd);
// What a descriptor refers to. An application may close descriptors it does not know (closefrom,
// close_range, a loop over every number) and open its own under the same numbers: a descriptor
// lockbox opened is still its own only while it names the same file.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  bool operator==(const FileIdentity&) const = default;
};
// 0, or an errno value (EBADF: nothing open under that number).
int identify_file(int fd, FileIdentity* identity);
// Maps read-only zero pages over [addr, addr + bytes), which must be unmapped (a hole); never
// replaces a mapping. 0 or an errno value.
int map_zero_placeholder(void* addr, std::size_t bytes);

// RLIMIT_MEMLOCK soft limit in bytes, SIZE_MAX when unlimited.
std::size_t memlock_soft_limit();
// CAP_IPC_LOCK in the effective set: the kernel then ignores RLIMIT_MEMLOCK.
bool has_ipc_lock_capability();

// What the kernel says about a page, from /proc/self/smaps. Its cost grows with the process's
// mappings (tens of ms at 10,000): only for explaining a refusal and on kernels without
// MADV_COLD, never on an allocation, free, trim or reserve path.
struct PageInfo {
  bool mapped = false;
  bool accessible = false;  // not PROT_NONE
  bool locked = false;      // VmFlags "lo": mlock, mlockall or MAP_LOCKED
  bool dont_dump = false;   // VmFlags "dd"
};
// Fills info[i] for the page at page_aligned_start + i * kPageSize, i < count.
int describe_pages(const void* page_aligned_start, std::size_t count, PageInfo* info);

// The first of `count` pages from page_aligned_start that this process cannot read (not
// mapped, or PROT_NONE), or `count` when it can read them all, in *index. The kernel copies one
// byte of each page (process_vm_readv on this process, up to 64 pages a call), so a fault is an
// EFAULT, not a signal: in proportion to the pages, whatever the process's mappings. 0, or an
// errno value when the call is refused (a seccomp filter may: Docker's default profile did
// until 2021, containerd's until 2022); describe_pages can tell then.
int first_unreadable_page(const void* page_aligned_start, std::size_t count, std::size_t* index);
// Test hook: make first_unreadable_page fail with `error`, as a seccomp filter would (0 restores
// the real call).
void simulate_unreadable_probe_error(int error);

// Is every page of [page_aligned_start, + bytes) mapped (whatever its protection)? One
// system call (msync MS_ASYNC, which changes nothing), whatever the range's length.
bool is_mapped(const void* page_aligned_start, std::size_t bytes);
// The machine's memory, in bytes.
std::size_t physical_memory_bytes();

// Environment lookup that ignores the variable in setuid/setgid programs.
const char* secure_environment(const char* name);

// Signals, for the locks whose holders must never be interrupted by a handler that calls
// lockbox (the large heap's, the caller-lock table's, the arena bookkeeping's). block_signals
// blocks every signal of the calling thread and writes the mask it had to `saved` (an opaque
// sigset_t, kSignalMaskBytes long); restore_signals puts it back. Async-signal-safe.
inline constexpr std::size_t kSignalMaskBytes = 128;
struct SignalMask {
  alignas(8) unsigned char bytes[kSignalMaskBytes];
};
void block_signals(SignalMask* saved);
void restore_signals(const SignalMask& saved);

// membarrier(2): a full memory barrier on every thread of the process that is running now, so
// that a thread's plain stores and loads can be ordered against another thread's without a
// locked instruction on the fast path. register_process_barrier() (once, and again in a forked
// child) says whether the kernel offers it; process_barrier() returns 0 or an errno value.
bool register_process_barrier();
int process_barrier();

// Milliseconds of CLOCK_MONOTONIC_COARSE: served by the vDSO, no system call, a few ns; at
// least 1 (0 stays free to mean "not set"). Async-signal-safe.
std::uint64_t coarse_milliseconds();

// Turns deferred cancellation off for the calling thread while it lives, for the calls into
// other libraries that may reach a cancellation point (libsodium's randomness reads getrandom
// or /dev/urandom). A request made meanwhile stays pending for the thread's own next point.
class CancellationOff {
 public:
  CancellationOff();
  ~CancellationOff();
  CancellationOff(const CancellationOff&) = delete;
  CancellationOff& operator=(const CancellationOff&) = delete;

 private:
  int saved_state_;
};

void write_stderr(const char* text, std::size_t length);
[[noreturn]] void abort_process();
void yield_cpu();
// A spin-wait hint (x86 PAUSE, ARM YIELD): the waiting core backs off from the lock's line.
inline void pause_cpu() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  __asm__ __volatile__("yield");
#endif
}
// futex(2), process-private: sleep while *word == expected (returns at once otherwise, on a
// signal, or when woken); wake one sleeper.
void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected);
// The same, but back after `nanoseconds` at the latest (for a waiter nobody will wake).
void futex_wait_for(std::atomic<std::uint32_t>* word, std::uint32_t expected, long nanoseconds);
void futex_wake_one(std::atomic<std::uint32_t>* word);
void futex_wake_all(std::atomic<std::uint32_t>* word);

}  // namespace lockbox::os
