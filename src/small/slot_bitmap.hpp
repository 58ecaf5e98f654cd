// SPDX-License-Identifier: ISC
// One bit per slot of a run: set = handed out. Lives in the arena's metadata mapping, never
// beside the secrets, so an overflow out of a secret cannot forge a free slot. The same bitmap,
// of other sizes, marks the live zero-byte objects (heap/zero_size_objects.hpp) and an arena's
// unowned and committed pages (arena.hpp).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>

#include "small/size_class.hpp"

namespace lockbox::small {

template <std::size_t kBits>
class Bitmap {
 public:
  static constexpr std::size_t kWords = (kBits + 63) / 64;
  static constexpr std::size_t kNone = SIZE_MAX;

  bool test(std::size_t slot) const { return (words_[slot / 64] >> (slot % 64)) & 1u; }
  void set(std::size_t slot) { words_[slot / 64] |= std::uint64_t{1} << (slot % 64); }
  void clear(std::size_t slot) { words_[slot / 64] &= ~(std::uint64_t{1} << (slot % 64)); }
  void clear_all() {
    for (auto& word : words_) word = 0;
  }

  // The first clear bit at or after `start` (< limit), wrapping around to 0; kNone if none.
  // With a random start, the slot a run hands out next cannot be foreseen.
  std::size_t clear_from(std::size_t start, std::size_t limit) const {
    std::size_t w = start / 64;
    std::uint64_t free_bits = ~words_[w] & (~std::uint64_t{0} << (start % 64));
    for (std::size_t visited = 0; visited <= kWords; ++visited) {
      if (free_bits != 0) {
        std::size_t slot = w * 64 + static_cast<std::size_t>(std::countr_zero(free_bits));
        if (slot < limit) return slot;
      }
      w = (w + 1) * 64 < limit ? w + 1 : 0;
      free_bits = ~words_[w];
    }
    return kNone;
  }

  // The first of `length` (1 to 64) consecutive set bits that are set in `other` too; kNone if
  // there are none. Word operations, not a walk bit by bit: a new run looks for its pages
  // in every arena of its shard.
  std::size_t first_run_also_in(const Bitmap& other, std::size_t length) const {
    std::uint64_t starts[kWords];  // bit i: bits i to i + covered - 1 are all set
    for (std::size_t w = 0; w < kWords; ++w) starts[w] = words_[w] & other.words_[w];
    for (std::size_t covered = 1; covered < length;) {
      std::size_t step = length - covered < covered ? length - covered : covered;
      for (std::size_t w = 0; w < kWords; ++w) {
        std::uint64_t above = w + 1 < kWords ? starts[w + 1] << (64 - step) : 0;
        starts[w] &= (starts[w] >> step) | above;
      }
      covered += step;
    }
    for (std::size_t w = 0; w < kWords; ++w) {
      if (starts[w] != 0) return w * 64 + static_cast<std::size_t>(std::countr_zero(starts[w]));
    }
    return kNone;
  }

  bool none() const {
    std::uint64_t any = 0;
    for (auto word : words_) any |= word;
    return any == 0;
  }

  std::size_t count() const {
    std::size_t total = 0;
    for (auto word : words_) total += static_cast<std::size_t>(std::popcount(word));
    return total;
  }

 private:
  std::uint64_t words_[kWords] = {};
};

using SlotBitmap = Bitmap<kMaxRunSlots>;

}  // namespace lockbox::small
