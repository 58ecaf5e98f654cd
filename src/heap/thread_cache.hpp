// A thread's cache of small slots, per size class: frees push zeroed slots here and allocations
// pop them, with no lock taken. Slots in a cache stay taken from their runs (their pages stay
// locked); a bin that overflows gives its oldest half back to the shards. The cache also counts
// the thread's live objects and bytes, so statistics need no shared counter on the fast path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "small/size_class.hpp"
#include "small/slot.hpp"
#include "support/spin_lock.hpp"

namespace lockbox::heap {

struct alignas(kCacheLine) ThreadCache {
  static constexpr std::size_t kMaxSlots = 16;

  // Fewer big slots than small ones: no bin holds more than 16 KiB, a full cache 191 KiB.
  // A table, so the free path reads one byte instead of walking a chain of comparisons.
  static constexpr auto kCapacity = [] {
    std::array<std::uint8_t, small::kClassCount> capacity{};
    for (std::size_t c = 0; c < small::kClassCount; ++c) {
      std::size_t slot = small::kSlotSizes[c];
      capacity[c] = slot <= 256 ? 16 : slot <= 1024 ? 8 : slot <= 4096 ? 4 : 2;
    }
    return capacity;
  }();
  static constexpr std::size_t capacity(std::size_t class_index) { return kCapacity[class_index]; }

  struct Bin {
    std::uint32_t count = 0;
    small::CachedSlot slots[kMaxSlots];

    // Field by field: a CachedSlot built on the stack and copied whole was read back as one
    // 16-byte load of two 8-byte stores, which store forwarding cannot serve (a stall per free).
    void push(unsigned char* address, small::Arena* arena) {
      small::CachedSlot& slot = slots[count++];
      slot.address = address;
      slot.arena = arena;
    }
  };

  // Only the owning thread writes these (load + store, no read-modify-write); stats() reads them.
  void count(std::int64_t objects, std::int64_t bytes) {
    live_objects.store(live_objects.load(std::memory_order_relaxed) + objects,
                       std::memory_order_relaxed);
    live_bytes.store(live_bytes.load(std::memory_order_relaxed) + bytes, std::memory_order_relaxed);
  }

  Bin bins[small::kClassCount];
  std::atomic<std::int64_t> live_objects{0};
  std::atomic<std::int64_t> live_bytes{0};
  std::uint32_t shard_index = 0;
  ThreadCache* next = nullptr;  // every live thread's cache, for stats and fork
  ThreadCache* prev = nullptr;
};

}  // namespace lockbox::heap
