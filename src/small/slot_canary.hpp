// SPDX-License-Identifier: ISC
// A small slot's canary: the bytes after the object inside one 16-byte window, which starts at
// the object's end or, when fewer than 16 bytes of slack remain, ends at the slot's end (so 8 to
// 16 canary bytes; size classes guarantee 8). Its first byte is zero, so a string that runs past
// the object stops there; the rest repeat a random 32-bit key drawn for the slot when it left its
// run and kept in the slot's word (metadata, out of line): one leaked canary gives away that
// slot's key and no other. Two word stores and two word loads at a computed offset, no loop and
// no branch on the size. The slack beyond the window stays zero and is checked on free too
// (slot_slack_zero in slot.hpp, with the slot scan).
#pragma once

#include <cstddef>
#include <cstdint>

#include "small/size_class.hpp"
#include "support/canary.hpp"

namespace lockbox::small {

struct SlotCanary {
  std::size_t window;   // offset of the window in the slot
  std::uint64_t first;  // what the window's first word holds, object bytes masked out
  std::uint64_t head;   // the canary bytes of the first word (the rest are the object's)
  std::uint64_t second; // what the window's second word holds
};

inline SlotCanary slot_canary(std::size_t size, std::size_t slot_size, std::uint32_t key) {
  using canary::detail::bytes_from;
  std::size_t last_window = slot_size - kCanaryWindow;
  std::size_t window = size < last_window ? size : last_window;
  std::size_t object_bytes = size - window;  // 0 to 8
  std::uint64_t word = std::uint64_t{key} * 0x0000000100000001ull;
  std::uint64_t head = bytes_from(object_bytes);
  // The byte at offset `size`: in the first word, or (8 object bytes there) the second's first.
  std::uint64_t zero_in_first = head & ~bytes_from(object_bytes + 1);
  std::uint64_t zero_in_second = (object_bytes >> 3) * std::uint64_t{0xff};
  return {window, word & head & ~zero_in_first, head, word & ~zero_in_second};
}

// The slot reads zero when this runs (checked on hand-out), so the object bytes the window
// shares stay zero.
inline void write_slot_canary(unsigned char* slot, const SlotCanary& canary) {
  canary::detail::store_word(slot + canary.window, canary.first);
  canary::detail::store_word(slot + canary.window + 8, canary.second);
}

inline bool slot_canary_intact(const unsigned char* slot, const SlotCanary& canary) {
  using canary::detail::load_word;
  std::uint64_t difference = (load_word(slot + canary.window) ^ canary.first) & canary.head;
  difference |= load_word(slot + canary.window + 8) ^ canary.second;
  return difference == 0;
}

}  // namespace lockbox::small
