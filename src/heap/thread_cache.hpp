// SPDX-License-Identifier: ISC
// A thread's cache of small slots, per size class, with no lock taken. Freed slots (zeroed) wait
// in a quarantine before they can be handed out again: a slot freed by this thread becomes
// eligible only after kQuarantine[class] later frees of its class here (above 8 KiB, the
// shard's quarantine holds it instead: small/shard.hpp), and an allocation takes an eligible
// slot at random. So `free(p); malloc(same size)` never returns p, a double free or a
// stale write through p meets a slot that is still free, and nobody can steer which slot comes
// next. Slots in a cache stay taken from their runs (their pages stay locked); the oldest
// eligible ones go back to the shards when a bin fills. The cache also counts the thread's live
// objects and bytes, so statistics need no shared counter on the fast path.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>

#include "small/size_class.hpp"
#include "small/slot.hpp"
#include "support/bench_switches.hpp"
#include "support/random_stream.hpp"
#include "support/sanitizers.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::heap {

struct alignas(kCacheLine) ThreadCache {
  // A power of two, >= every class's limit.
  static constexpr std::uint32_t kRingSlots = bench_switches::kEligible > 16 ? 128 : 32;

  // Per class: how many later frees a freed slot waits (the quarantine), and how many eligible
  // slots a bin may hold besides. Fewer big slots than small ones: a quarantine holds at most
  // 1 KiB of a key-sized class and 32 KiB of an 8 KiB one; a whole cache pins at most 434 KiB
  // of locked slots, 243 KiB of them quarantined (README, "Quarantine"), and under a budget no
  // more than its share above the key sizes (room_for). Slots above 8 KiB are quarantined in
  // their shard (Shard::quarantine_slot): a bin of theirs holds only the one slot a refill has
  // just taken for the allocation that asked.
  struct ClassLimits {
    std::uint8_t quarantine;
    std::uint8_t eligible;
  };
  static constexpr auto kLimits = [] {
    std::array<ClassLimits, small::kClassCount> limits{};
    for (std::size_t c = 0; c < small::kClassCount; ++c) {
      std::size_t slot = small::kSlotSizes[c];
      limits[c] = slot <= 256    ? ClassLimits{16, 16}
                  : slot <= 1024 ? ClassLimits{8, 8}
                  : slot <= 4096 ? ClassLimits{4, 4}
                  : slot <= 8192 ? ClassLimits{4, 2}
                                 : ClassLimits{0, 1};  // quarantined in their shard
      if (bench_switches::kNoQuarantine) limits[c].quarantine = 0;
      if (bench_switches::kEligible != 0 && slot <= 4096) {
        limits[c].eligible = static_cast<std::uint8_t>(bench_switches::kEligible);
      }
    }
    return limits;
  }();
  static constexpr std::uint32_t quarantine(std::size_t class_index) {
    return kLimits[class_index].quarantine;
  }
  static constexpr std::uint32_t eligible_limit(std::size_t class_index) {
    return kLimits[class_index].eligible;
  }
  static constexpr std::uint32_t limit(std::size_t class_index) {
    return quarantine(class_index) + eligible_limit(class_index);
  }
  // How many slots a refill takes from a shard, and a full bin gives back: half the eligible.
  static constexpr std::uint32_t batch(std::size_t class_index) {
    return (eligible_limit(class_index) + 1) / 2;
  }

  // A ring of slots, oldest at `tail`, newest at `head - 1`. [tail, ready) are eligible for
  // hand-out; [ready, head) are in quarantine. The counters run freely and wrap; only the owning
  // thread writes them, stats() reads `head` and `ready` (relaxed atomics: plain moves on x86).
  struct Bin {
    std::uint32_t tail = 0;
    std::atomic<std::uint32_t> ready{0};
    std::atomic<std::uint32_t> head{0};
    small::CachedSlot slots[kRingSlots];

    small::CachedSlot& at(std::uint32_t position) { return slots[position & (kRingSlots - 1)]; }
    std::uint32_t held() const { return head.load(std::memory_order_relaxed) - tail; }
    std::uint32_t eligible() const { return ready.load(std::memory_order_relaxed) - tail; }
    std::uint32_t quarantined() const {
      return head.load(std::memory_order_relaxed) - ready.load(std::memory_order_relaxed);
    }

