// SPDX-License-Identifier: ISC
// The C entry points for policy, the last error, the version, statistics and option
// documentation.
#include <cerrno>
#include <cstddef>
#include <cstring>

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

// lockbox_stats grows only at its end: the first version's fields stay where they were.
static_assert(offsetof(lockbox_stats, open_sealed_boxes) + sizeof(size_t) ==
              LOCKBOX_STATS_MIN_SIZE);

extern "C" {

int lockbox_set_policy(lockbox_policy policy) noexcept {
  if (policy != LOCKBOX_POLICY_STRICT && policy != LOCKBOX_POLICY_BEST_EFFORT) {
    return not_one_of("lockbox_set_policy", "lockbox_policy", static_cast<int>(policy));
  }
  Heap::instance().set_policy(static_cast<lockbox::budget::Policy>(policy));
  return 0;
}

lockbox_policy lockbox_get_policy(void) noexcept {
  return static_cast<lockbox_policy>(Heap::instance().budget().policy());
}

int lockbox_set_backend(lockbox_backend backend) noexcept {
  if (backend != LOCKBOX_BACKEND_ANON && backend != LOCKBOX_BACKEND_SECRETMEM &&
      backend != LOCKBOX_BACKEND_AUTO) {
    return not_one_of("lockbox_set_backend", "lockbox_backend", static_cast<int>(backend));
  }
  Heap::instance().secretmem_pool().set_backend(static_cast<lockbox::pages::Backend>(backend));
  return 0;
}

lockbox_backend lockbox_get_backend(void) noexcept {
  return static_cast<lockbox_backend>(Heap::instance().secretmem_pool().backend());
}

const char* lockbox_last_error(void) noexcept { return lockbox::last_error(); }

const char* lockbox_version(void) noexcept { return LOCKBOX_VERSION_STRING; }

size_t lockbox_get_stats(lockbox_stats* out, size_t size) noexcept {
  if (out == nullptr || size < LOCKBOX_STATS_MIN_SIZE) {
    lockbox::set_last_error(
        "lockbox_get_stats: %s (pass &stats, sizeof stats)",
        out == nullptr ? "out is NULL" : "size is smaller than any lockbox_stats");
    errno = EINVAL;
    return 0;
  }
  lockbox::heap::Stats stats = Heap::instance().stats();
  lockbox::sealed::SealedStats sealed = lockbox::sealed::SealedBoxes::instance().stats();
  lockbox_stats all{};
  all.locked_bytes = stats.locked_bytes;
  all.unlocked_bytes = stats.unlocked_bytes;
  all.in_use_bytes = stats.in_use_bytes;
  all.live_allocations = stats.live_allocations;
  all.reserved_bytes = stats.reserved_bytes;
  all.peak_locked_bytes = stats.peak_locked_bytes;
  all.memlock_limit = stats.memlock_limit;
  all.caller_locked_bytes = stats.caller_locked_bytes;
  all.secretmem_bytes = stats.secretmem_bytes;
  all.quarantined_bytes = stats.quarantined_bytes;
  all.quarantined_large_bytes = stats.quarantined_large_bytes;
  all.sealed_boxes = sealed.boxes;
  all.open_sealed_boxes = sealed.open_boxes;
  all.cached_large_bytes = stats.cached_large_bytes;
  // A caller built against an older header gets the prefix it knows; one built against a
  // newer header gets zeros for the fields this library does not have.
  size_t filled = size < sizeof all ? size : sizeof all;
  std::memcpy(out, &all, filled);
  std::memset(reinterpret_cast<unsigned char*>(out) + filled, 0, size - filled);
  return filled;
}

size_t lockbox_describe_options(char* buffer, size_t capacity) noexcept {
  if (buffer != nullptr && capacity > 0) buffer[0] = '\0';
  return lockbox::options::describe(buffer, capacity);
}

}  // extern "C"
