// SPDX-License-Identifier: ISC
// A slot's own life, outside any lock: handing a slot to the application (write-after-free
// check, canary) and taking it back (double-free and canary checks, zeroing). Safe without the
// shard lock because a slot that is live or cached belongs to exactly one owner, and its run
// cannot be dissolved while it holds the slot. A free finds everything it needs in the slot's
// word, indexed by the pointer's offset in its arena: no run, no division, one cache line.
// Inline: every small allocation and free runs these, and a call boundary would send the slot's
// description through memory (a struct returned on the stack stalled on store forwarding).
// Every failure leaves through report/, out of line.
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "report/report.hpp"
#include "small/arena.hpp"
#include "small/slot_canary.hpp"
#include "support/bench_switches.hpp"
#include "support/sanitizers.hpp"
#include "support/keep_stores.hpp"

namespace lockbox::small {

// Key-sized slots (64 bytes or less: the classes below this) are checked and zeroed with a few
// vector accesses, no loop and no call; the heap's fast paths serve them alone.
inline constexpr std::size_t kKeySizedClasses = 4;
static_assert(kSlotSizes[kKeySizedClasses - 1] == 64 && kSlotSizes[kKeySizedClasses] > 64);

// A slot held by a thread cache (or on its way there from a run): where it is and whose it is.
struct CachedSlot {
  unsigned char* address;
  Arena* arena;
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

// Slots above 64 bytes are scanned in a loop; where the processor has AVX2 (found once at start,
// detect_wide_vectors), in 32-byte vectors: twice the bytes per load, and the scan is what a
// hand-out of a large slot mostly costs.
inline bool g_wide_vectors = false;

#if defined(__x86_64__)
using WideVector = std::uint64_t __attribute__((vector_size(32)));

// Slots are only 16-byte aligned: every load is an unaligned one (memcpy into a register).
__attribute__((target("avx2"))) inline WideVector load_wide(const unsigned char* at) {
  WideVector vector;
  std::memcpy(&vector, at, sizeof vector);
  return vector;
}

__attribute__((target("avx2"))) inline bool all_zero_wide(const unsigned char* bytes,
                                                          std::size_t length) {
  constexpr std::size_t kWide = sizeof(WideVector);
  WideVector a{}, b{}, c{}, d{};
  std::size_t offset = 0;
  for (; offset + 4 * kWide <= length; offset += 4 * kWide) {
    a |= load_wide(bytes + offset);
    b |= load_wide(bytes + offset + kWide);
    c |= load_wide(bytes + offset + 2 * kWide);
    d |= load_wide(bytes + offset + 3 * kWide);
  }
  for (; offset + kWide <= length; offset += kWide) a |= load_wide(bytes + offset);
  // A slot of an odd number of 16-byte granules: the last 32 bytes, overlapping.
  if (offset != length) b |= load_wide(bytes + length - kWide);
  WideVector any = (a | b) | (c | d);
  return ((any[0] | any[1]) | (any[2] | any[3])) == 0;
}

inline void detect_wide_vectors() {
  __builtin_cpu_init();
  g_wide_vectors = __builtin_cpu_supports("avx2");
}
#else
inline bool all_zero_wide(const unsigned char*, std::size_t) { return false; }
inline void detect_wide_vectors() {}
#endif

inline bool all_zero(const unsigned char* bytes, std::size_t length) {
  const auto* vectors = reinterpret_cast<const Vector*>(bytes);
  std::size_t count = length / sizeof(Vector);
  if (length <= 64) {
    SmallSlotIndices at = small_slot_indices(count);
    Vector any = (vectors[0] | vectors[at.second]) | (vectors[at.third] | vectors[at.last]);
    return (any[0] | any[1]) == 0;
  }
  if (g_wide_vectors) return all_zero_wide(bytes, length);
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

// Zeroes a slot so that the compiler cannot drop it (memset, then keep_stores). Small
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
    // The first and the last eight vectors, overlapping: a loop here was turned into `rep stos`
    // by GCC, whose start-up costs more than the whole slot.
    std::size_t last = length / sizeof(Vector) - 1;  // 4 to 15
    for (std::size_t i = 0; i < 8; ++i) {
      std::size_t step = i < last ? i : last;
      vectors[step] = Vector{};
      vectors[last - step] = Vector{};
    }
  } else {
    std::memset(bytes, 0, length);
  }
  keep_stores(bytes);
}

// The masks of the 16 bytes a slack check reads when its first `skip` (0 to 16) are the
// canary's: which bytes of its two words are slack. One load, not four shifts by a variable count.
struct SlackMasks {
  std::uint64_t low, high;
};
inline constexpr auto kSlackMasks = [] {
  using canary::detail::bytes_from;
  std::array<SlackMasks, kGranule + 1> masks{};
  for (std::size_t skip = 0; skip <= kGranule; ++skip) {
    masks[skip] = {bytes_from(skip < 8 ? skip : 8), bytes_from(skip > 8 ? skip - 8 : 0)};
  }
  return masks;
}();

}  // namespace detail

