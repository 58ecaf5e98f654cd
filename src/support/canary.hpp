// SPDX-License-Identifier: ISC
// Canaries around large blocks and guarded secrets: a span of bytes filled from a random word
// drawn for that block alone (kept in the block's metadata, out of line), so reading one canary
// tells an attacker that block's canary and nothing about any other. The first byte after an
// object is zero, so a string that runs into the canary ends there. Small slots keep theirs in
// small/slot_canary.hpp, in one 16-byte window.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lockbox::canary {

namespace detail {
inline std::uint64_t load_word(const unsigned char* at) {
  std::uint64_t word;
  std::memcpy(&word, at, 8);
  return word;
}
inline void store_word(unsigned char* at, std::uint64_t word) { std::memcpy(at, &word, 8); }
// The bytes of a word from byte `first` (0..8) on, and the bytes before byte `end` (0..8). Two
// shifts each, so that 8 (a shift by 64 in one step) gives an empty or a full mask.
constexpr std::uint64_t bytes_from(std::size_t first) {
  return (~std::uint64_t{0} << (4 * first)) << (4 * first);
}
constexpr std::uint64_t bytes_before(std::size_t end) { return ~bytes_from(end); }
}  // namespace detail

// Where a span's first byte must read zero: after an object (a string stops there), not before
// one (a leading canary).
enum class FirstByte { kZero, kRandom };

// The span [from, to) of `base` holds byte i % 8 of `word` at offset i, except the first when
// FirstByte::kZero. It is worked in words aligned to `base` (which is 16-byte aligned): a head word
// shared with whatever precedes the span, whole words, and a tail word shared with what follows,
// each masked, so no byte outside the span changes. Every word touched lies within the 8-byte
// aligned hull of the span, which the caller guarantees is its memory.
inline void write_span(unsigned char* base, std::size_t from, std::size_t to, std::uint64_t word,
                       FirstByte first_byte) {
  using namespace detail;
  if (from >= to) return;
  std::size_t first = from & ~std::size_t{7}, last = to & ~std::size_t{7};
  std::uint64_t head_word = word;
  if (first_byte == FirstByte::kZero) head_word &= ~(std::uint64_t{0xff} << (8 * (from - first)));
  std::uint64_t head = bytes_from(from - first);
  if (first == last) head &= bytes_before(to - last);
  store_word(base + first, (load_word(base + first) & ~head) | (head_word & head));
  if (first == last) return;
  for (std::size_t i = first + 8; i < last; i += 8) store_word(base + i, word);
  if (to != last) {
    std::uint64_t tail = bytes_before(to - last);
    store_word(base + last, (load_word(base + last) & ~tail) | (word & tail));
  }
}

inline bool span_intact(const unsigned char* base, std::size_t from, std::size_t to,
                        std::uint64_t word, FirstByte first_byte) {
  using namespace detail;
  if (from >= to) return true;
  std::size_t first = from & ~std::size_t{7}, last = to & ~std::size_t{7};
  std::uint64_t head_word = word;
  if (first_byte == FirstByte::kZero) head_word &= ~(std::uint64_t{0xff} << (8 * (from - first)));
  std::uint64_t head = bytes_from(from - first);
  if (first == last) return ((load_word(base + first) ^ head_word) & head & bytes_before(to - last)) == 0;
  std::uint64_t difference = (load_word(base + first) ^ head_word) & head;
  for (std::size_t i = first + 8; i < last; i += 8) difference |= load_word(base + i) ^ word;
  if (to != last) difference |= (load_word(base + last) ^ word) & bytes_before(to - last);
  return difference == 0;
}

}  // namespace lockbox::canary
