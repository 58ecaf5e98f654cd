// SPDX-License-Identifier: ISC
// An arena: 1 MiB of address space aligned to 1 MiB, a guard page at each end, carved into
// runs of one size class each. Its metadata (page refcounts, slot bitmaps, slot words)
// lives in a separate mapping, so no overflow out of a secret can reach it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "budget/budget.hpp"
#include "os/os.hpp"
#include "pages/page_commit.hpp"
#include "pages/secretmem_pool.hpp"
#include "small/size_class.hpp"
#include "small/slot_bitmap.hpp"

namespace lockbox::small {

inline constexpr std::size_t kArenaShift = 20;
inline constexpr std::size_t kArenaBytes = std::size_t{1} << kArenaShift;
inline constexpr std::size_t kArenaPages = kArenaBytes / os::kPageSize;
inline constexpr std::size_t kFirstDataPage = 1;              // page 0 is the leading guard
inline constexpr std::size_t kEndDataPage = kArenaPages - 1;  // the last page is the trailing guard
inline constexpr std::uint16_t kNoRun = 0xffff;

enum class PageState : std::uint8_t {
  kReserved,  // PROT_NONE, not locked
  kLocked,    // read-write and mlocked
  kUnlocked,  // read-write, not locked (BEST_EFFORT ran out of budget)
};

struct Arena;

// Where a slot is in its life. The bitmap says "taken from the run" (live or cached); this says
// which, per slot, so a thread cache can hand slots out and take them back without the shard
// lock, and a double free is caught even when the slot sits in a cache.
enum SlotState : std::uint8_t {
  kNoSlot = 0,      // no slot starts here (an interior granule, a page no run owns, a guard)
  kSlotFree = 1,    // in the run
  kSlotLive = 2,    // handed to the application
  kSlotCached = 3,  // zeroed, held by a thread cache
};

// A slot's word, kept per 16-byte granule of the arena for the slot that starts there, so that a
// free finds it from the pointer alone (no run, no division). It holds everything the fast paths
// need, read and changed in one atomic step on one cache line:
//   bits  0-3   SlotState
//   bits  8-15  size class
//   bits 16-31  while live, the size asked for (the canary follows it; at most 65,528)
//   bits 32-63  the slot's canary key, drawn when it leaves its run (small/slot_canary.hpp)
using SlotWord = std::uint64_t;
inline constexpr SlotWord kSlotStateMask = 0xf;
// What a change of state keeps: the canary key.
inline constexpr SlotWord kSlotKept = SlotWord{0xffffffff} << 32;
constexpr SlotWord slot_word(SlotState state, std::size_t class_index, std::size_t requested = 0,
                             SlotWord kept = 0) {
  return (static_cast<SlotWord>(requested) << 16) | (static_cast<SlotWord>(class_index) << 8) |
         (kept & kSlotKept) | state;
}
constexpr SlotWord slot_canary_bits(std::uint32_t key) { return static_cast<SlotWord>(key) << 32; }
constexpr SlotState slot_state(SlotWord word) {
  return static_cast<SlotState>(word & kSlotStateMask);
}
constexpr std::size_t slot_class(SlotWord word) { return (word >> 8) & 0xff; }
constexpr std::size_t slot_requested(SlotWord word) { return (word >> 16) & 0xffff; }
constexpr std::uint32_t slot_canary_key(SlotWord word) {
  return static_cast<std::uint32_t>(word >> 32);
}
static_assert(kMaxSmallRequest < (std::size_t{1} << 16) && kClassCount <= 256);

struct Run {
  Run* next = nullptr;  // the shard's list of runs with free slots, per class
  Run* prev = nullptr;
  Arena* arena = nullptr;
  std::uint16_t first_page = 0;
  std::uint8_t class_index = 0;
  bool listed = false;
  std::uint16_t live = 0;
  SlotBitmap used;
};

struct Arena {
  unsigned char* base = nullptr;  // the leading guard page
  Arena* next_in_shard = nullptr;
  std::uint64_t generation = 0;  // process generation (bumped in a forked child)
  std::uint32_t shard_index = 0;
  // The reservation came back locked: the application called mlockall(MCL_FUTURE).
  bool locked_by_application = false;
  // The data pages are memfd_secret memory: locked (and charged) whole from the start, never
  // mlocked, munlocked or discarded page by page, absent from a forked child.
  bool secretmem = false;
  // Live objects overlapping each page, plus nested locks taken by lockbox_lock().
  std::uint16_t page_refcount[kArenaPages];
  // Written only through set_page_state and set_page_run, which keep the maps below in step.
  PageState page_state[kArenaPages];
  std::uint16_t page_run[kArenaPages];  // first page of the owning run, or kNoRun
  // The same, a bit per page, for a new run's search (Shard::place_for_run): data pages no run
  // owns, and pages that are not kReserved.
  Bitmap<kArenaPages> unowned_pages_map;
  Bitmap<kArenaPages> committed_pages_map;
  Run runs[kArenaPages];                // indexed by a run's first page
  std::atomic<SlotWord> slot_words[kArenaBytes / kGranule];  // see SlotWord

  void set_page_state(std::size_t page, PageState state) {
    page_state[page] = state;
    if (state == PageState::kReserved) {
      committed_pages_map.clear(page);
    } else {
      committed_pages_map.set(page);
    }
  }
  void set_page_run(std::size_t page, std::uint16_t first) {
    page_run[page] = first;
    if (first == kNoRun) {
      unowned_pages_map.set(page);
    } else {
      unowned_pages_map.clear(page);
    }
  }

  unsigned char* page_address(std::size_t page) const { return base + page * os::kPageSize; }
  std::size_t page_index(const void* address) const {
    return static_cast<std::size_t>(static_cast<const unsigned char*>(address) - base) /
           os::kPageSize;
  }
  // The word of the slot that would start at `address` (inside this arena, 16-byte aligned).
  std::atomic<SlotWord>& slot_word_at(const void* address) {
    return slot_words[static_cast<std::size_t>(static_cast<const unsigned char*>(address) - base) /
                      kGranule];
  }
};

// Maps the arena's memory (guards included) and its metadata, from the budget's backend;
// nullptr with last_error set. `pool` may be null (anonymous memory only).
Arena* create_arena(std::uint64_t generation, std::uint32_t shard_index, budget::Budget& budget,
                    pages::SecretmemPool* pool, pages::Reclaimer reclaimer);

}  // namespace lockbox::small
