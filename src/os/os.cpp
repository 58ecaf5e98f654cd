// SPDX-License-Identifier: ISC
// The only file that talks to the kernel: mmap, mprotect, mlock, madvise, rlimits and /proc.
// Everything returns an errno value so that policy (fail, fall back, abort) stays with callers.
#include "os/os.hpp"

#include <linux/capability.h>
#include <linux/futex.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#ifndef SYS_memfd_secret
#define SYS_memfd_secret 447  // x86_64, Linux 5.14
#endif
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fcntl.h>

namespace lockbox::os {
namespace {

int result_of(int rc) { return rc == 0 ? 0 : errno; }

}  // namespace

namespace {
std::atomic<std::size_t> g_simulated_page_size{0};
}

std::size_t page_size_from_kernel() {
  if (std::size_t simulated = g_simulated_page_size.load(std::memory_order_relaxed)) {
    return simulated;
  }
  return static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
}

void simulate_page_size(std::size_t bytes) {
  g_simulated_page_size.store(bytes, std::memory_order_relaxed);
}

int reserve(std::size_t bytes, void** out) {
  void* p = ::mmap(nullptr, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return errno;
  *out = p;
  return 0;
}

int reserve_aligned(std::size_t bytes, std::size_t alignment, void** out) {
  void* raw = nullptr;
  int err = reserve(bytes + alignment, &raw);
  if (err == 0) {
    auto start = reinterpret_cast<std::uintptr_t>(raw);
    std::uintptr_t aligned = (start + alignment - 1) & ~(std::uintptr_t{alignment} - 1);
    std::size_t head = aligned - start;
    std::size_t tail = alignment - head;
    if (head != 0) ::munmap(raw, head);
    if (tail != 0) ::munmap(reinterpret_cast<void*>(aligned + bytes), tail);
    *out = reinterpret_cast<void*>(aligned);
    return 0;
  }
  // Under mlockall(MCL_FUTURE) every mapping is locked (and charged) at mmap time, so the
  // over-reservation can fail with EAGAIN where the exact size fits: ask for exactly `bytes`
  // at aligned addresses instead.
  if (reserve(bytes, &raw) != 0) return err;
  auto start = reinterpret_cast<std::uintptr_t>(raw);
  if ((start & (alignment - 1)) == 0) {
    *out = raw;
    return 0;
  }
  ::munmap(raw, bytes);
  std::uintptr_t hint = (start + alignment - 1) & ~(std::uintptr_t{alignment} - 1);
  for (int attempt = 0; attempt < 16; ++attempt, hint += alignment) {
    void* p = ::mmap(reinterpret_cast<void*>(hint), bytes, PROT_NONE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
    if (p == MAP_FAILED) continue;
    if (p == reinterpret_cast<void*>(hint)) {
      *out = p;
      return 0;
    }
    ::munmap(p, bytes);  // an old kernel that treats the flag as a mere hint
  }
  return err;
}

int map_metadata(std::size_t bytes, void** out) {
  void* p = ::mmap(nullptr, bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return errno;
  *out = p;
  return 0;
}

int unmap(void* addr, std::size_t bytes) { return result_of(::munmap(addr, bytes)); }

int protect_none(void* addr, std::size_t bytes) {
  return result_of(::mprotect(addr, bytes, PROT_NONE));
}
int protect_read(void* addr, std::size_t bytes) {
  return result_of(::mprotect(addr, bytes, PROT_READ));
}
int protect_read_write(void* addr, std::size_t bytes) {
  return result_of(::mprotect(addr, bytes, PROT_READ | PROT_WRITE));
}

// Raw system calls: AddressSanitizer intercepts mlock()/munlock() and turns them into no-ops,
// which would make every sanitizer run lie about what is locked.
int lock(const void* addr, std::size_t bytes) {
  return result_of(static_cast<int>(::syscall(SYS_mlock, addr, bytes)));
}
int unlock(const void* addr, std::size_t bytes) {
  return result_of(static_cast<int>(::syscall(SYS_munlock, addr, bytes)));
}
int mark_lock_on_fault(const void* addr, std::size_t bytes) {
  return result_of(static_cast<int>(::syscall(SYS_mlock2, addr, bytes, MLOCK_ONFAULT)));
}

int advise_dont_dump(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_DONTDUMP));
}
int advise_do_dump(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_DODUMP));
}
int advise_wipe_on_fork(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_WIPEONFORK));
}
int advise_dont_fork(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_DONTFORK));
}
int advise_discard(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_DONTNEED));
}

bool empty_range_is_locked(void* addr, std::size_t bytes) {
  return ::madvise(addr, bytes, MADV_DONTNEED) != 0 && errno == EINVAL;
}

int advise_cold(void* addr, std::size_t bytes) {
  return result_of(::madvise(addr, bytes, MADV_COLD));
}

