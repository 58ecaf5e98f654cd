// SPDX-License-Identifier: ISC
// Large objects (beyond the biggest size class, or aligned beyond a page): each block is its
// own mapping, [guard][data pages][guard], with the object pushed against the trailing guard so
// that a linear overflow faults at once. The slack after the object (under 16 bytes, or under
// the alignment) holds a canary whose first byte is zero; up to 16 bytes before the object (when
// it does not start on a page) hold another, so an underflow is caught at free. A freed block's
// address range stays reserved PROT_NONE in a bounded quarantine: a second free is a double free,
// a stale access faults, and the next block cannot be mapped where the old one was. The newest
// freed blocks keep their pages there (zeroed, locked, PROT_NONE: the cache), so that a block of
// the same shape, once kReuseAfterFrees later large frees have passed, is handed out again with
// one mprotect instead of a new mapping, lock and wipe.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "budget/budget.hpp"
#include "pages/page_commit.hpp"
#include "report/report.hpp"
#include "support/ordered_map.hpp"
#include "support/random_stream.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::large {

struct LargeStats {
  std::size_t live_allocations = 0;
  std::size_t in_use_bytes = 0;
  std::size_t reserved_bytes = 0;
  std::size_t quarantined_bytes = 0;  // address space of freed blocks, PROT_NONE
  std::size_t cached_bytes = 0;       // their pages kept locked for reuse (in locked_bytes)
};

class LargeHeap {
 public:
  // The quarantine keeps the newest freed blocks' ranges: at most this many, and at most this
  // much address space besides the newest block (which stays whatever its size). Each is one
  // mapping with no page behind it, so it costs a VMA and no memory.
  static constexpr std::size_t kQuarantineBlocks = 64;
  static constexpr std::size_t kQuarantineBytes = std::size_t{256} << 20;
  // A freed block's pages may be kept for reuse (zeroed, locked, PROT_NONE) up to the smaller of
  // this and half the RLIMIT_MEMLOCK budget, all blocks together; they are the first memory
  // given back when the budget runs short. A block is reused, in place, only after this many
  // later large frees: until then a second free of it is a double free and a stale access
  // faults, as for a block whose pages went back.
  static constexpr std::size_t kMaxCacheBytes = std::size_t{32} << 20;
  static constexpr std::uint64_t kReuseAfterFrees = 8;
  // Bytes before the object checked for an underflow (when the data pages have them).
  static constexpr std::size_t kLeadingCanaryBytes = 16;

  // nullptr with last_error set on failure. `alignment` is a power of two, >= 16 but for a
  // guarded secret (which is aligned to its size's lowest set bit, to end at its guard page).
  // `guarded`: a guarded secret (lockbox_guarded_alloc), whose pages the owner may switch
  // between no-access, read-only and read-write with protect().
  void* allocate(std::size_t size, std::size_t alignment, budget::Budget& budget,
                 pages::Reclaimer reclaimer, bool guarded = false);
  enum class Protection { kNoAccess, kReadOnly, kReadWrite };
  // 0, or EINVAL when `pointer` is not a live guarded secret (last_error set).
  int protect(void* pointer, Protection protection);
  bool is_guarded(const void* pointer);
  enum class FreeResult { kFreed, kDoubleFree, kNotAllocated };
  // A broken canary is fatal (reported as `operation`); a pointer that is not a live block is
  // the caller's to report. On kFreed, *mapping / *mapping_bytes say which range is gone.
  FreeResult free(void* pointer, budget::Budget& budget, report::Operation operation,
                  std::uintptr_t* mapping, std::size_t* mapping_bytes);
  bool usable_size(const void* pointer, std::size_t* size);
  // The reclaimer's first resort: gives every cached block's pages back (munlock, discard).
  // True if any went. Takes the lock only if it is free (a caller of the reclaimer may hold it).
  bool release_cache(budget::Budget& budget);
  // kLive, kInherited (from the parent of this forked child) or kNotOwned, as Heap::ownership.
  enum class Ownership { kNotOwned, kLive, kInherited };
  Ownership ownership(const void* pointer);
  // A caller lock on `page`, a data page of a live block: if BEST_EFFORT left the block
  // unlocked, it is locked now. 0, or ENOMEM under STRICT when it cannot be (last_error set).
  int lock_if_unlocked(std::uintptr_t page, budget::Budget& budget, pages::Reclaimer reclaimer);
  // Is `page` one of the data pages of a live block (guard pages are not)?
  bool contains_data_page(std::uintptr_t page);
  void add_stats(LargeStats& stats);

  void lock_for_fork() { lock_.lock(); }
  void unlock_after_fork() { lock_.unlock(); }
  // A forked child holds none of these blocks' locks, and their memory is wiped.
  void mark_inherited_after_fork();
  void forget_random() { random_.forget(); }

