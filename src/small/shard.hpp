// SPDX-License-Identifier: ISC
// A shard of the small-object heap: its own lock, arenas and per-class lists of runs with free
// slots. Threads spread over shards, so two threads rarely wait for each other.
#pragma once

#include <cstddef>
#include <cstdint>

#include "budget/budget.hpp"
#include "pages/page_commit.hpp"
#include "small/arena.hpp"
#include "small/arena_registry.hpp"
#include "small/slot.hpp"
#include "support/random_stream.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::small {

// What a shard counts itself; objects are counted by the threads that allocate them.
struct ShardStats {
  std::size_t reserved_bytes = 0;
  std::size_t quarantined_bytes = 0;
};

class alignas(kCacheLine) Shard {
 public:
  // Empty pages kept committed and locked, so that alloc/free churn makes no syscalls: at least
  // this many per shard, or three quarters of the shard's committed pages (the budget takes
  // them back first when it runs short). A trim leaves less (below). Half of the committed
  // pages was too little where thread caches hold big slots: their pages swing by hundreds per
  // shard, and 8 threads on 2 cores trimmed and committed again 55 times per 160,000
  // operations, each time hundreds of munlock, madvise, mprotect and mlock calls under the
  // shard lock.
  static constexpr std::size_t kMinReservePages = 64;
  // A reserve over its limit is trimmed only once it has stayed over for this long, at the next
  // page that empties after that, and then down to three eighths of the pages the shard keeps
  // committed after the trim. A program that frees everything and allocates again (a batch of
  // keys, a request's buffers) keeps its pages instead of giving them back and locking them
  // again each time: 20,000 keys allocated then freed, round after round, cost 184 ns per
  // operation with the immediate trim and 128 with the delay (medians of nine runs each). The
  // budget does not wait: when it runs short, the reserve goes back at once
  // (release_empty_pages), and while it has no room for the reserve again on top of what is
  // locked, the trim does not wait either.
  static constexpr std::uint64_t kTrimDelayMs = 100;

  // Freed slots above 8 KiB wait in their shard's quarantine, not in thread caches: each waits
  // for kQuarantineLength later frees of its class in this shard before it goes back to its run
  // (where it stays marked taken until then, so no hand-out can pick it). Kept per thread, 32
  // threads pinned 32 quarantines of these classes (up to 728 KiB each), committed and locked
  // as the caches grew; per shard, the heap's four pin at most 4 x 728 KiB whatever the number
  // of threads. Their frees took a shard lock already (bins of one eligible slot).
  static constexpr std::size_t kQuarantineLength = 2;
  static constexpr std::size_t kQuarantinedAbove = 8192;
  static constexpr std::size_t kFirstQuarantinedClass = [] {
    std::size_t c = 0;
    while (kSlotSizes[c] <= kQuarantinedAbove) ++c;
    return c;
  }();
  static constexpr bool quarantines(std::size_t class_index) {
    return class_index >= kFirstQuarantinedClass;
  }

  // All of these expect lock() to be held by the caller.

  // Takes up to `wanted` free slots of a class from its runs (committing and locking the pages
  // under them first), each chosen at random in its run and given a fresh canary key, marks
  // them cached and writes them to `out`. Returns how many; 0 with last_error set when not
  // even one could be had.
  // `pool` serves memfd_secret arenas; null means anonymous memory only.
  std::size_t take_slots(std::size_t class_index, std::size_t wanted, CachedSlot* out,
                         std::uint64_t generation, std::uint32_t my_index, ArenaRegistry& registry,
                         budget::Budget& budget, pages::Reclaimer reclaimer,
                         pages::SecretmemPool* pool = nullptr);
  // Gives a cached (zeroed) slot back to its run: drops its page references, and gives the
  // run's pages back to the arena once it is empty.
  void return_slot(const CachedSlot& slot, budget::Budget& budget);
  // A freed (checked, zeroed, cached) slot of a class quarantines() names joins the class's
  // quarantine; the oldest goes back to its run once kQuarantineLength are waiting.
  void quarantine_slot(const CachedSlot& slot, std::size_t class_index, budget::Budget& budget);