bool cold_advice_supported() {
  // 0 not asked yet, 1 yes, 2 no. A fresh page of lockbox's own, unlocked in case mlockall
  // (MCL_FUTURE) locked it at birth, answers for the kernel.
  static std::atomic<int> answer{0};
  int known = answer.load(std::memory_order_relaxed);
  if (known != 0) return known == 1;
  void* probe = nullptr;
  if (reserve(kPageSize, &probe) != 0) return false;  // ask again next time
  unlock(probe, kPageSize);
  bool supported = advise_cold(probe, kPageSize) == 0;
  unmap(probe, kPageSize);
  answer.store(supported ? 1 : 2, std::memory_order_relaxed);
  return supported;
}

int resident_pages(void* addr, std::size_t pages, unsigned char* resident) {
  return result_of(::mincore(addr, pages * kPageSize, resident));
}

int advise_secret_mapping(void* addr, std::size_t bytes, bool absent_in_children) {
  if (int err = advise_dont_dump(addr, bytes)) return err;
  if (absent_in_children) return 0;
  int err = advise_wipe_on_fork(addr, bytes);
  return err == EINVAL ? advise_dont_fork(addr, bytes) : err;
}

namespace {
std::atomic<int> g_simulated_memfd_secret_error{0};
}

int memfd_secret_create(int* fd) {
  if (int simulated = g_simulated_memfd_secret_error.load(std::memory_order_relaxed))
    return simulated;
  long result = ::syscall(SYS_memfd_secret, O_CLOEXEC);
  if (result < 0) return errno;
  *fd = static_cast<int>(result);
  return 0;
}

void simulate_memfd_secret_error(int error) {
  g_simulated_memfd_secret_error.store(error, std::memory_order_relaxed);
}

int set_file_size(int fd, std::size_t bytes) {
  return result_of(::ftruncate(fd, static_cast<off_t>(bytes)));
}

int map_file_over(void* addr, std::size_t bytes, int fd, std::size_t offset) {
  void* p = ::mmap(addr, bytes, PROT_NONE, MAP_SHARED | MAP_FIXED, fd, static_cast<off_t>(offset));
  return p == MAP_FAILED ? errno : 0;
}

void close_file(int fd) { ::syscall(SYS_close, fd); }

int identify_file(int fd, FileIdentity* identity) {
  struct stat status {};
  if (::syscall(SYS_fstat, fd, &status) != 0) return errno;
  identity->device = static_cast<std::uint64_t>(status.st_dev);
  identity->inode = static_cast<std::uint64_t>(status.st_ino);
  return 0;
}

int map_zero_placeholder(void* addr, std::size_t bytes) {
  void* p = ::mmap(addr, bytes, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1,
                   0);
  if (p == MAP_FAILED) return errno;
  if (p != addr) {  // a kernel before 4.17 takes MAP_FIXED_NOREPLACE as a hint
    ::munmap(p, bytes);
    return EEXIST;
  }
  return 0;
}

std::size_t memlock_soft_limit() {
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_MEMLOCK, &limit) != 0) return 0;
  if (limit.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  return static_cast<std::size_t>(limit.rlim_cur);
}

bool has_ipc_lock_capability() {
  __user_cap_header_struct header{};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  header.version = _LINUX_CAPABILITY_VERSION_3;
  header.pid = 0;
  if (::syscall(SYS_capget, &header, data) != 0) return false;
  return (data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))) != 0;
}

