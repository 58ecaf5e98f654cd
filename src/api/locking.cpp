// SPDX-License-Identifier: ISC
// The C entry points for locking caller memory: errno and -1 on the way out.
#include <cerrno>

#include "heap/heap.hpp"
#include "pages/page_commit.hpp"
#include "lockbox/lockbox.h"

using lockbox::heap::Heap;

namespace {

int result(int error) {
  if (error == 0) return 0;
  errno = error;
  return -1;
}

}  // namespace

extern "C" {

int lockbox_lock(const void* addr, size_t len) noexcept {
  return result(Heap::instance().caller_locks().lock(addr, len));
}

int lockbox_unlock(const void* addr, size_t len) noexcept {
  return result(Heap::instance().caller_locks().unlock(const_cast<void*>(addr), len, false));
}

int lockbox_unlock_and_zero(void* addr, size_t len) noexcept {
  return result(Heap::instance().caller_locks().unlock(addr, len, true));
}

int lockbox_set_mlockall(int active) noexcept {
  lockbox::pages::set_mlockall_active(active != 0);
  return 0;
}

}  // extern "C"
