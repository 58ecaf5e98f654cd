// SPDX-License-Identifier: ISC
// Exact accounting: lockbox only mlocks pages it has charged here, and never locks a page
// twice, so locked_bytes() is what lockbox adds to VmLck in /proc/self/status.
#include "budget/budget.hpp"

#include <cstdint>

#include "os/os.hpp"

namespace lockbox::budget {

bool Budget::refresh_limit() {
  std::size_t kernel_limit = os::has_ipc_lock_capability() ? SIZE_MAX : os::memlock_soft_limit();
  if (kernel_limit_seen_.exchange(kernel_limit, std::memory_order_relaxed) == kernel_limit) {
    return false;
  }
  set_limit(kernel_limit);
  return true;
}

bool Budget::limit_reading_due() {
  std::uint64_t now = os::coarse_milliseconds();
  return last_reading_ms_.exchange(now, std::memory_order_relaxed) != now;
}

bool Budget::try_charge_locked(std::size_t bytes) {
  std::size_t limit = limit_.load(std::memory_order_relaxed);
  std::size_t current = locked_.load(std::memory_order_relaxed);
  do {
    if (bytes > limit || current > limit - bytes) return false;
  } while (!locked_.compare_exchange_weak(current, current + bytes, std::memory_order_relaxed));
  std::size_t now = current + bytes;
  std::size_t peak = peak_.load(std::memory_order_relaxed);
  while (now > peak && !peak_.compare_exchange_weak(peak, now, std::memory_order_relaxed)) {
  }
  return true;
}

void Budget::release_locked(std::size_t bytes) {
  locked_.fetch_sub(bytes, std::memory_order_relaxed);
}

void Budget::reset_after_fork() {
  locked_.store(0, std::memory_order_relaxed);
  unlocked_.store(0, std::memory_order_relaxed);
  peak_.store(0, std::memory_order_relaxed);
  secretmem_.store(0, std::memory_order_relaxed);
}

}  // namespace lockbox::budget
