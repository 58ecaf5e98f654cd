#include <doctest/doctest.h>

#include "small/slot_bitmap.hpp"

using lockbox::small::SlotBitmap;

TEST_CASE("the slot bitmap finds the lowest free slot below the limit") {
  SlotBitmap bitmap;
  CHECK(bitmap.first_clear(256) == 0);
  for (std::size_t i = 0; i < 100; ++i) bitmap.set(i);
  CHECK(bitmap.first_clear(256) == 100);
  CHECK(bitmap.count() == 100);
  bitmap.clear(63);
  CHECK(bitmap.first_clear(256) == 63);
  CHECK_FALSE(bitmap.test(63));
  CHECK(bitmap.test(64));
  bitmap.set(63);
  CHECK(bitmap.first_clear(100) == SlotBitmap::kNone);  // full below the limit
  CHECK(bitmap.first_clear(101) == 100);
  for (std::size_t i = 100; i < 256; ++i) bitmap.set(i);
  CHECK(bitmap.first_clear(256) == SlotBitmap::kNone);
  bitmap.clear_all();
  CHECK(bitmap.count() == 0);
}