 private:
  struct Block {
    unsigned char* mapping;  // the leading guard page
    std::size_t data_pages;
    // The pages the object and its leading canary touch: padding_pages data pages after the
    // leading guard, committed_pages of them. The rest of the data pages (alignment padding,
    // before and after the object) stay reserved: PROT_NONE, never committed, charged or
    // locked; an access there faults like the guard pages.
    std::size_t padding_pages;
    std::size_t committed_pages;
    std::size_t size;        // requested bytes
    std::uint64_t canary;    // this block's own random canary word
    bool locked;             // false: committed unlocked under BEST_EFFORT
    bool inherited;          // from the parent process, wiped on fork
    bool guarded;            // a guarded secret: protection may change
    bool freeing;            // a free is under way: a second one is a double free
    Protection protection;
  };
  static void zero_resident_pages(unsigned char* data, std::size_t bytes);
  // Maps and advises a block's range (guards and data pages, all reserved). False with
  // last_error set.
  static bool reserve(Block& block);
  // Where the object goes in a reserved block, and which of its pages are committed.
  static unsigned char* place(Block& block, std::size_t alignment);
  // The live block whose committed pages hold `page`, or nullptr. Under lock_.
  Block* block_with_data_page(std::uintptr_t page);
  // The block's committed pages: from the first the object touches to the trailing guard.
  static unsigned char* committed_start(const Block& block) {
    return block.mapping + (1 + block.padding_pages) * os::kPageSize;
  }
  static std::size_t committed_bytes(const Block& block) {
    return block.committed_pages * os::kPageSize;
  }
  // A block's key in the table: the byte before the object (its leading canary), not the
  // object's address. The table then holds no pointer to any block, so a leak checker that
  // scans lockbox's bookkeeping (valgrind memcheck) still finds an abandoned block lost.
  static std::uintptr_t table_key(const void* pointer) {
    return reinterpret_cast<std::uintptr_t>(pointer) - 1;
  }
  struct QuarantinedBlock {
    std::uintptr_t pointer;  // its table_key
    unsigned char* mapping;
    std::size_t bytes;
    // Its shape, for reuse: a new block of the same one fits the same pages.
    std::size_t data_pages = 0;
    std::size_t padding_pages = 0;
    std::size_t committed_pages = 0;
    std::uint64_t freed_at = 0;  // its number among the large frees
    bool pages_kept = false;     // its committed pages are still locked (zeroed, PROT_NONE)
  };
  // Under the lock: a cached block of `shape`'s shape freed at least kReuseAfterFrees frees ago
  // leaves the quarantine into *taken. False if there is none.
  bool take_cached(const Block& shape, QuarantinedBlock* taken);
  // The address-independent part of place(), for alignments up to a page.
  static void shape_for(Block& block, std::size_t alignment);
  // padding_pages and committed_pages for an object `before_object` bytes into the data pages.
  static void set_committed_span(Block& block, std::size_t before_object);
  std::size_t cache_limit(const budget::Budget& budget) const;
  // Makes a block taken from the cache read-write again; false (the block unmapped, its budget
  // released) if the kernel refuses.
  static bool reopen_cached(Block& block, const QuarantinedBlock& cached, budget::Budget& budget);
  // Under the lock: gives back the pages of cached blocks, oldest first, until at most `keep`
  // bytes are cached.
  void shrink_cache(budget::Budget& budget, std::size_t keep);
  // Unmaps ranges that left the quarantine, releasing the budget of kept pages.
  static void unmap_evicted(budget::Budget& budget, const QuarantinedBlock* evicted,
                            std::size_t count);
  static std::size_t mapping_bytes(const Block& block);
  // Checks both canaries and zeroes the block (read-write again if it was a guarded secret).
  void check_and_wipe(void* pointer, const Block& block, report::Operation operation);
  // Under the lock: the block's range joins the quarantine; the ranges it pushes out are
  // written to `evicted` (to be unmapped after the lock is dropped). Returns how many.
  std::size_t enter_quarantine(const QuarantinedBlock& block, QuarantinedBlock* evicted);
  bool in_quarantine(std::uintptr_t pointer) const;

  MaskedFutexLock lock_;
  // Keyed by the pointer handed out; ordered, so that a page can be traced to its block.
  OrderedMap<Block> blocks_;
  // Entries of blocks_, readable without the lock. A block is inserted before its pointer is
  // handed out, so a page of a block the caller holds is never missed.
  std::atomic<std::size_t> block_count_{0};
  LargeStats stats_;
  // stats_.cached_bytes as of the last change, readable without the lock: a reclaim finds an
  // empty cache without blocking every signal and taking the lock (two system calls), which
  // past the budget under BEST_EFFORT it did on every page committed.
  std::atomic<std::size_t> cached_bytes_published_{0};
  void publish_cached_bytes() {
    cached_bytes_published_.store(stats_.cached_bytes, std::memory_order_release);
  }
  RandomStream random_;  // canary words, under lock_
  QuarantinedBlock quarantine_[kQuarantineBlocks] = {};
  std::size_t quarantine_oldest_ = 0;
  std::size_t quarantine_count_ = 0;
  std::uint64_t frees_ = 0;  // large frees so far, under lock_
};

}  // namespace lockbox::large
