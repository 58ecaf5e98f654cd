// Canaries: bytes right after the requested size hold a pattern derived from a per-process
// random secret and the slot's (or block's) address. Any linear overflow of the requested size
// changes them, and free() notices. Inline: every allocation and free runs it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "small/size_class.hpp"

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
inline std::uint64_t load_word(const unsigned char* at) {
  std::uint64_t word;
  std::memcpy(&word, at, 8);
  return word;
}
inline void store_word(unsigned char* at, std::uint64_t word) { std::memcpy(at, &word, 8); }
// The bytes of a word from byte `first` (0..7) on, and the bytes before byte `end` (1..7).
inline std::uint64_t bytes_from(std::size_t first) { return ~std::uint64_t{0} << (8 * first); }
inline std::uint64_t bytes_before(std::size_t end) { return ~(~std::uint64_t{0} << (8 * end)); }
}  // namespace detail

// The canary spans [from, to). It is worked in aligned words: a head word shared with the
// object's last bytes, whole words, and a tail word shared with the slack after it (a large
// block's canary may be shorter than a word and sit inside one). The words touched lie inside
// the slot or block (both are 16-byte aligned), so reading a whole word is allowed. Peeling
// head and tail keeps masks out of the loop: sizes are rarely multiples of 8.
inline void write_canary(unsigned char* base, std::size_t from, std::size_t to) {
  using namespace detail;
  if (from >= to) return;
  std::uint64_t word = canary_word(base);
  std::size_t first = from & ~std::size_t{7}, last = to & ~std::size_t{7};
  std::uint64_t head = bytes_from(from - first);
  if (first == last) head &= bytes_before(to - last);
  store_word(base + first, (load_word(base + first) & ~head) | (word & head));
  if (first == last) return;
  for (std::size_t i = first + 8; i < last; i += 8) store_word(base + i, word);
  if (to != last) {
    std::uint64_t tail = bytes_before(to - last);
    store_word(base + last, (load_word(base + last) & ~tail) | (word & tail));
  }
}

inline bool canary_intact(const unsigned char* base, std::size_t from, std::size_t to) {
  using namespace detail;
  if (from >= to) return true;
  std::uint64_t word = canary_word(base);
  std::size_t first = from & ~std::size_t{7}, last = to & ~std::size_t{7};
  std::uint64_t head = bytes_from(from - first);
  if (first == last)
    return ((load_word(base + first) ^ word) & head & bytes_before(to - last)) == 0;
  std::uint64_t difference = (load_word(base + first) ^ word) & head;
  for (std::size_t i = first + 8; i < last; i += 8) difference |= load_word(base + i) ^ word;
  if (to != last) difference |= (load_word(base + last) ^ word) & bytes_before(to - last);
  return difference == 0;
}

// A small slot's canary: the bytes after the object inside one 16-byte window, which starts at
// the object's end or, when fewer than 16 bytes of slack remain, ends at the slot's end (so 8 to
// 16 canary bytes; size classes guarantee 8). Two word stores and two word loads at a computed
// offset, with no loop and no branch on the size: sizes vary from call to call, and a
// mispredicted loop exit cost more than the canary itself. The window's first word may begin
// with object bytes; `head` masks them out.
struct SlotCanary {
  std::size_t window;  // offset of the window in the slot
  std::uint64_t head;  // the canary bytes of the window's first word
};

inline SlotCanary slot_canary(std::size_t size, std::size_t slot_size) {
  std::size_t last_window = slot_size - kCanaryWindow;
  std::size_t window = size < last_window ? size : last_window;
  std::size_t object_bytes = size - window;  // 0 to 8
  // Two shifts, so that 8 object bytes (a shift by 64 in one step) give an empty mask.
  return {window, (~std::uint64_t{0} << (4 * object_bytes)) << (4 * object_bytes)};
}

// The slot reads zero when this runs (checked on hand-out), so the object bytes the window
// shares stay zero.
inline void write_slot_canary(unsigned char* slot, SlotCanary canary) {
  std::uint64_t word = canary_word(slot);
  detail::store_word(slot + canary.window, word & canary.head);
  detail::store_word(slot + canary.window + 8, word);
}

inline bool slot_canary_intact(const unsigned char* slot, SlotCanary canary) {
  std::uint64_t word = canary_word(slot);
  std::uint64_t difference = (detail::load_word(slot + canary.window) ^ word) & canary.head;
  difference |= detail::load_word(slot + canary.window + 8) ^ word;
  return difference == 0;
}

}  // namespace lockbox::small
