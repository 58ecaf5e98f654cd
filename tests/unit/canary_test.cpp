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
