// SPDX-License-Identifier: ISC
#include "heap/zero_size_objects.hpp"

#include "os/os.hpp"
#include "support/sanitizers.hpp"

namespace lockbox::heap {

void* ZeroSizeObjects::allocate(std::size_t alignment) {
  MaskedLockGuard guard(lock_);
  std::uintptr_t begin = begin_.load(std::memory_order_relaxed);
  if (begin == 0) {
    // Tried once: a process that cannot spare the address space gets ordinary slots.
    if (reserve_failed_) return nullptr;
    void* range = nullptr;
    if (os::reserve(kRangeBytes, &range) != 0) {
      reserve_failed_ = true;
      return nullptr;
    }
    begin = reinterpret_cast<std::uintptr_t>(range);
    begin_.store(begin, std::memory_order_release);
  }
  std::size_t step = alignment / kGranule;
  std::size_t index = find_free(next_, step);
  if (index == kObjects) return nullptr;
  live_.set(index);
  ++live_count_;
  next_ = (index + 1) % kObjects;
  if (index + 1 > handed_out_) handed_out_ = index + 1;
  void* pointer = reinterpret_cast<void*>(begin + index * kGranule);
  sanitizers::allocated(pointer, 0);
  return pointer;
}

std::size_t ZeroSizeObjects::find_free(std::size_t from, std::size_t step) const {
  if (step > 1) {
    // An alignment above 16: rare enough for a walk over the suitable granules.
    std::size_t first = (from + step - 1) / step * step % kObjects;
    for (std::size_t n = 0, index = first; n < kObjects / step; ++n) {
      if (!live_.test(index)) return index;
      index = (index + step) % kObjects;
    }
    return kObjects;
  }
  std::size_t index = live_.clear_from(from, kObjects);
  return index == LiveBits::kNone ? kObjects : index;
}

std::size_t ZeroSizeObjects::index_of(const void* pointer) const {
  std::size_t offset =
      reinterpret_cast<std::uintptr_t>(pointer) - begin_.load(std::memory_order_relaxed);
  if (offset % kGranule != 0 || offset / kGranule >= handed_out_) return kObjects;
  return offset / kGranule;
}

ZeroSizeObjects::FreeResult ZeroSizeObjects::free(const void* pointer) {
  MaskedLockGuard guard(lock_);
  std::size_t index = index_of(pointer);
  if (index == kObjects) return FreeResult::kNotAllocated;
  if (!live_.test(index)) return FreeResult::kDoubleFree;
  live_.clear(index);
  if (inherited_.test(index)) {
    inherited_.clear(index);
  } else {
    --live_count_;
  }
  sanitizers::released(pointer);
  return FreeResult::kFreed;
}

bool ZeroSizeObjects::is_live(const void* pointer) {
  MaskedLockGuard guard(lock_);
  std::size_t index = index_of(pointer);
  return index != kObjects && live_.test(index);
}

std::size_t ZeroSizeObjects::live_objects() {
  MaskedLockGuard guard(lock_);
  return live_count_;
}

}  // namespace lockbox::heap
