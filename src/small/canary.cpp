// Canary pattern: a 64-bit mix of the secret and the slot address, repeated over the slack.
#include "small/canary.hpp"

#include <cstring>

namespace lockbox::small {
namespace {

std::uint64_t g_secret = 0;

std::uint64_t canary_word(const unsigned char* base) {
  // A keyed finaliser (SplitMix64's): neighbouring slots get unrelated words, and without the
  // secret the pattern cannot be predicted from the address.
  std::uint64_t x = reinterpret_cast<std::uintptr_t>(base) ^ g_secret;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  // A zero byte would make a zero-filled slack look intact to a careless check: forbid it.
  return x | 0x0101010101010101ull;
}

unsigned char pattern_byte(std::uint64_t word, std::size_t offset) {
  return static_cast<unsigned char>(word >> (8 * (offset % 8)));
}

}  // namespace

void set_canary_secret(std::uint64_t secret) { g_secret = secret; }

void write_canary(unsigned char* base, std::size_t from, std::size_t to) {
  std::uint64_t word = canary_word(base);
  std::size_t i = from;
  for (; i < to && i % 8 != 0; ++i) base[i] = pattern_byte(word, i);
  for (; i + 32 <= to; i += 32) {
    std::uint64_t words[4] = {word, word, word, word};
    std::memcpy(base + i, words, 32);
  }
  for (; i + 8 <= to; i += 8) std::memcpy(base + i, &word, 8);
  for (; i < to; ++i) base[i] = pattern_byte(word, i);
}

bool canary_intact(const unsigned char* base, std::size_t from, std::size_t to) {
  std::uint64_t word = canary_word(base);
  std::uint64_t difference = 0;
  std::size_t i = from;
  for (; i < to && i % 8 != 0; ++i) difference |= base[i] ^ pattern_byte(word, i);
  for (; i + 32 <= to; i += 32) {
    std::uint64_t stored[4];
    std::memcpy(stored, base + i, 32);
    difference |= (stored[0] ^ word) | (stored[1] ^ word) | (stored[2] ^ word) | (stored[3] ^ word);
  }
  for (; i + 8 <= to; i += 8) {
    std::uint64_t stored;
    std::memcpy(&stored, base + i, 8);
    difference |= stored ^ word;
  }
  for (; i < to; ++i) difference |= base[i] ^ pattern_byte(word, i);
  return difference == 0;
}

}  // namespace lockbox::small
