// Large objects (beyond the biggest size class, or aligned beyond a page): each block is its
// own mapping, [guard][data pages][guard], with the object pushed against the trailing guard so
// that a linear overflow faults at once. The slack after the object (under 16 bytes, or under
// the alignment) holds a canary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

#include "budget/budget.hpp"
#include "pages/page_commit.hpp"
#include "support/spin_lock.hpp"

namespace lockbox::large {

struct LargeStats {
  std::size_t live_allocations = 0;
  std::size_t in_use_bytes = 0;
  std::size_t reserved_bytes = 0;
};

class LargeHeap {
 public:
  // nullptr with last_error set on failure. `alignment` is a power of two >= 16.
  // `guarded`: a guarded secret (lockbox_guarded_alloc), whose pages the owner may switch
  // between no-access, read-only and read-write with protect().
  void* allocate(std::size_t size, std::size_t alignment, budget::Budget& budget,
                 pages::Reclaimer reclaimer, bool guarded = false);
  enum class Protection { kNoAccess, kReadOnly, kReadWrite };
  // 0, or EINVAL when `pointer` is not a live guarded secret (last_error set).
  int protect(void* pointer, Protection protection);
  bool is_guarded(const void* pointer);
  // False if `pointer` is not a live large block (the caller decides what that means).
  // On success *mapping / *mapping_bytes say which address range is gone.
  bool free(void* pointer, budget::Budget& budget, std::uintptr_t* mapping,
            std::size_t* mapping_bytes);
  bool usable_size(const void* pointer, std::size_t* size);
  // Is `page` one of the data pages of a live block (guard pages are not)?
  bool contains_data_page(std::uintptr_t page);
  void add_stats(LargeStats& stats);

  void lock_for_fork() { lock_.lock(); }
  void unlock_after_fork() { lock_.unlock(); }
  // A forked child holds none of these blocks' locks, and their memory is wiped.
  void mark_inherited_after_fork();

 private:
  struct Block {
    unsigned char* mapping;  // the leading guard page
    std::size_t data_pages;
    std::size_t size;  // requested bytes
    bool locked;       // false: committed unlocked under BEST_EFFORT
    bool inherited;    // from the parent process, wiped on fork
    bool guarded;      // a guarded secret: protection may change
    Protection protection;
  };
  std::size_t mapping_bytes(const Block& block) const;

  SpinLock lock_;
  // Keyed by the pointer handed out; ordered, so that a page can be traced to its block.
  std::map<std::uintptr_t, Block> blocks_;
  LargeStats stats_;
};

}  // namespace lockbox::large
