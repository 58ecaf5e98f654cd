// Locks that callers take with lockbox_lock() on any memory: one entry per page with a nesting
// count, so that the kernel's mlock (which does not nest) is called on a page's 0 -> 1 and
// munlock on its 1 -> 0 only. The entry remembers what lockbox did to the page, so that unlock
// undoes exactly that and never an application's own lock or MADV_DONTDUMP.
#pragma once

#include <cstddef>
#include <cstdint>
#include <unordered_map>

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
  CallerLock* find(std::uintptr_t page) {
    auto found = pages_.find(page);
    return found == pages_.end() ? nullptr : &found->second;
  }
  CallerLock& insert(std::uintptr_t page, const CallerLock& lock) { return pages_[page] = lock; }
  void erase(std::uintptr_t page) { pages_.erase(page); }
  std::size_t page_count() const { return pages_.size(); }
  // Drops the entries of an unmapped range (a freed large block): nothing is left to unlock.
  void forget_range(std::uintptr_t start, std::size_t bytes);
  void clear() { pages_.clear(); }

 private:
  std::unordered_map<std::uintptr_t, CallerLock> pages_;
};

}  // namespace lockbox::pages
