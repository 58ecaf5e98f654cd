// SPDX-License-Identifier: ISC
// A small slot's canary: the bytes after the object inside one 16-byte window, which starts at
// the object's end or, when fewer than 16 bytes of slack remain, ends at the slot's end (so 8 to
// 16 canary bytes; size classes guarantee 8). Its first byte is zero, so a string that runs past
// the object stops there; the rest repeat a random 32-bit key drawn for the slot when it left its
// run and kept in the slot's word (metadata, out of line): one leaked canary gives away that
// slot's key and no other. Two word stores and one 16-byte load at a computed offset, no loop and
// no branch on the size. The slack beyond the window stays zero: its first 16 bytes are checked
// on free too (slack_head_zero in slot.hpp), all of it by the scan of the slot's next hand-out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "small/size_class.hpp"
#include "support/canary.hpp"

namespace lockbox::small {

struct SlotCanary {
  std::size_t window;   // offset of the window in the slot
  std::uint64_t first;  // what the window's first word holds, object bytes masked out
  std::uint64_t head;   // the canary bytes of the first word (the rest are the object's)
  std::uint64_t second; // what the window's second word holds
};

namespace detail {
// The masks of a window that shares its first `object_bytes` (0 to 8) bytes with the object, one
// entry each, built at compile time: a lookup costs one load, where the shifts that build them
// (two by a variable count per mask, three micro-operations each on Intel) ran twice on every
// allocation and free of a key.
struct CanaryMasks {
  std::uint64_t first;   // the first word's canary bytes, its zero byte left out
  std::uint64_t head;    // the first word's canary bytes
  std::uint64_t second;  // the second word's canary bytes, its zero byte left out
};
inline constexpr auto kCanaryMasks = [] {
  using canary::detail::bytes_from;
  std::array<CanaryMasks, 9> masks{};
  for (std::size_t object_bytes = 0; object_bytes <= 8; ++object_bytes) {
    std::uint64_t head = bytes_from(object_bytes);
    // The byte at offset `size`: in the first word, or (8 object bytes there) the second's first.
    std::uint64_t zero_in_first = head & ~bytes_from(object_bytes + 1);
    std::uint64_t zero_in_second = (object_bytes >> 3) * std::uint64_t{0xff};
    masks[object_bytes] = {head & ~zero_in_first, head, ~zero_in_second};
  }
  return masks;
}();
}  // namespace detail

inline SlotCanary slot_canary(std::size_t size, std::size_t slot_size, std::uint32_t key) {
  std::size_t last_window = slot_size - kCanaryWindow;
  std::size_t window = size < last_window ? size : last_window;
  const detail::CanaryMasks& masks = detail::kCanaryMasks[size - window];  // 0 to 8 object bytes
  std::uint64_t word = std::uint64_t{key} * 0x0000000100000001ull;
  return {window, word & masks.first, masks.head, word & masks.second};
}

// The slot reads zero when this runs (checked on hand-out), so the object bytes the window
// shares stay zero.
inline void write_slot_canary(unsigned char* slot, const SlotCanary& canary) {
  canary::detail::store_word(slot + canary.window, canary.first);
  canary::detail::store_word(slot + canary.window + 8, canary.second);
}

// One 16-byte load, not two 8-byte ones: hand_out's two word stores become one 16-byte store,
// which a key's free often reads back soon after. With the two loads a 32-byte pair took 2 to 3
// cycles more (of about 67; interleaved batches on AMD Zen 3).
inline bool slot_canary_intact(const unsigned char* slot, const SlotCanary& canary) {
  using Window = std::uint64_t __attribute__((vector_size(16)));
  Window held;
  std::memcpy(&held, slot + canary.window, sizeof held);
  Window difference = (held ^ Window{canary.first, canary.second}) & Window{canary.head, ~0ull};
  return (difference[0] | difference[1]) == 0;
}

}  // namespace lockbox::small
