// Canaries: the bytes between the requested size and the end of a slot (at least 8, at most 64)
// hold a pattern derived from a per-process random secret and the slot's address. Any overflow of
// the requested size changes them, and free() notices. Inline: every allocation and free runs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lockbox::small {

inline std::uint64_t g_canary_secret = 0;

// Called once, with a secret from the system's random generator.
inline void set_canary_secret(std::uint64_t secret) { g_canary_secret = secret; }

// The pattern at byte offset i (from `base`) is byte i % 8 of a word keyed on `base`, so it can
// be written and checked a word at a time.
inline std::uint64_t canary_word(const unsigned char* base) {
  // A keyed finaliser (SplitMix64's): neighbouring slots get unrelated words, and without the
  // secret the pattern cannot be predicted from the address.
  std::uint64_t x = reinterpret_cast<std::uintptr_t>(base) ^ g_canary_secret;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  // A zero byte would make a zero-filled slack look intact to a careless check: forbid it.
  return x | 0x0101010101010101ull;
}

namespace detail {
// Which bytes of the 8-byte word at offset i belong to [from, to). The words touched lie inside
// the slot (it is 16-byte aligned), so reading a whole word is always allowed.
inline std::uint64_t canary_mask(std::size_t i, std::size_t from, std::size_t to) {
  std::uint64_t mask = ~std::uint64_t{0};
  if (i < from) mask &= ~std::uint64_t{0} << (8 * (from - i));
  if (i + 8 > to) mask &= ~std::uint64_t{0} >> (8 * (i + 8 - to));
  return mask;
}
}  // namespace detail

inline void write_canary(unsigned char* base, std::size_t from, std::size_t to) {
  std::uint64_t word = canary_word(base);
  if (((from | to) & 7) == 0) {  // the common case: whole words
    for (std::size_t i = from; i < to; i += 8) std::memcpy(base + i, &word, 8);
    return;
  }
  for (std::size_t i = from & ~std::size_t{7}; i < to; i += 8) {
    std::uint64_t mask = detail::canary_mask(i, from, to);
    std::uint64_t stored;
    std::memcpy(&stored, base + i, 8);
    stored = (stored & ~mask) | (word & mask);
    std::memcpy(base + i, &stored, 8);
  }
}

inline bool canary_intact(const unsigned char* base, std::size_t from, std::size_t to) {
  std::uint64_t word = canary_word(base);
  std::uint64_t difference = 0;
  if (((from | to) & 7) == 0) {  // the common case: whole words
    for (std::size_t i = from; i < to; i += 8) {
      std::uint64_t stored;
      std::memcpy(&stored, base + i, 8);
      difference |= stored ^ word;
    }
    return difference == 0;
  }
  for (std::size_t i = from & ~std::size_t{7}; i < to; i += 8) {
    std::uint64_t stored;
    std::memcpy(&stored, base + i, 8);
    difference |= (stored ^ word) & detail::canary_mask(i, from, to);
  }
  return difference == 0;
}

}  // namespace lockbox::small
