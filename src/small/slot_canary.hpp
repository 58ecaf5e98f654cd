// SPDX-License-Identifier: ISC
// A small slot's canary: the bytes after the object inside one 16-byte window, which starts at
// the object's end or, when fewer than 16 bytes of slack remain, ends at the slot's end (so 8 to
// 16 canary bytes; size classes guarantee 8). Its first byte is zero, so a string that runs past
// the object stops there; the rest repeat a random 32-bit key drawn for the slot when it left its
// run and kept in the slot's word (metadata, out of line): one leaked canary gives away that
// slot's key and no other. One 16-byte store and one 16-byte load at a computed offset, no loop
// and no branch on the size. The slack beyond the window stays zero: its first 16 bytes are checked
// on free too (slack_head_zero in slot.hpp), all of it by the scan of the slot's next hand-out.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "small/size_class.hpp"
#include "support/canary.hpp"

namespace lockbox::small {

// The 16 bytes of a window, as one vector: the canary is built, stored, loaded and compared
// whole, in vector registers. Built word by word in general registers, the key's broadcast, the
// masks' loads and the halves' moves took about twenty instructions of every key's allocation
// and free.
using CanaryVector = std::uint64_t __attribute__((vector_size(16), may_alias));

struct SlotCanary {
  std::size_t window;     // offset of the window in the slot
  CanaryVector expected;  // what the window holds, object bytes (and the zero byte) zero
  CanaryVector canary;    // which of its bytes are canary (the rest are the object's)
};

namespace detail {
// The masks of a window that shares its first `object_bytes` (0 to 8) bytes with the object, one
// entry each, built at compile time: a lookup costs two aligned loads, where the shifts that
// build them (two by a variable count per mask, three micro-operations each on Intel) ran twice
// on every allocation and free of a key.
struct alignas(16) CanaryMasks {
  CanaryVector keyed;   // the canary bytes that repeat the key: the zero byte left out
  CanaryVector canary;  // every canary byte
};
inline constexpr auto kCanaryMasks = [] {
  using canary::detail::bytes_from;
  std::array<CanaryMasks, 9> masks{};
  for (std::size_t object_bytes = 0; object_bytes <= 8; ++object_bytes) {
    std::uint64_t head = bytes_from(object_bytes);
    // The byte at offset `size`: in the first word, or (8 object bytes there) the second's first.
    std::uint64_t zero_in_first = head & ~bytes_from(object_bytes + 1);
    std::uint64_t zero_in_second = (object_bytes >> 3) * std::uint64_t{0xff};
    masks[object_bytes] = {CanaryVector{head & ~zero_in_first, ~zero_in_second},
                           CanaryVector{head, ~std::uint64_t{0}}};
  }
  return masks;
}();
}  // namespace detail

inline SlotCanary slot_canary(std::size_t size, std::size_t slot_size, std::uint32_t key) {
  std::size_t last_window = slot_size - kCanaryWindow;
  std::size_t window = size < last_window ? size : last_window;
  const detail::CanaryMasks& masks = detail::kCanaryMasks[size - window];  // 0 to 8 object bytes
  using Lanes = std::uint32_t __attribute__((vector_size(16)));
  auto repeated = reinterpret_cast<CanaryVector>(Lanes{} + key);  // one broadcast
  return {window, repeated & masks.keyed, masks.canary};
}

// The slot reads zero when this runs (checked on hand-out), so the object bytes the window
// shares stay zero.
inline void write_slot_canary(unsigned char* slot, const SlotCanary& canary) {
  std::memcpy(slot + canary.window, &canary.expected, sizeof canary.expected);
}

// One 16-byte load, as the window is written with one 16-byte store, which a key's free often
// reads back soon after: with two 8-byte loads a 32-byte pair took 2 to 3 cycles more (of about
// 67; interleaved batches on AMD Zen 3).
inline bool slot_canary_intact(const unsigned char* slot, const SlotCanary& canary) {
  CanaryVector held;
  std::memcpy(&held, slot + canary.window, sizeof held);
  CanaryVector difference = (held ^ canary.expected) & canary.canary;
  return (difference[0] | difference[1]) == 0;
}

}  // namespace lockbox::small
