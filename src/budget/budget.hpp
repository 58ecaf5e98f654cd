// SPDX-License-Identifier: ISC
// The RLIMIT_MEMLOCK budget: bytes lockbox holds locked, checked against the soft limit
// before every mlock, and the policy that decides what happens when it runs out. Only bytes and
// the limit: where arenas come from is the secretmem pool's to decide (pages/secretmem_pool.hpp),
// and whether the application locks all its memory is the page layer's (pages/page_commit.hpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace lockbox::budget {

enum class Policy : int { kStrict = 0, kBestEffort = 1 };

class Budget {
 public:
  // Reads RLIMIT_MEMLOCK and CAP_IPC_LOCK from the kernel and follows them when they changed
  // since the last reading (setrlimit at run time, a privilege drop); a limit set with
  // set_limit() stays until then. True if the limit changed.
  bool refresh_limit();
  // True at most once per tick of the coarse clock (1 to 4 ms): whether a caller that only
  // wonders if the limit was raised should look now (two system calls) or take the last reading.
  bool limit_reading_due();
  void set_limit(std::size_t bytes) { limit_.store(bytes, std::memory_order_relaxed); }

  // Accounts `bytes` more locked memory if the limit allows; false leaves everything unchanged.
  bool try_charge_locked(std::size_t bytes);
  // Would `bytes` more fit under the limit now? (A hint: another thread may take the room.)
  bool has_room(std::size_t bytes) const {
    std::size_t limit = limit_.load(std::memory_order_relaxed);
    return bytes <= limit && locked_.load(std::memory_order_relaxed) <= limit - bytes;
  }
  void release_locked(std::size_t bytes);
  void add_unlocked(std::size_t bytes) { unlocked_.fetch_add(bytes, std::memory_order_relaxed); }
  void release_unlocked(std::size_t bytes) {
    unlocked_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  std::size_t locked_bytes() const { return locked_.load(std::memory_order_relaxed); }
  std::size_t unlocked_bytes() const { return unlocked_.load(std::memory_order_relaxed); }
  std::size_t peak_locked_bytes() const { return peak_.load(std::memory_order_relaxed); }
  // SIZE_MAX when unlimited or when CAP_IPC_LOCK makes the kernel ignore the limit.
  std::size_t limit() const { return limit_.load(std::memory_order_relaxed); }

  Policy policy() const { return policy_.load(std::memory_order_relaxed); }
  void set_policy(Policy policy) { policy_.store(policy, std::memory_order_relaxed); }

  // Bytes of arenas mapped from memfd_secret (part of locked_bytes).
  std::size_t secretmem_bytes() const { return secretmem_.load(std::memory_order_relaxed); }
  void add_secretmem(std::size_t bytes) { secretmem_.fetch_add(bytes, std::memory_order_relaxed); }
  void remove_secretmem(std::size_t bytes) {
    secretmem_.fetch_sub(bytes, std::memory_order_relaxed);
  }

  // True exactly once per process: the caller then prints the best-effort warning.
  bool first_unlocked_fallback() { return !warned_.exchange(true, std::memory_order_relaxed); }

  // A forked child holds no locks (mlock is not inherited) and none of the parent's pages.
  void reset_after_fork();

 private:
  std::atomic<std::size_t> locked_{0};
  std::atomic<std::size_t> unlocked_{0};
  std::atomic<std::size_t> peak_{0};
  std::atomic<std::size_t> limit_{0};
  std::atomic<std::size_t> kernel_limit_seen_{0};
  std::atomic<std::uint64_t> last_reading_ms_{0};
  std::atomic<Policy> policy_{Policy::kStrict};
  std::atomic<bool> warned_{false};
  std::atomic<std::size_t> secretmem_{0};
};

}  // namespace lockbox::budget
