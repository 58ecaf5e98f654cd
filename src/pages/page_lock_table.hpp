// SPDX-License-Identifier: ISC
// Locks that callers take with lockbox_lock() on any memory: one entry per page with a nesting
// count, so that the kernel's mlock (which does not nest) is called on a page's 0 -> 1 and
// munlock on its 1 -> 0 only. The entry remembers what lockbox did to the page, so that unlock
// undoes exactly that and never an application's own lock or MADV_DONTDUMP. The table is an
// open-addressing hash table on lockbox's own memory (support/metadata.hpp): room is reserved
// before a lock changes anything, so that recording it cannot fail.
#pragma once

#include <cstddef>
#include <cstdint>

#include "support/metadata.hpp"

namespace lockbox::pages {

enum class PageOwner : std::uint8_t {
  kForeign,  // memory lockbox did not allocate
  kArena,    // a committed page of a lockbox arena: the hold counts in the arena's refcount
  kLarge,    // a page of a live large block: locked by lockbox already
};

struct CallerLock {
  std::uint32_t count = 0;
  PageOwner owner = PageOwner::kForeign;
  bool locked_by_us = false;          // we called mlock (and charged the budget)
  bool unlocked_best_effort = false;  // BEST_EFFORT could not lock it (counted as unlocked)
  bool dont_dump_by_us = false;       // we set MADV_DONTDUMP
};

class PageLockTable {
 public:
  // Valid until the next reserve().
  CallerLock* find(std::uintptr_t page);
  // Room for `more` entries beyond those present; false when no memory can be had.
  bool reserve(std::size_t more);
  // `page` must be absent, and room reserved.
  void insert(std::uintptr_t page, const CallerLock& lock);
  void erase(std::uintptr_t page);
  std::size_t page_count() const { return count_; }
  // Drops the entries of an unmapped range (a freed large block): nothing is left to unlock.
  void forget_range(std::uintptr_t start, std::size_t bytes);
  void clear();

 private:
  struct Entry {
    std::uintptr_t page;  // 0: empty (page 0 is never mapped)
    CallerLock lock;
  };
  std::size_t slot_of(std::uintptr_t page) const {
    // Fibonacci hashing of the page number; the table's size is a power of two.
    return static_cast<std::size_t>(((page >> 12) * 0x9e3779b97f4a7c15u) >> shift_);
  }
  bool rehash(std::size_t capacity);

  metadata::Array<Entry> entries_;
  std::size_t count_ = 0;
  unsigned shift_ = 64;
};

}  // namespace lockbox::pages