// The 16 bytes after a slot's canary window still read zero (they did on hand-out), or as many
// as the slot has: the whole slack of a key-sized slot and of any slot with at most 16 bytes of
// it. A linear overflow that skips the canary lands there first. Slack deeper in a bigger slot
// is read by the scan when the slot is next handed out, with the rest of the slot. One 16-byte
// load, ending at the slot's end at the latest, and a mask for the canary bytes it covers: no
// loop and no branch. The whole-slack check it replaced ran a scan whose length changed with
// every request size, behind two branches on it, which mispredicted on mixed sizes: 82.9 ns per
// operation there against 76.1 with this one (README, "The slack check on free").
inline bool slack_head_zero(const unsigned char* slot, const SlotCanary& canary,
                            std::size_t slot_size) {
  std::size_t after = canary.window + kCanaryWindow;  // <= slot_size
  std::size_t last = slot_size - kGranule;
  std::size_t at = after < last ? after : last;  // >= canary.window
  const detail::SlackMasks& masks = detail::kSlackMasks[after - at];
  detail::Vector held;
  std::memcpy(&held, slot + at, sizeof held);
  detail::Vector slack = held & detail::Vector{masks.low, masks.high};
  return (slack[0] | slack[1]) == 0;
}

// The word of the slot that starts at `pointer` in `arena`, or nullptr if no slot could start
// there (not 16-byte aligned). Whether one does is the word's to say (kNoSlot).
inline std::atomic<SlotWord>* slot_word_for(Arena& arena, const void* pointer) {
  if ((reinterpret_cast<std::uintptr_t>(pointer) & (kGranule - 1)) != 0) return nullptr;
  return &arena.slot_word_at(pointer);
}

using report::Operation;

// A slot of class `class_index` taken from its run (state cached) becomes the application's:
// checks that it still reads zero (else fatal write after free), stamps the canary with the
// slot's key, and records the size with the state. The class comes from the caller: one load
// fewer.
inline void hand_out(const CachedSlot& slot, std::size_t class_index, std::size_t size,
                     Operation operation) {
  std::size_t slot_size = kSlotSizes[class_index];
  sanitizers::unpoison(slot.address, slot_size);
  if constexpr (bench_switches::kSampledScan) {
    bool whole = slot_size <= 64 || (++bench_switches::t_sampled_hand_outs & 15) == 0;
    bool zero = whole ? detail::all_zero(slot.address, slot_size)
                      : detail::all_zero(slot.address, 32) &&
                            detail::all_zero(slot.address + slot_size - 32, 32);
    if (!zero) report::fatal_write_after_free(operation, slot.address);
  } else if (!bench_switches::kNoScan && !detail::all_zero(slot.address, slot_size)) {
    report::fatal_write_after_free(operation, slot.address);
  }
  std::atomic<SlotWord>& word = slot.arena->slot_word_at(slot.address);
  SlotWord kept = word.load(std::memory_order_relaxed);
  if constexpr (!bench_switches::kNoCanary) {
    write_slot_canary(slot.address, slot_canary(size, slot_size, slot_canary_key(kept)));
  }
  sanitizers::poison(slot.address + size, slot_size - size);
  // release: the canary and the size become visible with the live state, so a thread that frees
  // this object (its acquire in take_back) checks the canary this thread wrote, whatever the
  // application did to pass the pointer across. Every state change of a slot word is a release,
  // and every read that decides on one an acquire.
  word.store(slot_word(kSlotLive, class_index, size, kept), std::memory_order_release);
  sanitizers::allocated(slot.address, size);
}

// What a free learned about the slot it took back.
struct FreedSlot {
  std::size_t class_index;
  std::size_t requested;
};

// A free of `pointer`, whose slot word reads `word`, found no live slot: a slot already free or
// cached is a double free; no slot starting there is a pointer lockbox never returned.
[[noreturn]] inline void report_not_live(Operation operation, const void* pointer,
                                         SlotWord word) {
  if (slot_state(word) == kSlotFree || slot_state(word) == kSlotCached) {
    report::fatal_double_free(operation, pointer);
  }
  report::fatal_invalid_pointer(operation, pointer);
}

