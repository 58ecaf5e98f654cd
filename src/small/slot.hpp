// A slot's own life, outside any lock: finding the slot a pointer names, handing a slot to the
// application (write-after-free check, canary) and taking it back (double-free and canary
// checks, zeroing). Safe without the shard lock because a slot that is live or cached belongs
// to exactly one owner, and its run cannot be dissolved while it holds the slot.
#pragma once

#include <cstddef>
#include <cstdint>

#include "small/arena.hpp"

namespace lockbox::small {

// Where a pointer sits inside an arena; run == nullptr if it is not the start of a slot.
struct SlotRef {
  Run* run;
  std::size_t slot;
  unsigned char* address;
};

SlotRef find_slot(Arena& arena, const void* pointer);

// A slot taken from its run (state cached) becomes the application's: checks that it still
// reads zero (else fatal write after free), records the size, stamps the canary.
void hand_out(const SlotRef& slot, std::size_t size);

// The application gives `pointer` back: fatal if it is not a live slot (double free, pointer
// lockbox never returned) or its canary is broken; then the slot is zeroed, marked cached and
// its requested size returned.
std::size_t take_back(Arena& arena, void* pointer, SlotRef* slot);

// Are all pages under the slot locked? A slot on a page BEST_EFFORT could not lock is not worth
// keeping in a cache: returning it lets the page go.
bool on_locked_pages(const SlotRef& slot);

}  // namespace lockbox::small
