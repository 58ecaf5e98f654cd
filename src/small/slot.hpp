// A slot's own life, outside any lock: finding the slot a pointer names, handing a slot to the
// application (write-after-free check, canary) and taking it back (double-free and canary
// checks, zeroing). Safe without the shard lock because a slot that is live or cached belongs
// to exactly one owner, and its run cannot be dissolved while it holds the slot.
// Inline: every small allocation and free runs these, and a call boundary would send the slot's
// description through memory (a 24-byte struct is returned on the stack, and reading it back
// whole stalled on store forwarding). Every failure leaves through report/, out of line.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "report/report.hpp"
#include "small/arena.hpp"
#include "small/canary.hpp"
#include "support/sanitizers.hpp"
#include "support/secure_zero.hpp"

namespace lockbox::small {

// Where a pointer sits inside an arena; run == nullptr if it is not the start of a slot.
struct SlotRef {
  Run* run;
  std::size_t slot;
  unsigned char* address;
};

namespace detail {

// Slots are 16-byte aligned and a multiple of 16 long, so both the write-after-free check and the
// zeroing work in whole 16-byte vectors (SSE2 on x86-64, NEON on arm64). The check reads every
// slot handed out, so its speed is the allocator's: four independent accumulators keep two loads
// in flight per cycle. Spelled as vector types, not as memcpy into a word array, which GCC
// spilled to the stack.
using Vector = std::uint64_t __attribute__((vector_size(16), may_alias));

// The slots of up to 64 bytes (most keys): four vectors at indices 0, min(1, last), min(2, last)
// and last cover the slot whatever its length, with no loop and no branch on it.
struct SmallSlotIndices {
  std::size_t second, third, last;
};
inline SmallSlotIndices small_slot_indices(std::size_t vectors) {
  std::size_t last = vectors - 1;
  return {last < 1 ? last : 1, last < 2 ? last : 2, last};
}

inline bool all_zero(const unsigned char* bytes, std::size_t length) {
  const auto* vectors = reinterpret_cast<const Vector*>(bytes);
  std::size_t count = length / sizeof(Vector);
  if (length <= 64) {
    SmallSlotIndices at = small_slot_indices(count);
    Vector any = (vectors[0] | vectors[at.second]) | (vectors[at.third] | vectors[at.last]);
    return (any[0] | any[1]) == 0;
  }
  Vector a{}, b{}, c{}, d{};
  std::size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    a |= vectors[i];
    b |= vectors[i + 1];
    c |= vectors[i + 2];
    d |= vectors[i + 3];
  }
  for (; i < count; ++i) a |= vectors[i];
  Vector any = (a | b) | (c | d);
  return (any[0] | any[1]) == 0;
}

// Zeroes a slot so that the compiler cannot drop it (keep_stores, as secure_zero does). Small
// slots get 16-byte vector stores in line: calling the C library's memset costs more than that.
inline void zero_slot(unsigned char* bytes, std::size_t length) {
  auto* vectors = reinterpret_cast<Vector*>(bytes);
  if (length <= 64) {
    SmallSlotIndices at = small_slot_indices(length / sizeof(Vector));
    vectors[0] = Vector{};
    vectors[at.second] = Vector{};
    vectors[at.third] = Vector{};
    vectors[at.last] = Vector{};
  } else if (length <= 256) {
    for (std::size_t i = 0; i < length / sizeof(Vector); ++i) vectors[i] = Vector{};
  } else {
    std::memset(bytes, 0, length);
  }
  keep_stores(bytes);
}

// The canary covers the first 64 bytes after the object (a linear overflow must cross them);
// the rest of a large slack stays zero, and is zeroed again on free with the whole slot.
inline std::size_t canary_end(std::size_t size, std::size_t slot_size) {
  return slot_size - size > kMaxCanaryBytes ? size + kMaxCanaryBytes : slot_size;
}

}  // namespace detail

inline SlotRef find_slot(Arena& arena, const void* pointer) {
  std::size_t page = arena.page_index(pointer);
  if (page < kFirstDataPage || page >= kEndDataPage || arena.page_run[page] == kNoRun) {
    return {nullptr, 0, nullptr};
  }
  Run& run = arena.runs[arena.page_run[page]];
  unsigned char* run_start = arena.page_address(run.first_page);
  auto offset = static_cast<std::size_t>(static_cast<const unsigned char*>(pointer) - run_start);
  std::size_t slot = slot_index(offset, run.class_index);
  if (slot * kSlotSizes[run.class_index] != offset) return {nullptr, 0, nullptr};
  return {&run, slot, run_start + offset};
}

// A slot of class `class_index` taken from its run (state cached) becomes the application's:
// checks that it still reads zero (else fatal write after free), stamps the canary, and records
// the size with the state. The class comes from the caller, not the run: one cache miss fewer.
inline void hand_out(const SlotRef& ref, std::size_t class_index, std::size_t size) {
  std::size_t slot_size = kSlotSizes[class_index];
  sanitizers::unpoison(ref.address, slot_size);
  if (!detail::all_zero(ref.address, slot_size)) report::fatal_write_after_free(ref.address);
  write_canary(ref.address, size, detail::canary_end(size, slot_size));
  sanitizers::poison(ref.address + size, slot_size - size);
  ref.run->slots[ref.slot].store(slot_word(kSlotLive, size), std::memory_order_release);
}

// The application gives `pointer` back: fatal if it is not a live slot (double free, pointer
// lockbox never returned) or its canary is broken; then the slot is zeroed and marked cached.
// Returns the slot; its requested size goes to *size.
inline SlotRef take_back(Arena& arena, void* pointer, std::size_t* size) {
  SlotRef ref = find_slot(arena, pointer);
  if (ref.run == nullptr) report::fatal_invalid_pointer(pointer);
  // One atomic step: of two threads freeing the same pointer at once, only one wins.
  std::atomic<SlotWord>& slot = ref.run->slots[ref.slot];
  SlotWord word = slot.load(std::memory_order_relaxed);
  if (slot_state(word) != kSlotLive ||
      !slot.compare_exchange_strong(word, slot_word(kSlotCached), std::memory_order_acq_rel)) {
    if (slot_state(word) == kSlotFree || slot_state(word) == kSlotCached) {
      report::fatal_double_free(pointer);
    }
    report::fatal_invalid_pointer(pointer);
  }
  std::size_t requested = slot_requested(word);
  std::size_t slot_size = kSlotSizes[ref.run->class_index];
  sanitizers::unpoison(ref.address, slot_size);
  if (!canary_intact(ref.address, requested, detail::canary_end(requested, slot_size))) {
    report::fatal_canary_broken(pointer);
  }
  detail::zero_slot(ref.address, slot_size);
  sanitizers::poison(ref.address, slot_size);
  *size = requested;
  return ref;
}

// Are all pages under the slot locked? A slot on a page BEST_EFFORT could not lock is not worth
// keeping in a cache: returning it lets the page go.
inline bool on_locked_pages(const SlotRef& ref) {
  const Arena& arena = *ref.run->arena;
  std::size_t slot_size = kSlotSizes[ref.run->class_index];
  return arena.page_state[arena.page_index(ref.address)] == PageState::kLocked &&
         arena.page_state[arena.page_index(ref.address + slot_size - 1)] == PageState::kLocked;
}

}  // namespace lockbox::small