// The application gives `pointer` back, and its slot's word `slot` read `word` a moment ago
// (an acquire load: the canary and size that hand_out wrote before its release are seen here):
// fatal if it is not a live slot (double free, pointer lockbox never returned), its canary is
// broken or its slack was written; then the slot is zeroed (through its canary window: the slack
// beyond reads zero already) and marked cached.
//
// The canary and the slack are checked before the atomic step, not after it: the locked
// instruction holds back the loads behind it until it completes, and the checks waited for it
// on every free (a few cycles of a 32-byte pair). A check that fails reads the word again before
// it blames the canary: a second thread that freed the same pointer meanwhile, and zeroed it,
// makes this free a double free, as the atomic step would have found.
__attribute__((always_inline)) inline FreedSlot take_back(void* pointer,
                                                          std::atomic<SlotWord>& slot,
                                                          SlotWord word, Operation operation) {
  if (slot_state(word) != kSlotLive) report_not_live(operation, pointer, word);
  std::size_t class_index = slot_class(word);
  auto* bytes = static_cast<unsigned char*>(pointer);
  std::size_t requested = slot_requested(word);
  std::size_t slot_size = kSlotSizes[class_index];
  // memcheck forgets the block (a later use is a use after free); lockbox reads and zeroes it.
  sanitizers::released(bytes);
  sanitizers::unpoison(bytes, slot_size);
  // Past the canary window, only slack, which read zero on hand-out: its first 16 bytes are
  // checked below, the rest by the scan of the slot's next hand-out. So a slot above the key
  // sizes is zeroed only through the window's last granule: a 16 KiB buffer sits in a 20 KiB
  // slot, and the 4 KiB after its canary were written again on every free.
  std::size_t written = slot_size;
  if constexpr (!bench_switches::kNoCanary) {
    SlotCanary canary = slot_canary(requested, slot_size, slot_canary_key(word));
    if (class_index >= kKeySizedClasses) {
      written = (canary.window + kCanaryWindow + kGranule - 1) & ~(kGranule - 1);
    }
    bool canary_intact = slot_canary_intact(bytes, canary);
    // A key-sized slot whose window ends it has no slack: a branch that one key size always
    // takes the same way, where the load and mask cost a 32-byte pair half a nanosecond.
    bool slack_intact = (slot_size <= 64 && canary.window + kCanaryWindow == slot_size) ||
                        slack_head_zero(bytes, canary, slot_size);
    if (!canary_intact || !slack_intact) [[unlikely]] {
      // The word changed: another free took the slot meanwhile (perhaps it was handed out
      // again since).
      if (slot.load(std::memory_order_acquire) != word) {
        report::fatal_double_free(operation, pointer);
      }
      if (!canary_intact) report::fatal_canary_broken(operation, pointer);
      report::fatal_slack_written(operation, pointer);
    }
  }
  // One atomic step: of two threads freeing the same pointer at once, only one wins (a live
  // word changes only by a free, so the loser's is a double free). The release makes the change
  // to cached a release like every other state change of a slot word.
  if constexpr (bench_switches::kNoCas) {
    slot.store(slot_word(kSlotCached, class_index, 0, word), std::memory_order_relaxed);
  } else {
    SlotWord expected = word;
    if (!slot.compare_exchange_strong(expected, slot_word(kSlotCached, class_index, 0, word),
                                      std::memory_order_release, std::memory_order_relaxed)) {
      report::fatal_double_free(operation, pointer);
    }
  }
  detail::zero_slot(bytes, written);
  sanitizers::poison(bytes, slot_size);
  return {class_index, requested};
}

// A forked child frees a slot of an arena it inherited (wiped: its canary is gone too) from a
// signal handler that interrupted lockbox: the word goes from live to free in one atomic step,
// so a second free is still a double free. The run's counts are left as they are: the child
// never allocates from its parent's arenas.
inline void retire_inherited_slot(Arena& arena, void* pointer, Operation operation) {
  std::atomic<SlotWord>* slot = slot_word_for(arena, pointer);
  if (slot == nullptr) report::fatal_invalid_pointer(operation, pointer);
  SlotWord word = slot->load(std::memory_order_relaxed);
  if (slot_state(word) != kSlotLive ||
      !slot->compare_exchange_strong(word, slot_word(kSlotFree, slot_class(word)),
                                     std::memory_order_acq_rel)) {
    report_not_live(operation, pointer, word);
  }
  sanitizers::released(pointer);
}

inline FreedSlot take_back(Arena& arena, void* pointer, Operation operation) {
  std::atomic<SlotWord>* slot = slot_word_for(arena, pointer);
  if (slot == nullptr) report::fatal_invalid_pointer(operation, pointer);
  return take_back(pointer, *slot, slot->load(std::memory_order_acquire), operation);
}

}  // namespace lockbox::small
