// SPDX-License-Identifier: ISC
// lockbox_lock / lockbox_unlock: nested locks on any memory, counted per page. A page of a
// lockbox arena is held through the arena's own refcount (so objects and caller locks nest with
// each other); a foreign page is mlocked and excluded from dumps on its first lock and released
// on its last unlock, unless the kernel already had it locked (the application's own mlock or
// mlockall), in which case lockbox never touches the kernel's lock at all.
//
// Built by the heap from references to what it consults: the arena registry and shards (arena
// pages), the large heap (its pages are locked already), the budget, and a reclaimer for room.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "budget/budget.hpp"
#include "large/large_heap.hpp"
#include "pages/page_commit.hpp"
#include "pages/page_lock_table.hpp"
#include "small/arena_registry.hpp"
#include "small/shard.hpp"
#include "support/spin_lock.hpp"

namespace lockbox::heap {

class CallerLocks {
 public:
  // `shards` is indexed by Arena::shard_index; `generation` is the heap's (an arena of another
  // generation was inherited from the parent of this forked child).
  CallerLocks(small::ArenaRegistry& registry, small::Shard* shards, large::LargeHeap& large,
              budget::Budget& budget, const std::atomic<std::uint64_t>& generation,
              pages::Reclaimer reclaimer)
      : registry_(registry),
        shards_(shards),
        large_(large),
        budget_(budget),
        generation_(generation),
        reclaimer_(reclaimer) {}

  // The whole pages a range touches.
  struct PageRange;

  // 0 or an errno value, last_error set (lockbox.h says which).
  int lock(const void* address, std::size_t length);
  int unlock(void* address, std::size_t length, bool zero);
  // A large block was unmapped: its pages' locks are gone with it.
  void forget_range(std::uintptr_t start, std::size_t bytes);
  std::size_t locked_bytes() const {
    return locked_pages_.load(std::memory_order_relaxed) * os::kPageSize;
  }
  // Test hook: how many caller locks hold the page at `page` (page-aligned)?
  std::size_t count(std::uintptr_t page);

  // Taken before any shard's lock (heap.hpp: the lock order).
  void lock_for_fork() { lock_.lock(); }
  void unlock_after_fork() { lock_.unlock(); }
  // A forked child inherits no lock: mlock is not inherited.
  void reset_after_fork();

 private:
  struct Plan;
  // Huge or unmapped ranges, refused before anything in proportion to their length.
  static int refuse_impossible(const PageRange& range);
  int lock_planned(Plan& plan);
  int unlock_range(const PageRange& range, void* address, std::size_t length, bool zero);
  // The steps of lock(); each records in the plan what it did, for roll_back().
  int plan_pages(Plan& plan);
  int hold_arena_pages(Plan& plan);
  int lock_foreign_pages(Plan& plan);
  int mlock_foreign_pages(const Plan& plan);
  int fall_back_unlocked(Plan& plan);
  int exclude_from_dumps(Plan& plan);
  void roll_back(const Plan& plan);
  void record(Plan& plan);

  int hold_arena_page(small::Arena& arena, std::uintptr_t page);
  void release_arena_page(small::Arena& arena, std::uintptr_t page);

  small::ArenaRegistry& registry_;
  small::Shard* shards_;
  large::LargeHeap& large_;
  budget::Budget& budget_;
  const std::atomic<std::uint64_t>& generation_;
  pages::Reclaimer reclaimer_;
  MaskedSpinLock lock_;
  pages::PageLockTable table_;
  std::atomic<std::size_t> locked_pages_{0};
};

}  // namespace lockbox::heap