  // One slot without a thread cache: take_slots + hand_out, and take_back + return_slot.
  void* allocate(std::size_t size, std::size_t class_index, report::Operation operation,
                 std::uint64_t generation, std::uint32_t my_index, ArenaRegistry& registry,
                 budget::Budget& budget, pages::Reclaimer reclaimer,
                 pages::SecretmemPool* pool = nullptr);
  // Returns the size the freed object had been given.
  std::size_t free(Arena& arena, void* pointer, budget::Budget& budget,
                   report::Operation operation);
  // A forked child's free of a pointer it inherited: bookkeeping only, the memory is wiped.
  void free_inherited(Arena& arena, void* pointer, report::Operation operation);
  std::size_t usable_size(Arena& arena, const void* pointer, report::Operation operation);
  bool owns(Arena& arena, const void* pointer);
  // Test hook: do the bytes of [pointer, pointer+length) within this arena read zero? Pages
  // given back to the kernel count as zero (they are discarded and PROT_NONE).
  bool range_reads_zero(Arena& arena, const void* pointer, std::size_t length);
  // A caller's lockbox_lock() on a committed page of this shard: it counts like an object, so
  // the page stays locked until both are gone. 0, EACCES (PROT_NONE page), EOVERFLOW or ENOMEM.
  // A page that BEST_EFFORT left unlocked is locked first (charged; ENOMEM under STRICT when it
  // cannot be, with the reason in last_error): a caller lock must mean the kernel's lock.
  int hold_committed_page(Arena& arena, std::size_t page, budget::Budget& budget,
                          pages::Reclaimer reclaimer);
  // Drops one count (an object's or a caller's); at zero the page goes to the reserve or back
  // to the kernel.
  void release_page(Arena& arena, std::size_t page, budget::Budget& budget);
  // Releases every empty committed page; true if any was released.
  bool release_empty_pages(budget::Budget& budget);
  // Has a page left the reserve for a run at `since_ms` (coarse clock) or later? Under the lock.
  bool drew_on_reserve_since(std::uint64_t since_ms) const {
    return reserve_drawn_ms_ != 0 && reserve_drawn_ms_ >= since_ms;
  }
  // Returns every quarantined slot to its run (the first thing the budget takes back); true if
  // there was one. Never from inside one of this shard's own operations (the reclaimer called
  // by take_slots): returning slots may link and dissolve the runs that operation is using.
  bool empty_quarantine(budget::Budget& budget);
  std::size_t reserve_limit() const;
  void add_stats(ShardStats& stats) const;

  FutexLock& lock() { return lock_; }
  // In a forked child: the inherited arenas stay mapped (their pointers can still be freed)
  // but are never allocated from again.
  void forget_arenas_after_fork();
  // A forked child must not hand out the canary keys and slot choices its parent will.
  void forget_random() { random_.forget(); }