    // A freed slot enters the quarantine; the oldest quarantined one becomes eligible once the
    // quarantine is over its length. Field by field: a CachedSlot built on the stack and copied
    // whole was read back as one 16-byte load of two 8-byte stores, which store forwarding
    // cannot serve (a stall per free).
    void push_freed(unsigned char* address, small::Arena* arena, std::uint32_t quarantine_length) {
      std::uint32_t position = head.load(std::memory_order_relaxed);
      small::CachedSlot& slot = at(position);
      slot.address = address;
      slot.arena = arena;
      head.store(position + 1, std::memory_order_relaxed);
      std::uint32_t first_quarantined = ready.load(std::memory_order_relaxed);
      if (position + 1 - first_quarantined > quarantine_length) {
        ready.store(first_quarantined + 1, std::memory_order_relaxed);
      }
    }
    // Slots fresh from a run are eligible at once: they go in at the old end.
    void push_fresh(const small::CachedSlot& slot) { at(--tail) = slot; }
    // Takes the eligible slot at `offset` from the old end (offset < eligible()): the oldest one
    // moves into its place, which keeps every eligible slot on the eligible side. The vacated
    // entry is cleared: the cache keeps no address of a block the application now holds (with
    // offset 0 it was the taken one), so valgrind's leak check, which scans lockbox's
    // bookkeeping for pointers, still sees an abandoned block as lost.
    small::CachedSlot take_eligible(std::uint32_t offset) {
      small::CachedSlot& chosen = at(tail + offset);
      small::CachedSlot taken = chosen;
      chosen = at(tail);
      at(tail).address = nullptr;
      ++tail;
      return taken;
    }
  };

  // Adds to this thread's live counts. Only the owning thread writes them, so no locked
  // read-modify-write; stats() reads them (relaxed loads).
  void add_to_live_counts(std::int64_t objects, std::int64_t bytes) {
    add_as_only_writer(live_objects, objects);
    add_as_only_writer(live_bytes, bytes);
  }
  // On x86-64 one add to memory, whose store is a single access as the relaxed store's would
  // be: a load, an add and a store were six instructions of every key's allocation and free.
  // Under ThreadSanitizer the atomic load and store, which it can see.
  static void add_as_only_writer(std::atomic<std::int64_t>& counter, std::int64_t delta) {
#if defined(__x86_64__) && !LOCKBOX_TSAN
    static_assert(sizeof counter == 8 && alignof(std::atomic<std::int64_t>) == 8);
    asm("addq %1, %0" : "+m"(*reinterpret_cast<std::int64_t*>(&counter)) : "er"(delta));
#else
    counter.store(counter.load(std::memory_order_relaxed) + delta, std::memory_order_relaxed);
#endif
  }

  // Bytes of the slots held in the bins above the key sizes (the fast paths' classes are left
  // out: they hold a few KiB at most, and the fast paths stay as they are). Exact: every push
  // and take of those bins counts here, and flush_all reads none of their bins while it is 0.
  void count_cached(std::size_t class_index, std::int64_t slots) {
    if (class_index >= small::kKeySizedClasses) {
      cached_bytes += static_cast<std::size_t>(slots * static_cast<std::int64_t>(
                                                           small::kSlotSizes[class_index]));
    }
  }
  // How many more slots of the class fit in `share` bytes (any number for the key sizes).
  std::size_t room_for(std::size_t class_index, std::size_t share) const {
    if (class_index < small::kKeySizedClasses || share == SIZE_MAX) return SIZE_MAX;
    return share > cached_bytes ? (share - cached_bytes) / small::kSlotSizes[class_index] : 0;
  }

  Bin bins[small::kClassCount];
  std::size_t cached_bytes = 0;
  RandomStream random;  // which eligible slot goes out next
  std::atomic<std::int64_t> live_objects{0};
  std::atomic<std::int64_t> live_bytes{0};
  // The heap's reclaim epoch this cache last answered: when another thread ran out of budget
  // the epoch moved, and this thread empties its quarantine at its next visit to a shard.
  std::uint64_t reclaim_epoch = 0;
  std::uint32_t shard_index = 0;
  // The owner's t_state.inside (heap/inside.hpp), and another thread's request to empty this
  // cache: the owner checks it each time it enters lockbox and stays out until it is withdrawn.
  std::atomic<std::uint32_t>* inside = nullptr;
  std::atomic<std::uint32_t> drain_requested{0};
  ThreadCache* next = nullptr;  // every live thread's cache, for stats and fork
  ThreadCache* prev = nullptr;
};

}  // namespace lockbox::heap
