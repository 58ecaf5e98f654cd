// SPDX-License-Identifier: ISC
// The canaries of large blocks and guarded secrets (support/canary.hpp): every byte of a span is
// guarded, no byte outside it changes, the first byte after an object is zero, and the pattern
// is the block's own word, so one block's canary says nothing of another's.
#include <doctest/doctest.h>

#include <cstring>
#include <initializer_list>

#include "support/canary.hpp"

using namespace lockbox::canary;

TEST_CASE("a span canary of any span covers exactly its bytes, whatever their alignment") {
  constexpr std::uint64_t kWord = 0x8877665544332211ull;
  alignas(16) unsigned char block[80];
  for (FirstByte first_byte : {FirstByte::kZero, FirstByte::kRandom}) {
    for (std::size_t from = 0; from <= 64; ++from) {
      for (std::size_t to = from; to <= 72; ++to) {
        CAPTURE(from);
        CAPTURE(to);
        std::memset(block, 0xa5, sizeof block);
        write_span(block, from, to, kWord, first_byte);
        bool outside_untouched = true, inside_pattern = true;
        for (std::size_t i = 0; i < sizeof block; ++i) {
          bool inside = i >= from && i < to;
          if (!inside) outside_untouched &= block[i] == 0xa5;
          unsigned char expected = static_cast<unsigned char>(kWord >> (8 * (i % 8)));
          if (inside && i == from && first_byte == FirstByte::kZero) expected = 0;
          if (inside) inside_pattern &= block[i] == expected;
        }
        CHECK(outside_untouched);
        CHECK(inside_pattern);
        CHECK(span_intact(block, from, to, kWord, first_byte));
        bool every_byte_guarded = true;
        for (std::size_t i = from; i < to; ++i) {
          block[i] ^= 0x10;
          every_byte_guarded &= !span_intact(block, from, to, kWord, first_byte);
          block[i] ^= 0x10;
        }
        CHECK(every_byte_guarded);
        // The bytes on either side are not the canary's.
        if (from > 0) block[from - 1] ^= 0xff;
        if (to < sizeof block) block[to] ^= 0xff;
        CHECK(span_intact(block, from, to, kWord, first_byte));
      }
    }
  }
}

TEST_CASE("a string that runs into a span canary ends at its first byte") {
  alignas(16) char block[48];
  std::memset(block, 'a', sizeof block);
  write_span(reinterpret_cast<unsigned char*>(block), 21, 48, ~std::uint64_t{0}, FirstByte::kZero);
  CHECK(std::strlen(block) == 21);
}

TEST_CASE("a span canary is its word's: another word does not pass, and copying does not either") {
  alignas(16) unsigned char a[32] = {}, b[32] = {};
  write_span(a, 5, 32, 0x1111111111111111ull, FirstByte::kZero);
  write_span(b, 5, 32, 0x2222222222222222ull, FirstByte::kZero);
  CHECK_FALSE(span_intact(a, 5, 32, 0x2222222222222222ull, FirstByte::kZero));
  std::memcpy(b, a, sizeof a);  // a canary read from one block, written over another's
  CHECK_FALSE(span_intact(b, 5, 32, 0x2222222222222222ull, FirstByte::kZero));
}
