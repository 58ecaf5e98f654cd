// SPDX-License-Identifier: ISC
// Fuzz target: lockbox::string and lockbox::vector growing and shrinking against std::string and
// std::vector models. After every op: same contents, storage owned by lockbox, NUL-terminated,
// and a buffer the container let go of (after reallocation) reads zero.
#include <fuzzer/FuzzedDataProvider.h>
#include <lockbox/lockbox.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "heap/heap.hpp"

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "container_fuzzer: %s\n", what);
  std::abort();
}

// A buffer that moved must have been zeroed when it was freed.
template <typename Container>
void check_moved(const Container& container, const void*& last_data, std::size_t& last_bytes) {
  if (container.data() != last_data) {
    if (last_data != nullptr && last_bytes != 0 &&
        !lockbox::heap::Heap::instance().freed_range_reads_zero(last_data, last_bytes)) {
      fail("a buffer the container let go of is not zero");
    }
    last_data = container.data();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t length) {
  FuzzedDataProvider data(bytes, length);
  lockbox::string text;
  std::string text_model;
  lockbox::vector<std::uint32_t> numbers;
  std::vector<std::uint32_t> numbers_model;
  const void* text_data = text.data();
  std::size_t text_bytes = 0;
  const void* numbers_data = nullptr;
  std::size_t numbers_bytes = 0;

  for (int op = 0; op < 200 && data.remaining_bytes() > 0; ++op) {
    switch (data.ConsumeIntegralInRange<int>(0, 9)) {
      case 0: {
        std::string piece = data.ConsumeRandomLengthString(300);
        text.append(piece);
        text_model.append(piece);
        break;
      }
      case 1: {
        char c = data.ConsumeIntegral<char>();
        text.push_back(c);
        text_model.push_back(c);
        break;
      }
      case 2:
        if (!text_model.empty()) {
          std::size_t at = data.ConsumeIntegralInRange<std::size_t>(0, text_model.size() - 1);
          std::size_t count = data.ConsumeIntegralInRange<std::size_t>(0, text_model.size());
          text.erase(at, count);
          text_model.erase(at, count);
        }
        break;
      case 3: {
        std::size_t size = data.ConsumeIntegralInRange<std::size_t>(0, 2000);
        char c = data.ConsumeIntegral<char>();
        text.resize(size, c);
        text_model.resize(size, c);
        break;
      }
      case 4:
        text.shrink_to_fit();
        break;
      case 5: {
        std::string piece = data.ConsumeRandomLengthString(100);
        text.assign(piece);
        text_model.assign(piece);
        break;
      }
      case 6: {
        std::uint32_t value = data.ConsumeIntegral<std::uint32_t>();
        std::size_t count = data.ConsumeIntegralInRange<std::size_t>(1, 500);
        for (std::size_t i = 0; i < count; ++i) {
          numbers.push_back(value + static_cast<std::uint32_t>(i));
          numbers_model.push_back(value + static_cast<std::uint32_t>(i));
        }
        break;
      }
      case 7: {
        std::size_t size = data.ConsumeIntegralInRange<std::size_t>(0, 3000);
        numbers.resize(size);
        numbers_model.resize(size);
        break;
      }
      case 8:
        numbers.shrink_to_fit();
        break;
      default: {
        lockbox::string copy = text;
        if (!(copy == text) || std::string_view(copy) != text_model) fail("a copy differs");
        break;
      }
    }
    if (std::string_view(text) != text_model) fail("the string differs from its model");
    if (text.c_str()[text.size()] != '\0') fail("the string lost its NUL");
    if (lockbox_owns(text.data()) != 1) fail("the string's characters are not in lockbox memory");
    check_moved(text, text_data, text_bytes);
    text_bytes = text.capacity() + 1;
    if (numbers.size() != numbers_model.size() ||
        (!numbers.empty() &&
         std::memcmp(numbers.data(), numbers_model.data(), numbers.size() * 4) != 0)) {
      fail("the vector differs from its model");
    }
    if (numbers.capacity() != 0 && lockbox_owns(numbers.data()) != 1) {
      fail("the vector's elements are not in lockbox memory");
    }
    check_moved(numbers, numbers_data, numbers_bytes);
    numbers_bytes = numbers.capacity() * sizeof(std::uint32_t);
  }
  return 0;
}
