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
