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
#include "support/futex_lock.hpp"
#include "support/metadata.hpp"

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
        reclaimer_(reclaimer),
        physical_pages_(os::physical_memory_bytes() / os::kPageSize) {}

  // The whole pages a range touches.
  struct PageRange {
    std::uintptr_t first;
    std::size_t count;

    std::uintptr_t page(std::size_t i) const { return first + i * os::kPageSize; }
    void* pointer(std::size_t i) const { return reinterpret_cast<void*>(page(i)); }
  };

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
  // What one lock() does to each page, and how far it got.
  struct Plan {
    struct Page {
      pages::CallerLock* existing = nullptr;  // already locked by a caller: only counted
      pages::CallerLock fresh;
      small::Arena* arena = nullptr;
      bool needs_mlock = false;
      bool needs_dont_dump = false;
      // Give dumping back at the last unlock. Not for a page the kernel had locked already: an
      // application that locks memory itself may also keep it out of dumps (libsodium's and
      // OpenSSL's secure heaps do both), and MADV_DODUMP does not nest.
      bool restore_dump = false;
    };
    explicit Plan(metadata::Array<Page>& scratch) : pages(scratch) {}
    PageRange range{};
    metadata::Array<Page>& pages;  // the table's scratch array, under lock_
    std::size_t held = 0;          // pages[0, held) had their arena page held (where one is)
    std::size_t to_lock = 0;       // bytes of foreign pages to mlock
    bool locked = false;           // they are mlocked and charged as locked
    bool unlocked = false;         // BEST_EFFORT: they are counted as unlocked instead
    std::size_t dont_dumped = 0;   // pages[0, dont_dumped) had MADV_DONTDUMP set (where needed)
  };
  // Huge or unmapped ranges, refused before anything in proportion to their length.
  int refuse_impossible(const PageRange& range) const;
  int lock_planned(Plan& plan);
  int unlock_range(const PageRange& range, void* address, std::size_t length, bool zero);
  // The steps of lock(); each records in the plan what it did, for roll_back().
  int plan_pages(Plan& plan);
  // What the kernel says of the plan's new foreign pages: locked already (MADV_COLD, per run of
  // pages), or, on kernels without it, everything from smaps.
  int find_locked_foreign_pages(Plan& plan);
  int read_smaps(Plan& plan);
  static int explain_unlockable(const os::PageInfo& kernel, void* page);
  // After a refused mlock: EACCES or ENOMEM if a page was PROT_NONE or unmapped (last_error
  // set), 0 if the refusal was the budget's.
  static int explain_refused_mlock(const Plan& plan);
  static void munlock_runs(const Plan& plan, std::size_t end);
  int hold_arena_pages(Plan& plan);
  int lock_foreign_pages(Plan& plan);
  static int mlock_foreign_pages(const Plan& plan);
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
  MaskedFutexLock lock_;
  pages::PageLockTable table_;
  metadata::Array<Plan::Page> plan_pages_;  // under lock_
  std::size_t physical_pages_;              // a range beyond them can never be locked
  std::atomic<std::size_t> locked_pages_{0};
};

}  // namespace lockbox::heap
