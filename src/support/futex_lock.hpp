// SPDX-License-Identifier: ISC
// The allocator's lock for its short critical sections: one atomic exchange when uncontended;
// under contention a few dozen pause-instruction spins (the holder is usually a few hundred
// nanoseconds from done), then sleep on a futex until the holder wakes one waiter. It never
// yields in a loop: with 8 or 32 threads on 2 cores, a spinning or yielding waiter takes the
// time slices the preempted holder needs to finish (pitfalls.md).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "os/os.hpp"

namespace lockbox {

// What two threads' hot data must not share: shards and thread caches start on a line of their
// own, so that one thread's counters never bounce another's lock or bins between the cores.
inline constexpr std::size_t kCacheLine = 64;

class FutexLock {
 public:
  void lock() {
    std::uint32_t state = kFree;
    if (state_.compare_exchange_strong(state, kHeld, std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
      return;
    }
    lock_contended(state);
  }
  bool try_lock() {
    std::uint32_t state = kFree;
    return state_.compare_exchange_strong(state, kHeld, std::memory_order_acquire,
                                          std::memory_order_relaxed);
  }
  void unlock() {
    if (state_.exchange(kFree, std::memory_order_release) == kHeldWithSleepers) {
      os::futex_wake_one(&state_);
    }
  }
  // After fork() only the calling thread survives: whatever other threads held is void.
  void reset_after_fork() { state_.store(kFree, std::memory_order_relaxed); }

 private:
  static constexpr std::uint32_t kFree = 0;
  static constexpr std::uint32_t kHeld = 1;
  static constexpr std::uint32_t kHeldWithSleepers = 2;  // unlock() must wake one
  static constexpr int kSpins = 64;

  void lock_contended(std::uint32_t state) {
    for (int spin = 0; spin < kSpins && state != kHeldWithSleepers; ++spin) {
      os::pause_cpu();
      state = state_.load(std::memory_order_relaxed);
      if (state == kFree && state_.compare_exchange_weak(state, kHeld, std::memory_order_acquire,
                                                         std::memory_order_relaxed)) {
        return;
      }
    }
    // Taken as "held with sleepers" from here on, even if this thread turns out to be the last
    // waiter: one spare wake-up is cheaper than a lost one.
    while (state_.exchange(kHeldWithSleepers, std::memory_order_acquire) != kFree) {
      os::futex_wait(&state_, kHeldWithSleepers);
    }
  }

  std::atomic<std::uint32_t> state_{kFree};
};

// A lock whose holder runs with every signal blocked, for the locks that lockbox_free and
// lockbox_malloc take even when a signal handler calls them on a thread that was inside lockbox
// (the large heap's and the caller-lock table's), and for the list of thread caches, which a
// handler's call may take when its thread was outside: a handler never interrupts a holder, so
// it can never wait for a lock its own thread holds. Blocking costs two system calls per hold,
// which only paths that make system calls anyway can afford: the shards' locks are plain
// FutexLocks, and a handler never takes them on a thread that is inside lockbox (heap/inside.hpp).
class MaskedFutexLock {
 public:
  void lock() {
    os::SignalMask saved;
    os::block_signals(&saved);
    lock_.lock();
    saved_ = saved;
  }
  bool try_lock() {
    os::SignalMask saved;
    os::block_signals(&saved);
    if (!lock_.try_lock()) {
      os::restore_signals(saved);
      return false;
    }
    saved_ = saved;
    return true;
  }
  void unlock() {
    os::SignalMask saved = saved_;
    lock_.unlock();
    os::restore_signals(saved);
  }
  // In a forked child whose fork held this lock: the fork handler restores the signal mask.
  void reset_after_fork() { lock_.reset_after_fork(); }

 private:
  FutexLock lock_;
  os::SignalMask saved_;  // the holder's mask before lock(); written by the holder only
};

// True once `word` reads 0 within a few pause-instruction spins (the wait is often that short).
inline bool spin_until_zero(std::atomic<std::uint32_t>& word) {
  for (int spin = 0; spin < 64; ++spin) {
    if (word.load(std::memory_order_acquire) == 0) return true;
    os::pause_cpu();
  }
  return false;
}

// Waits until `word` reads 0: the spins, then sleeps of 50 us on a futex, woken early by
// futex_wake_all on the word, or not at all (the thread being waited for may not know anyone
// waits): either way the waiter gives its core to the threads it waits for.
inline void wait_until_zero(std::atomic<std::uint32_t>& word) {
  if (spin_until_zero(word)) return;
  for (std::uint32_t seen; (seen = word.load(std::memory_order_acquire)) != 0;) {
    os::futex_wait_for(&word, seen, 50000);
  }
}

// A request another thread sets (kRequested) and clears with clear_request(), while the thread
// it concerns may sleep until it is cleared (sleep_until_cleared). The sleeper marks the word
// first (kRequestedWithSleeper), so the clearing thread makes the wake system call only for a
// word somebody sleeps on: a drain of every thread's cache (heap.cpp) clears a request on each,
// and with 400 threads at the limit one wake per cache per drain was a quarter of the time.
inline constexpr std::uint32_t kRequested = 1;
inline constexpr std::uint32_t kRequestedWithSleeper = 2;

// Waits until `word` reads 0: the spins, then a sleep with no timeout (the clearing thread
// always wakes a marked word). A poll every 50 us, as wait_until_zero does, costs a system call
// per waiter per poll: a thousand threads waiting for one drain made millions of them.
inline void sleep_until_cleared(std::atomic<std::uint32_t>& word) {
  if (spin_until_zero(word)) return;
  std::uint32_t seen = word.load(std::memory_order_acquire);
  while (seen != 0) {
    // A failed mark reloads `seen`: cleared meanwhile, the loop ends without a sleep.
    if (seen == kRequested &&
        !word.compare_exchange_weak(seen, kRequestedWithSleeper, std::memory_order_acquire,
                                    std::memory_order_acquire)) {
      continue;
    }
    os::futex_wait(&word, kRequestedWithSleeper);
    seen = word.load(std::memory_order_acquire);
  }
}

// Withdraws the request; wakes the sleepers sleep_until_cleared marked it for.
inline void clear_request(std::atomic<std::uint32_t>& word) {
  if (word.exchange(0, std::memory_order_release) == kRequestedWithSleeper) {
    os::futex_wake_all(&word);
  }
}

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
using FutexLockGuard = LockGuard<FutexLock>;
using MaskedLockGuard = LockGuard<MaskedFutexLock>;

}  // namespace lockbox