 private:
  Run* create_run(std::size_t class_index, std::uint64_t generation, std::uint32_t my_index,
                  ArenaRegistry& registry, budget::Budget& budget, pages::Reclaimer reclaimer,
                  pages::SecretmemPool* pool);
  void dissolve_run(Run& run);
  // Where a new run of `pages` pages can go in this shard's arenas (committed unowned pages
  // first), or {nullptr, 0}.
  struct RunPlace {
    Arena* arena;
    std::size_t first;
  };
  RunPlace place_for_run(std::size_t pages);
  // Dissolves every run with no live slot; true if there was one.
  bool dissolve_empty_runs();
  // How many pages from `page` on, up to the end of its run, are reserved (at least 1).
  std::size_t reserved_run_pages_from(const Arena& arena, std::size_t page) const;
  bool acquire_page(Arena& arena, std::size_t page, budget::Budget& budget,
                    pages::Reclaimer reclaimer);
  // An empty page kept unlocked goes back into use: locked if the budget has room. False
  // (last_error set) only under STRICT, when it cannot be locked.
  bool reuse_unlocked_page(Arena& arena, std::size_t page, budget::Budget& budget,
                           pages::Reclaimer reclaimer);
  // A page BEST_EFFORT committed unlocked takes one more slot: locked if the budget has room
  // (STRICT: locked, or false with last_error set); BEST_EFFORT past the budget leaves it be.
  bool lock_unlocked_page_if_due(Arena& arena, std::size_t page, budget::Budget& budget,
                                 pages::Reclaimer reclaimer);
  // Charges and mlocks a page BEST_EFFORT committed unlocked; false (last_error set) if the
  // budget or the kernel refuses, the page then as it was.
  bool lock_unlocked_page(Arena& arena, std::size_t page, budget::Budget& budget,
                          pages::Reclaimer reclaimer);
  // Takes a reference on every page under the slot (committing them), or on none.
  bool hold_slot_pages(Run& run, std::size_t slot, budget::Budget& budget,
                       pages::Reclaimer reclaimer);
  struct SlotPlace {
    Run* run;
    std::size_t slot;
  };
  // A free slot of the class whose pages are committed already (and locked, if
  // `locked_only`); run nullptr if none.
  SlotPlace find_slot_on_held_pages(std::size_t class_index, bool locked_only);
  // Releases empty pages of `kind` (kLocked: the reserve; kUnlocked: those BEST_EFFORT keeps)
  // until at most `target` remain; true if it released any.
  bool trim_empty_pages(budget::Budget& budget, std::size_t target, PageState kind);
  // The empty pages of `kind` just went over the reserve's limit: starts the delay, or trims
  // once it has passed.
  void trim_if_over_for_long(budget::Budget& budget, PageState kind);
  // A page left the reserve: once it is within its limit again, the delay starts over.
  void note_page_left_reserve() {
    reserve_drawn_ms_ = os::coarse_milliseconds();
    --empty_committed_pages_;
    if (empty_committed_pages_ <= reserve_limit()) over_limit_since_ms_ = 0;
  }
  void note_unlocked_page_left() {
    --empty_unlocked_pages_;
    if (empty_unlocked_pages_ <= reserve_limit()) unlocked_over_limit_since_ms_ = 0;
  }
  void link(Run& run);
  void unlink(Run& run);

  // Oldest first: slots[(oldest + i) % kQuarantineLength] for i < count.
  struct Quarantine {
    CachedSlot slots[kQuarantineLength];
    std::uint32_t oldest = 0;
    std::uint32_t count = 0;
  };

  FutexLock lock_;
  Quarantine quarantine_[kClassCount - kFirstQuarantinedClass] = {};
  std::size_t quarantined_bytes_ = 0;
  Run* runs_with_room_[kClassCount] = {};
  Arena* arenas_ = nullptr;
  std::size_t reserved_bytes_ = 0;
  std::size_t empty_committed_pages_ = 0;
  // Empty pages BEST_EFFORT committed without a lock, kept read-write (and zero) for the next
  // run, trimmed as the reserve is (over its limit for kTrimDelayMs): past the budget, every
  // page that emptied went back to the kernel and came again as a new one, three system calls a
  // cycle under the shard lock (mimalloc's test-stress, 8 threads as an ordinary user with an
  // 8 MiB limit: 316,000 mprotect and 159,000 madvise calls, 5 s against 1 s locked). Not
  // counted in empty_committed_pages_: they hold no budget for a reclaim to give back.
  std::size_t empty_unlocked_pages_ = 0;
  std::size_t committed_pages_ = 0;
  std::uint64_t over_limit_since_ms_ = 0;  // 0: the reserve is within its limit
  std::uint64_t unlocked_over_limit_since_ms_ = 0;  // the same for empty_unlocked_pages_
  std::uint64_t reserve_drawn_ms_ = 0;  // when a page last left the reserve (0: never)
  RandomStream random_;  // canary keys and slot choices
};

}  // namespace lockbox::small
