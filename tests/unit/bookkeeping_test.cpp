// SPDX-License-Identifier: ISC
// lockbox's own containers (support/ordered_map.hpp, pages/page_lock_table.hpp) against the
// standard library's, over long random sequences of operations: every answer must agree.
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <random>
#include <unordered_map>

#include "pages/page_lock_table.hpp"
#include "support/ordered_map.hpp"

namespace {

struct Payload {
  std::uint64_t a;
  std::uint32_t b;
};

}  // namespace

TEST_CASE("the ordered map agrees with std::map on find, neighbours, erase and order") {
  lockbox::OrderedMap<Payload> map;
  std::map<std::uintptr_t, Payload> model;
  std::mt19937_64 random(12345);
  int disagreements = 0;
  for (int step = 0; step < 200000; ++step) {
    // Keys from a small range, so that inserts meet present keys and erases find them.
    std::uintptr_t key = (random() % 5000) * 4096 + 16;
    switch (random() % 5) {
      case 0:
      case 1: {
        Payload value{random(), static_cast<std::uint32_t>(step)};
        bool inserted = map.insert(key, value);
        bool expected = model.emplace(key, value).second;
        disagreements += inserted != expected;
        break;
      }
      case 2:
        map.erase(key);
        model.erase(key);
        break;
      default: {
        Payload* found = map.find(key);
        auto expected = model.find(key);
        disagreements += (found == nullptr) != (expected == model.end());
        if (found != nullptr && expected != model.end()) {
          disagreements += found->a != expected->second.a || found->b != expected->second.b;
        }
        // The neighbours of an address that is no key.
        std::uintptr_t between = key + 100;
        Payload* before = map.at_or_before(between);
        auto expected_after = model.upper_bound(between);
        Payload* after = map.after(between);
        disagreements += (after == nullptr) != (expected_after == model.end());
        if (after != nullptr && expected_after != model.end()) {
          disagreements += after->b != expected_after->second.b;
        }
        bool has_before = expected_after != model.begin();
        disagreements += (before == nullptr) == has_before;
        if (before != nullptr && has_before) {
          disagreements += before->b != std::prev(expected_after)->second.b;
        }
      }
    }
    disagreements += map.size() != model.size();
  }
  CHECK(disagreements == 0);
  // In order, every one.
  auto expected = model.begin();
  bool in_order = true;
  map.for_each([&](std::uintptr_t key, Payload& value) {
    in_order &= expected != model.end() && key == expected->first && value.b == expected->second.b;
    ++expected;
  });
  CHECK(in_order);
  CHECK(expected == model.end());
}

TEST_CASE("the caller-lock table agrees with a hash map through growth, erase and forget_range") {
  lockbox::pages::PageLockTable table;
  std::unordered_map<std::uintptr_t, std::uint32_t> model;
  std::mt19937_64 random(777);
  int disagreements = 0;
  for (int step = 0; step < 200000; ++step) {
    std::uintptr_t page = (1 + random() % 20000) * 4096;
    switch (random() % 8) {
      case 0:
      case 1:
      case 2:
        if (table.find(page) == nullptr) {
          REQUIRE(table.reserve(1));
          lockbox::pages::CallerLock lock;
          lock.count = static_cast<std::uint32_t>(step);
          table.insert(page, lock);
          model[page] = static_cast<std::uint32_t>(step);
        }
        break;
      case 3:
      case 4:
        table.erase(page);
        model.erase(page);
        break;
      case 5:
        if (step % 97 == 0) {
          // A range of up to 300 pages: by page, or (larger than the table) by entry.
          std::size_t pages = 1 + random() % (step % 2 == 0 ? 300 : 40000);
          table.forget_range(page, pages * 4096);
          for (auto it = model.begin(); it != model.end();) {
            it = it->first >= page && it->first - page < pages * 4096 ? model.erase(it) : ++it;
          }
        }
        break;
      default: {
        lockbox::pages::CallerLock* found = table.find(page);
        auto expected = model.find(page);
        disagreements += (found == nullptr) != (expected == model.end());
        if (found != nullptr && expected != model.end()) {
          disagreements += found->count != expected->second;
        }
      }
    }
    disagreements += table.page_count() != model.size();
  }
  CHECK(disagreements == 0);
  for (const auto& [page, count] : model) {
    lockbox::pages::CallerLock* found = table.find(page);
    CHECK((found != nullptr && found->count == count));
  }
  table.clear();
  CHECK(table.page_count() == 0);
  CHECK(table.find(model.empty() ? 4096 : model.begin()->first) == nullptr);
}
