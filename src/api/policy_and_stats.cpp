// The C entry points for policy, the last error, statistics and option documentation.
#include <cerrno>

#include "heap/heap.hpp"
#include "heap/options.hpp"
#include "lockbox/lockbox.h"
#include "sealed/sealed_boxes.hpp"
#include "support/last_error.hpp"

using lockbox::heap::Heap;

namespace {

int not_one_of(const char* function, const char* type, int value) {
  lockbox::set_last_error("%s: %d is not a %s", function, value, type);
  errno = EINVAL;
  return -1;
}

}  // namespace

extern "C" {

int lockbox_set_policy(lockbox_policy policy) {
  if (policy != LOCKBOX_POLICY_STRICT && policy != LOCKBOX_POLICY_BEST_EFFORT) {
    return not_one_of("lockbox_set_policy", "lockbox_policy", static_cast<int>(policy));
  }
  Heap::instance().budget().set_policy(static_cast<lockbox::budget::Policy>(policy));
  return 0;
}

lockbox_policy lockbox_get_policy(void) {
  return static_cast<lockbox_policy>(Heap::instance().budget().policy());
}

int lockbox_set_backend(lockbox_backend backend) {
  if (backend != LOCKBOX_BACKEND_ANON && backend != LOCKBOX_BACKEND_SECRETMEM &&
      backend != LOCKBOX_BACKEND_AUTO) {
    return not_one_of("lockbox_set_backend", "lockbox_backend", static_cast<int>(backend));
  }
  Heap::instance().secretmem_pool().set_backend(static_cast<lockbox::pages::Backend>(backend));
  return 0;
}

lockbox_backend lockbox_get_backend(void) {
  return static_cast<lockbox_backend>(Heap::instance().secretmem_pool().backend());
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
  out->secretmem_bytes = stats.secretmem_bytes;
  out->quarantined_bytes = stats.quarantined_bytes;
  out->quarantined_large_bytes = stats.quarantined_large_bytes;
  lockbox::sealed::SealedStats sealed = lockbox::sealed::SealedBoxes::instance().stats();
  out->sealed_boxes = sealed.boxes;
  out->open_sealed_boxes = sealed.open_boxes;
}

size_t lockbox_describe_options(char* buffer, size_t capacity) {
  if (buffer != nullptr && capacity > 0) buffer[0] = '\0';
  return lockbox::options::describe(buffer, capacity);
}

}  // extern "C"
