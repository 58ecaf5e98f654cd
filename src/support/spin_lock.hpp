// A test-and-test-and-set lock for the short critical sections of the allocator: cheaper than
// a futex mutex when uncontended, and it yields the CPU when a holder is slow.
#pragma once

#include <atomic>
#include <cstddef>

#include "os/os.hpp"

namespace lockbox {

// What two threads' hot data must not share: shards and thread caches start on a line of their
// own, so that one thread's counters never bounce another's lock or bins between the cores.
inline constexpr std::size_t kCacheLine = 64;

class SpinLock {
 public:
  void lock() {
    for (unsigned spins = 0;; ++spins) {
      if (!held_.exchange(true, std::memory_order_acquire)) return;
      while (held_.load(std::memory_order_relaxed)) {
        if (++spins > 64) {
          os::yield_cpu();
          spins = 0;
        }
      }
    }
  }
  bool try_lock() { return !held_.exchange(true, std::memory_order_acquire); }
  void unlock() { held_.store(false, std::memory_order_release); }
  // After fork() only the calling thread survives: whatever other threads held is void.
  void reset_after_fork() { held_.store(false, std::memory_order_relaxed); }

 private:
  std::atomic<bool> held_{false};
};

class SpinLockGuard {
 public:
  explicit SpinLockGuard(SpinLock& lock) : lock_(lock) { lock_.lock(); }
  ~SpinLockGuard() { lock_.unlock(); }
  SpinLockGuard(const SpinLockGuard&) = delete;
  SpinLockGuard& operator=(const SpinLockGuard&) = delete;

 private:
  SpinLock& lock_;
};

}  // namespace lockbox
