// SPDX-License-Identifier: ISC
#include <doctest/doctest.h>

#include "small/slot_bitmap.hpp"

using lockbox::small::SlotBitmap;

TEST_CASE("the slot bitmap finds the next free slot from any start, wrapping below the limit") {
  SlotBitmap bitmap;
  CHECK(bitmap.clear_from(0, 256) == 0);
  CHECK(bitmap.clear_from(200, 256) == 200);
  for (std::size_t i = 0; i < 100; ++i) bitmap.set(i);
  CHECK(bitmap.clear_from(0, 256) == 100);
  CHECK(bitmap.clear_from(99, 256) == 100);
  CHECK(bitmap.clear_from(150, 256) == 150);
  CHECK(bitmap.count() == 100);
  bitmap.clear(63);
  CHECK(bitmap.clear_from(0, 256) == 63);
  CHECK(bitmap.clear_from(64, 100) == 63);  // wraps past the limit to the start
  CHECK_FALSE(bitmap.test(63));
  CHECK(bitmap.test(64));
  bitmap.set(63);
  CHECK(bitmap.clear_from(7, 100) == SlotBitmap::kNone);  // full below the limit
  CHECK(bitmap.clear_from(7, 101) == 100);
  for (std::size_t i = 100; i < 256; ++i) bitmap.set(i);
  bitmap.clear(5);
  // Only a slot below the start is free: found after wrapping, from every start.
  bool found_from_everywhere = true;
  for (std::size_t start = 0; start < 256; ++start) {
    found_from_everywhere &= bitmap.clear_from(start, 256) == 5;
  }
  CHECK(found_from_everywhere);
  bitmap.set(5);
  CHECK(bitmap.clear_from(128, 256) == SlotBitmap::kNone);
  bitmap.clear_all();
  CHECK(bitmap.count() == 0);
}

TEST_CASE("a run of set bits is found where both bitmaps have it, across word boundaries") {
  using Pages = lockbox::small::Bitmap<256>;
  // Against the plain answer (the first index whose `length` bits are set in both), on bitmaps
  // made of random stretches, so that runs cross the 64-bit words at every offset.
  std::uint64_t state = 0x9e3779b97f4a7c15u;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  std::size_t mismatches = 0, found = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    Pages a, b;
    for (std::size_t bit = 0; bit < 256;) {
      std::size_t stretch = 1 + next() % 24;
      bool set_a = next() % 4 != 0, set_b = next() % 5 != 0;
      for (std::size_t end = bit + stretch; bit < end && bit < 256; ++bit) {
        if (set_a) a.set(bit);
        if (set_b && next() % 16 != 0) b.set(bit);
      }
    }
    for (std::size_t length : {1u, 2u, 3u, 5u, 8u, 13u, 16u, 40u, 64u}) {
      std::size_t expected = Pages::kNone;
      for (std::size_t first = 0; first + length <= 256 && expected == Pages::kNone; ++first) {
        bool all = true;
        for (std::size_t i = first; i < first + length; ++i) all &= a.test(i) && b.test(i);
        if (all) expected = first;
      }
      if (expected != Pages::kNone) ++found;
      if (a.first_run_also_in(b, length) != expected) ++mismatches;
    }
  }
  CHECK(mismatches == 0);
  CHECK(found > 2000);  // the bitmaps did hold runs to find
  Pages full, empty;
  for (std::size_t bit = 0; bit < 256; ++bit) full.set(bit);
  CHECK(full.first_run_also_in(full, 64) == 0);
  CHECK(full.first_run_also_in(empty, 1) == Pages::kNone);
  CHECK(empty.none());
  CHECK_FALSE(full.none());
  empty.set(255);  // the last bit of the last word
  CHECK_FALSE(empty.none());
  full.clear(0);
  full.clear(64);
  CHECK(full.first_run_also_in(full, 63) == 1);
  CHECK(full.first_run_also_in(full, 64) == 65);
}
