// The C entry points for policy, the last error, statistics and option documentation.
#include <cerrno>

#include "heap/heap.hpp"
#include "heap/options.hpp"
#include "lockbox/lockbox.h"
#include "support/last_error.hpp"

using lockbox::heap::Heap;

extern "C" {

int lockbox_set_policy(lockbox_policy policy) {
  if (policy != LOCKBOX_POLICY_STRICT && policy != LOCKBOX_POLICY_BEST_EFFORT) {
    lockbox::set_last_error("lockbox_set_policy: %d is not a lockbox_policy",
                            static_cast<int>(policy));
    errno = EINVAL;
    return -1;
  }
  Heap::instance().budget().set_policy(static_cast<lockbox::budget::Policy>(policy));
  return 0;
}

lockbox_policy lockbox_get_policy(void) {
  return static_cast<lockbox_policy>(Heap::instance().budget().policy());
}

const char* lockbox_last_error(void) { return lockbox::last_error(); }

void lockbox_get_stats(lockbox_stats* out) {
  if (out == nullptr) return;
  lockbox::heap::Stats stats = Heap::instance().stats();
  out->locked_bytes = stats.locked_bytes;
  out->unlocked_bytes = stats.unlocked_bytes;
  out->in_use_bytes = stats.in_use_bytes;
  out->live_allocations = stats.live_allocations;
  out->reserved_bytes = stats.reserved_bytes;
  out->peak_locked_bytes = stats.peak_locked_bytes;
  out->memlock_limit = stats.memlock_limit;
  out->caller_locked_bytes = stats.caller_locked_bytes;
}

size_t lockbox_describe_options(char* buffer, size_t capacity) {
  if (buffer != nullptr && capacity > 0) buffer[0] = '\0';
  return lockbox::options::describe(buffer, capacity);
}

}  // extern "C"