int describe_pages(const void* page_aligned_start, std::size_t count, PageInfo* info) {
  // smaps is read in chunks: it can be large, and this must not allocate.
  auto first = reinterpret_cast<std::uintptr_t>(page_aligned_start);
  std::uintptr_t last = first + count * kPageSize;
  for (std::size_t i = 0; i < count; ++i) info[i] = PageInfo{};
  long opened = ::syscall(SYS_openat, AT_FDCWD, "/proc/self/smaps", O_RDONLY | O_CLOEXEC);
  if (opened < 0) return errno;
  int fd = static_cast<int>(opened);
  char chunk[4096];
  char line[512];
  std::size_t line_length = 0;
  std::uintptr_t vma_start = 0, vma_end = 0;
  bool overlapping = false, accessible = false;
  for (;;) {
    long got = ::syscall(SYS_read, fd, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    for (long i = 0; i < got; ++i) {
      if (chunk[i] != '\n') {
        if (line_length + 1 < sizeof line) line[line_length++] = chunk[i];
        continue;
      }
      line[line_length] = '\0';
      line_length = 0;
      unsigned long start = 0, end = 0;
      char perms[5] = {};
      if (std::sscanf(line, "%lx-%lx %4s", &start, &end, perms) == 3) {
        vma_start = start;
        vma_end = end;
        overlapping = vma_start < last && vma_end > first;
        accessible = std::strncmp(perms, "---", 3) != 0;
      } else if (overlapping && std::strncmp(line, "VmFlags:", 8) == 0) {
        bool locked = std::strstr(line, " lo") != nullptr;
        bool dont_dump = std::strstr(line, " dd") != nullptr;
        std::uintptr_t from = vma_start > first ? vma_start : first;
        std::uintptr_t to = vma_end < last ? vma_end : last;
        for (std::uintptr_t page = from; page < to; page += kPageSize) {
          PageInfo& entry = info[(page - first) / kPageSize];
          entry.mapped = true;
          entry.accessible = accessible;
          entry.locked = locked;
          entry.dont_dump = dont_dump;
        }
        overlapping = false;
      }
    }
  }
  close_file(fd);
  return 0;
}

namespace {
std::atomic<int> g_simulated_probe_error{0};
}

void simulate_unreadable_probe_error(int error) {
  g_simulated_probe_error.store(error, std::memory_order_relaxed);
}

int first_unreadable_page(const void* page_aligned_start, std::size_t count, std::size_t* index) {
  *index = 0;
  if (int simulated = g_simulated_probe_error.load(std::memory_order_relaxed)) return simulated;
  constexpr std::size_t kBatch = 64;
  unsigned char copied_bytes[kBatch];
  iovec local{copied_bytes, kBatch};
  iovec remote[kBatch];
  auto first = reinterpret_cast<std::uintptr_t>(page_aligned_start);
  long self = ::syscall(SYS_getpid);
  int err = 0;
  std::size_t done = 0;
  while (done < count) {
    std::size_t batch = count - done < kBatch ? count - done : kBatch;
    for (std::size_t i = 0; i < batch; ++i) {
      remote[i] = {reinterpret_cast<void*>(first + (done + i) * kPageSize), 1};
    }
    local.iov_len = batch;
    // A partial copy stops at the first page it could not read; none at all is EFAULT.
    long copied = ::syscall(SYS_process_vm_readv, self, &local, 1, remote, batch, 0);
    if (copied < 0 && errno != EFAULT) {
      err = errno;
      break;
    }
    if (copied < 0) copied = 0;
    done += static_cast<std::size_t>(copied);
    if (static_cast<std::size_t>(copied) < batch) break;
  }
  // The bytes are the application's (maybe the very secret it asked to lock).
  ::explicit_bzero(copied_bytes, sizeof copied_bytes);
  *index = done;
  return err;
}

bool is_mapped(const void* page_aligned_start, std::size_t bytes) {
  return ::syscall(SYS_msync, page_aligned_start, bytes, MS_ASYNC) == 0;
}

std::size_t physical_memory_bytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES);
  return pages > 0 ? static_cast<std::size_t>(pages) * kPageSize : SIZE_MAX;
}

const char* secure_environment(const char* name) { return ::secure_getenv(name); }

static_assert(sizeof(sigset_t) <= kSignalMaskBytes, "SignalMask must hold a sigset_t");

void block_signals(SignalMask* saved) {
  sigset_t all;
  ::sigfillset(&all);
  ::pthread_sigmask(SIG_BLOCK, &all, reinterpret_cast<sigset_t*>(saved->bytes));
}

void restore_signals(const SignalMask& saved) {
  ::pthread_sigmask(SIG_SETMASK, reinterpret_cast<const sigset_t*>(saved.bytes), nullptr);
}

bool register_process_barrier() {
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0;
}

int process_barrier() {
  return ::syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0) == 0 ? 0 : errno;
}

void write_stderr(const char* text, std::size_t length) {
  while (length > 0) {
    long wrote = ::syscall(SYS_write, STDERR_FILENO, text, length);
    if (wrote < 0 && errno == EINTR) continue;
    if (wrote <= 0) return;
    text += wrote;
    length -= static_cast<std::size_t>(wrote);
  }
}

CancellationOff::CancellationOff() : saved_state_(PTHREAD_CANCEL_ENABLE) {
  ::pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &saved_state_);
}

CancellationOff::~CancellationOff() { ::pthread_setcancelstate(saved_state_, nullptr); }

void abort_process() { std::abort(); }

void yield_cpu() { ::sched_yield(); }

std::uint64_t coarse_milliseconds() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC_COARSE, &now);
  std::uint64_t ms = static_cast<std::uint64_t>(now.tv_sec) * 1000 +
                     static_cast<std::uint64_t>(now.tv_nsec) / 1000000;
  return ms == 0 ? 1 : ms;
}

static_assert(sizeof(std::atomic<std::uint32_t>) == sizeof(std::uint32_t) &&
                  std::atomic<std::uint32_t>::is_always_lock_free,
              "a futex word is a plain 32-bit word");

void futex_wait(std::atomic<std::uint32_t>* word, std::uint32_t expected) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
            nullptr, nullptr, 0);
}

void futex_wait_for(std::atomic<std::uint32_t>* word, std::uint32_t expected, long nanoseconds) {
  struct timespec timeout {
    nanoseconds / 1000000000, nanoseconds % 1000000000
  };
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected,
            &timeout, nullptr, 0);
}

void futex_wake_all(std::atomic<std::uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX,
            nullptr, nullptr, 0);
}

void futex_wake_one(std::atomic<std::uint32_t>* word) {
  ::syscall(SYS_futex, reinterpret_cast<std::uint32_t*>(word), FUTEX_WAKE_PRIVATE, 1, nullptr,
            nullptr, 0);
}

}  // namespace lockbox::os
