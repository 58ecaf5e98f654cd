// SPDX-License-Identifier: ISC
// The C entry points for allocation: argument checks, errno and the readable reason. Everything
// past the checks belongs to the heap.
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "heap/heap.hpp"
#include "lockbox/lockbox.h"
#include "support/last_error.hpp"

using lockbox::set_last_error;
using lockbox::heap::Heap;
using Operation = lockbox::report::Operation;

namespace {

using lockbox::kMaxRequest;

void* fail(int error) {
  errno = error;
  return nullptr;
}

// The heap says nullptr when memory or the budget runs out (its reason in last_error).
void* out_of_memory_unless(void* pointer) {
  if (pointer == nullptr) errno = ENOMEM;
  return pointer;
}

bool is_power_of_two(std::size_t value) { return value != 0 && (value & (value - 1)) == 0; }

}  // namespace

extern "C" {

void* lockbox_malloc(std::size_t size) noexcept {
  if (size > kMaxRequest) {
    set_last_error("lockbox_malloc: %zu bytes is more than lockbox can ever provide", size);
    return fail(ENOMEM);
  }
  return out_of_memory_unless(Heap::instance().allocate(size, Operation::kMalloc));
}

void* lockbox_calloc(std::size_t count, std::size_t size) noexcept {
  std::size_t total = 0;
  if (__builtin_mul_overflow(count, size, &total) || total > kMaxRequest) {
    set_last_error("lockbox_calloc: %zu elements of %zu bytes overflow the address space", count,
                   size);
    return fail(ENOMEM);
  }
  // Fresh slots and pages are verified zero before they are handed out.
  return out_of_memory_unless(Heap::instance().allocate(total, Operation::kCalloc));
}

void* lockbox_realloc(void* ptr, std::size_t size) noexcept {
  if (ptr == nullptr) return lockbox_malloc(size);
  if (size > kMaxRequest) {
    set_last_error("lockbox_realloc: %zu bytes is more than lockbox can ever provide", size);
    return fail(ENOMEM);
  }
  return out_of_memory_unless(Heap::instance().reallocate(ptr, size));
}

void* lockbox_aligned_alloc(std::size_t alignment, std::size_t size) noexcept {
  if (!is_power_of_two(alignment)) {
    set_last_error("lockbox_aligned_alloc: alignment %zu is not a power of two", alignment);
    return fail(EINVAL);
  }
  if (size > kMaxRequest || alignment > kMaxRequest) {
    set_last_error(
        "lockbox_aligned_alloc: %zu bytes aligned to %zu is more than lockbox can "
        "ever provide",
        size, alignment);
    return fail(ENOMEM);
  }
  return out_of_memory_unless(
      Heap::instance().allocate(size, alignment, Operation::kAlignedAlloc));
}

void lockbox_free(void* ptr) noexcept {
  if (ptr == nullptr) return;
  Heap::instance().free(ptr, Operation::kFree);
}

std::size_t lockbox_usable_size(const void* ptr) noexcept {
  if (ptr == nullptr) return 0;
  return Heap::instance().usable_size(ptr, Operation::kUsableSize);
}

int lockbox_owns(const void* ptr) noexcept {
  if (ptr == nullptr) return 0;
  return Heap::instance().owns(ptr) ? 1 : 0;
}

char* lockbox_strndup(const char* s, std::size_t n) noexcept {
  if (s == nullptr) {
    set_last_error("lockbox_strndup: the string is NULL");
    return static_cast<char*>(fail(EINVAL));
  }
  std::size_t length = strnlen(s, n);
  if (length + 1 > kMaxRequest) {
    set_last_error("lockbox_strndup: a %zu-byte string is more than lockbox can ever provide",
                   length);
    return static_cast<char*>(fail(ENOMEM));
  }
  auto* copy = static_cast<char*>(
      out_of_memory_unless(Heap::instance().allocate(length + 1, Operation::kStrdup)));
  if (copy == nullptr) return nullptr;
  std::memcpy(copy, s, length);
  copy[length] = '\0';
  return copy;
}

char* lockbox_strdup(const char* s) noexcept {
  if (s == nullptr) {
    set_last_error("lockbox_strdup: the string is NULL");
    return static_cast<char*>(fail(EINVAL));
  }
  return lockbox_strndup(s, SIZE_MAX);
}

}  // extern "C"
