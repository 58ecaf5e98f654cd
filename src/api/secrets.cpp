// SPDX-License-Identifier: ISC
// The C entry points for guarded secrets and the constant-time helpers.
#include <sodium.h>

#include <cerrno>

#include "heap/heap.hpp"
#include "lockbox/lockbox.h"
#include "support/last_error.hpp"

using lockbox::heap::Heap;
using Protection = lockbox::large::LargeHeap::Protection;

extern "C" {

void* lockbox_guarded_alloc(size_t size) noexcept {
  if (size > lockbox::kMaxRequest) {
    lockbox::set_last_error(
        "lockbox_guarded_alloc: %zu bytes is more than lockbox can ever provide", size);
    errno = ENOMEM;
    return nullptr;
  }
  void* secret = Heap::instance().allocate_guarded(size);
  if (secret == nullptr) errno = ENOMEM;  // the heap's reason is in last_error
  return secret;
}

int lockbox_protect(void* ptr, lockbox_protection protection) noexcept {
  Protection wanted;
  switch (protection) {
    case LOCKBOX_NOACCESS:
      wanted = Protection::kNoAccess;
      break;
    case LOCKBOX_READONLY:
      wanted = Protection::kReadOnly;
      break;
    case LOCKBOX_READWRITE:
      wanted = Protection::kReadWrite;
      break;
    default:
      lockbox::set_last_error("lockbox_protect: %d is not a lockbox_protection",
                              static_cast<int>(protection));
      errno = EINVAL;
      return -1;
  }
  if (int err = Heap::instance().protect(ptr, wanted)) {
    errno = err;
    return -1;
  }
  return 0;
}

int lockbox_memeq(const void* a, const void* b, size_t len) noexcept {
  return sodium_memcmp(a, b, len) == 0 ? 1 : 0;
}

void lockbox_memzero(void* ptr, size_t len) noexcept { sodium_memzero(ptr, len); }

}  // extern "C"
