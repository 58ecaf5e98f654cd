// SPDX-License-Identifier: ISC
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

// A spin lock whose holder runs with every signal blocked, for the locks that lockbox_free and
// lockbox_malloc take even when a signal handler calls them on a thread that was inside lockbox
// (the large heap's and the caller-lock table's), and for the list of thread caches, which a
// handler's call may take when its thread was outside: a handler never interrupts a holder, so
// it can never wait for a lock its own thread holds. Blocking costs two system calls per hold, which
// only paths that make system calls anyway can afford: the shards' locks are plain SpinLocks,
// and a handler never takes them on a thread that is inside lockbox (heap/inside.hpp).
class MaskedSpinLock {
 public:
  void lock() {
    os::SignalMask saved;
    os::block_signals(&saved);
    lock_.lock();
    saved_ = saved;
  }
  void unlock() {
    os::SignalMask saved = saved_;
    lock_.unlock();
    os::restore_signals(saved);
  }
  // In a forked child whose fork held this lock: the fork handler restores the signal mask.
  void reset_after_fork() { lock_.reset_after_fork(); }

 private:
  SpinLock lock_;
  os::SignalMask saved_;  // the holder's mask before lock(); written by the holder only
};

template <typename Lock>
class LockGuard {
 public:
  explicit LockGuard(Lock& lock) : lock_(lock) { lock_.lock(); }
  ~LockGuard() { lock_.unlock(); }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;

 private:
  Lock& lock_;
};
using SpinLockGuard = LockGuard<SpinLock>;
using MaskedLockGuard = LockGuard<MaskedSpinLock>;

}  // namespace lockbox
