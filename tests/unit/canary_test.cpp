#include <doctest/doctest.h>

#include <cstring>

#include "small/canary.hpp"

using namespace lockbox::small;

TEST_CASE("a canary survives untouched and breaks on any changed byte") {
  set_canary_secret(0x0123456789abcdefull);
  alignas(16) unsigned char slot[64] = {};
  for (std::size_t from = 0; from < 56; from += 7) {
    std::memset(slot, 0, sizeof slot);
    write_canary(slot, from, sizeof slot);
    CHECK(canary_intact(slot, from, sizeof slot));
    for (std::size_t i = from; i < sizeof slot; ++i) {
      slot[i] ^= 1;
      CHECK_FALSE(canary_intact(slot, from, sizeof slot));
      slot[i] ^= 1;
    }
    // Bytes before the canary are the caller's and do not matter.
    if (from > 0) slot[from - 1] = 0xee;
    CHECK(canary_intact(slot, from, sizeof slot));
  }
}

TEST_CASE("a canary of any span covers exactly its bytes, whatever their alignment") {
  set_canary_secret(0xfedcba9876543210ull);
  alignas(16) unsigned char slot[80];
  for (std::size_t from = 0; from <= 64; ++from) {
    for (std::size_t to = from; to <= 72; ++to) {
      CAPTURE(from);
      CAPTURE(to);
      std::memset(slot, 0xa5, sizeof slot);
      write_canary(slot, from, to);
      bool outside_untouched = true, inside_changed = true;
      for (std::size_t i = 0; i < sizeof slot; ++i) {
        bool inside = i >= from && i < to;
        if (!inside) outside_untouched &= slot[i] == 0xa5;
        if (inside) inside_changed &= slot[i] != 0;
      }
      CHECK(outside_untouched);
      CHECK(inside_changed);  // an empty canary (a large block with no slack) changes nothing
      CHECK(canary_intact(slot, from, to));
      bool every_byte_guarded = true;
      for (std::size_t i = from; i < to; ++i) {
        slot[i] ^= 0x10;
        every_byte_guarded &= !canary_intact(slot, from, to);
        slot[i] ^= 0x10;
      }
      CHECK(every_byte_guarded);
      // The object's bytes before the canary and the slack after it are not the canary's.
      if (from > 0) slot[from - 1] ^= 0xff;
      if (to < sizeof slot) slot[to] ^= 0xff;
      CHECK(canary_intact(slot, from, to));
    }
  }
}

TEST_CASE("canary bytes are never zero and differ between slots and secrets") {
  alignas(16) unsigned char a[32] = {}, b[32] = {};
  set_canary_secret(42);
  write_canary(a, 0, 32);
  write_canary(b, 0, 32);
  for (unsigned char byte : a) CHECK(byte != 0);
  CHECK(std::memcmp(a, b, 32) != 0);  // keyed on the address
  set_canary_secret(43);
  CHECK_FALSE(canary_intact(a, 0, 32));  // keyed on the secret
}
