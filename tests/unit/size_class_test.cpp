// SPDX-License-Identifier: ISC
// The size-class table: every class fits its canary, runs waste nothing, lookups pick the
// smallest class that fits, and aligned lookups really give aligned slots.
#include <doctest/doctest.h>

#include "small/size_class.hpp"

using namespace lockbox::small;

TEST_CASE("slot sizes are 16-byte multiples, increasing, and runs hold whole slots") {
  for (std::size_t c = 0; c < kClassCount; ++c) {
    CAPTURE(c);
    CHECK(kSlotSizes[c] % 16 == 0);
    if (c > 0) CHECK(kSlotSizes[c] > kSlotSizes[c - 1]);
    CHECK((run_pages(c) * lockbox::os::kPageSize) % kSlotSizes[c] == 0);
    CHECK(run_slots(c) <= kMaxRunSlots);
    CHECK(run_slots(c) >= 1);
  }
  CHECK(kMaxRunSlots == 256);
}

TEST_CASE("a request maps to the smallest class that holds it plus the canary") {
  for (std::size_t size = 0; size <= kMaxSmallRequest; ++size) {
    std::size_t c = class_for_request(size);
    REQUIRE(c < kClassCount);
    CHECK(kSlotSizes[c] >= size + kMinCanaryBytes);
    if (c > 0) CHECK(kSlotSizes[c - 1] < size + kMinCanaryBytes);
  }
  CHECK(kSlotSizes[class_for_request(32)] == 48);  // a 32-byte key
  CHECK(kSlotSizes[class_for_request(0)] == 16);
}

TEST_CASE("aligned requests get classes whose every slot is aligned") {
  for (std::size_t alignment = 32; alignment <= 4096; alignment *= 2) {
    for (std::size_t size : {1u, 31u, 100u, 1000u, 4000u}) {
      std::size_t c = class_for_aligned_request(size, alignment);
      CAPTURE(alignment);
      CAPTURE(size);
      REQUIRE(c < kClassCount);
      CHECK(kSlotSizes[c] % alignment == 0);
      CHECK(kSlotSizes[c] >= size + kMinCanaryBytes);
    }
  }
  CHECK(class_for_aligned_request(kMaxSmallRequest + 1, 32) == kClassCount);
}

TEST_CASE("slot_index divides exactly for every offset inside every run") {
  for (std::size_t c = 0; c < kClassCount; ++c) {
    std::size_t run_bytes = run_pages(c) * lockbox::os::kPageSize;
    std::size_t wrong = 0;
    for (std::size_t offset = 0; offset < run_bytes; ++offset) {
      wrong += slot_index(offset, c) != offset / kSlotSizes[c];
    }
    CAPTURE(c);
    CHECK(wrong == 0);
  }
}
