// SPDX-License-Identifier: ISC
// The inline slot checks, exhaustively over sizes and lengths: the 16-byte canary window of every
// request in every class (its zero first byte, its key, the 16 bytes of slack after it), the
// all-zero scan on both of its paths (16- and 32-byte vectors), and the zeroing of every length a
// free can ask for.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "small/slot.hpp"

using namespace lockbox::small;

namespace {

alignas(16) unsigned char g_slot[kMaxSlotSize + 64];

// Every request a class serves: sizes whose class is `class_index`.
template <typename Visit>
void for_each_request(Visit visit) {
  for (std::size_t size = 0; size <= kMaxSmallRequest; ++size) visit(size, class_for_request(size));
}

}  // namespace

constexpr std::uint32_t kKey = 0x9e3779b9u;

TEST_CASE("a slot's canary window covers 8 to 16 bytes right after the object, inside the slot") {
  for_each_request([](std::size_t size, std::size_t class_index) {
    std::size_t slot_size = kSlotSizes[class_index];
    SlotCanary canary = slot_canary(size, slot_size, kKey);
    REQUIRE(canary.window + kCanaryWindow <= slot_size);
    std::size_t canary_bytes = canary.window + kCanaryWindow - size;
    REQUIRE(canary_bytes >= kMinCanaryBytes);
    REQUIRE(canary_bytes <= kCanaryWindow);
  });
}

TEST_CASE("a slot's canary leaves the object zero, starts with a zero byte and catches any change") {
  // Every size of the small classes (whose windows sit at every offset), and the boundaries of
  // the rest; each byte of the window is flipped in turn.
  for_each_request([](std::size_t size, std::size_t class_index) {
    std::size_t slot_size = kSlotSizes[class_index];
    if (slot_size > 256 && size + 24 < slot_size && size % 61 != 0) return;
    std::memset(g_slot, 0, slot_size);
    SlotCanary canary = slot_canary(size, slot_size, kKey);
    write_slot_canary(g_slot, canary);
    bool object_still_zero = true;
    for (std::size_t i = 0; i < size; ++i) object_still_zero &= g_slot[i] == 0;
    REQUIRE(object_still_zero);  // calloc relies on it
    bool beyond_window_zero = true;
    for (std::size_t i = canary.window + kCanaryWindow; i < slot_size; ++i) {
      beyond_window_zero &= g_slot[i] == 0;
    }
    REQUIRE(beyond_window_zero);
    REQUIRE(slot_canary_intact(g_slot, canary));
    REQUIRE(slack_head_zero(g_slot, canary, slot_size));
    // The application may write its whole object, and a string of it ends at the canary.
    std::memset(g_slot, 'a', size);
    REQUIRE(g_slot[size] == 0);
    REQUIRE(slot_canary_intact(g_slot, canary));
    bool every_canary_byte_guarded = true;
    for (std::size_t i = size; i < canary.window + kCanaryWindow; ++i) {
      g_slot[i] ^= 0x01;
      every_canary_byte_guarded &= !slot_canary_intact(g_slot, canary);
      g_slot[i] ^= 0x01;
    }
    REQUIRE(every_canary_byte_guarded);
    // Another slot's key does not pass.
    REQUIRE_FALSE(slot_canary_intact(g_slot, slot_canary(size, slot_size, kKey ^ 0x100)));
    // The free watches the 16 bytes after the window, which are all the slack of a key-sized
    // slot. Deeper slack is left to the scan of the slot's next hand-out (the fault program
    // slack_written_deep shows it found there).
    std::size_t after = canary.window + kCanaryWindow;
    std::size_t watched_end = std::min(after + kGranule, slot_size);
    if (slot_size <= 64) REQUIRE(watched_end == slot_size);
    bool every_slack_byte_guarded = true;
    for (std::size_t i = after; i < watched_end; ++i) {
      g_slot[i] = 0x20;
      every_slack_byte_guarded &= !slack_head_zero(g_slot, canary, slot_size);
      g_slot[i] = 0;
    }
    REQUIRE(every_slack_byte_guarded);
  });
}

TEST_CASE("the all-zero scan finds one nonzero byte anywhere in any slot, on both paths") {
  for (bool wide : {false, true}) {
    detail::g_wide_vectors = false;
    if (wide) detail::detect_wide_vectors();
    if (wide && !detail::g_wide_vectors) {
      // No AVX2 here: only the 16-byte path exists. Said in the output, not silently passed.
      MESSAGE("SKIPPED: the 32-byte (AVX2) scan: this CPU has no AVX2");
      continue;
    }
    CAPTURE(wide);
    for (std::size_t slot_size : kSlotSizes) {
      std::memset(g_slot, 0, sizeof g_slot);
      // A nonzero byte just outside the slot must not count.
      g_slot[slot_size] = 0xff;
      REQUIRE(detail::all_zero(g_slot, slot_size));
      bool every_byte_seen = true;
      for (std::size_t i = 0; i < slot_size; ++i) {
        g_slot[i] = 0x80;
        every_byte_seen &= !detail::all_zero(g_slot, slot_size);
        g_slot[i] = 0;
      }
      CAPTURE(slot_size);
      REQUIRE(every_byte_seen);
    }
  }
  detail::detect_wide_vectors();
}

TEST_CASE("zeroing a slot clears exactly the bytes asked for, at every length") {
  for (std::size_t length = kGranule; length <= kMaxSlotSize; length += kGranule) {
    std::memset(g_slot, 0x5a, sizeof g_slot);
    detail::zero_slot(g_slot, length);
    bool zeroed = true;
    for (std::size_t i = 0; i < length; ++i) zeroed &= g_slot[i] == 0;
    bool rest_untouched = true;
    for (std::size_t i = length; i < sizeof g_slot; ++i) rest_untouched &= g_slot[i] == 0x5a;
    CAPTURE(length);
    REQUIRE(zeroed);
    REQUIRE(rest_untouched);
  }
}

TEST_CASE("a free leaves the whole slot zero, whatever the object held, and nothing outside it") {
  // A slot above the key sizes is zeroed only through its canary window (the slack beyond must
  // read zero already): every size of the small classes, and the boundaries of the rest.
  for_each_request([](std::size_t size, std::size_t class_index) {
    std::size_t slot_size = kSlotSizes[class_index];
    if (slot_size > 256 && size + 24 < slot_size && size % 61 != 0) return;
    std::memset(g_slot, 0, sizeof g_slot);
    g_slot[slot_size] = 0x77;  // the next slot's first byte
    SlotWord word = slot_word(kSlotLive, class_index, size, slot_canary_bits(kKey));
    std::atomic<SlotWord> slot{word};
    write_slot_canary(g_slot, slot_canary(size, slot_size, kKey));
    std::memset(g_slot, 0xa5, size);
    FreedSlot freed = take_back(g_slot, slot, word, lockbox::report::Operation::kFree);
    lockbox::sanitizers::unpoison(g_slot, slot_size);  // a free slot is poisoned under ASan
    bool slot_zero = true;
    for (std::size_t i = 0; i < slot_size; ++i) slot_zero &= g_slot[i] == 0;
    CAPTURE(size);
    REQUIRE(slot_zero);
    REQUIRE(g_slot[slot_size] == 0x77);
    REQUIRE(freed.requested == size);
    REQUIRE(slot_state(slot.load()) == kSlotCached);
  });
}
