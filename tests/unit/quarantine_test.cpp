// SPDX-License-Identifier: ISC
// Reuse is delayed and unpredictable: a freed slot waits for later frees of its class before it
// can be handed out again, the slot handed out is chosen at random, a freed large block's range
// stays reserved, and the stats count what waits.
#include <doctest/doctest.h>
#include <lockbox/lockbox.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "heap/thread_cache.hpp"

namespace {

lockbox_stats stats_now() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  return stats;
}

}  // namespace

TEST_CASE("free(p) then malloc of the same size never gives p back within the quarantine") {
  // Key-sized (fast path), mid-sized and the largest class (general path).
  for (std::size_t size : {1, 32, 64, 100, 1000, 4000, 8000}) {
    CAPTURE(size);
    std::size_t class_index = lockbox::small::class_for_request(size);
    std::uint32_t quarantine = lockbox::heap::ThreadCache::quarantine(class_index);
    // Every pointer freed in the last `quarantine` frees of the class is out of reach.
    std::vector<void*> recent;
    bool never_early = true;
    for (int round = 0; round < 2000; ++round) {
      void* p = lockbox_malloc(size);
      REQUIRE(p != nullptr);
      never_early &= std::find(recent.begin(), recent.end(), p) == recent.end();
      lockbox_free(p);
      recent.push_back(p);
      if (recent.size() > quarantine) recent.erase(recent.begin());
    }
    CHECK(never_early);
  }
}

TEST_CASE("the quarantine is counted in the stats, zero and locked") {
  lockbox_stats before = stats_now();
  void* key = lockbox_malloc(32);
  REQUIRE(key != nullptr);
  lockbox_free(key);
  lockbox_stats after = stats_now();
  // A 48-byte slot joined this thread's quarantine (another may have left it for eligibility).
  CHECK(after.quarantined_bytes >= 48);
  CHECK(after.quarantined_bytes <= after.locked_bytes);
  CHECK(before.live_allocations == after.live_allocations);
}

TEST_CASE("the slot handed out next cannot be foreseen from the order of earlier ones") {
  // A fresh run handed out in address order would be an ascending list; 200 slots of a class
  // this test alone uses, taken at random, are not (the chance they are is 1/200!).
  std::vector<std::uintptr_t> addresses;
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) {
    void* p = lockbox_malloc(2000);
    REQUIRE(p != nullptr);
    blocks.push_back(p);
    addresses.push_back(reinterpret_cast<std::uintptr_t>(p));
  }
  CHECK_FALSE(std::is_sorted(addresses.begin(), addresses.end()));
  CHECK_FALSE(std::is_sorted(addresses.rbegin(), addresses.rend()));
  // Freed and allocated again, the same 200 come back in a different order.
  std::vector<std::uintptr_t> again;
  for (void* p : blocks) lockbox_free(p);
  blocks.clear();
  for (int i = 0; i < 200; ++i) {
    void* p = lockbox_malloc(2000);
    blocks.push_back(p);
    again.push_back(reinterpret_cast<std::uintptr_t>(p));
  }
  CHECK(again != addresses);
  for (void* p : blocks) lockbox_free(p);
}

TEST_CASE("a freed large block's range stays reserved, within the documented bound") {
  void* stale = lockbox_malloc(100000);
  REQUIRE(stale != nullptr);
  lockbox_stats live = stats_now();
  lockbox_free(stale);
  lockbox_stats freed = stats_now();
  CHECK(freed.quarantined_large_bytes >= 102400 + 2 * 4096);
  CHECK(freed.locked_bytes + 102400 <= live.locked_bytes);  // the pages went back
  CHECK(lockbox_owns(stale) == 0);
  void* next = lockbox_malloc(100000);
  CHECK(next != stale);
  lockbox_free(next);
  // Many frees later the quarantine holds at most 64 blocks and 256 MiB (plus the newest).
  for (int i = 0; i < 200; ++i) lockbox_free(lockbox_malloc(100000));
  CHECK(stats_now().quarantined_large_bytes <= 64 * (102400 + 2 * 4096));
  std::size_t big = std::size_t{300} << 20;
  void* huge = lockbox_malloc(big);
  if (huge != nullptr) {  // 300 MiB may be over this process's limit; the bound is the point
    lockbox_free(huge);
    lockbox_stats after_huge = stats_now();
    CHECK(after_huge.quarantined_large_bytes >= big);
    CHECK(after_huge.quarantined_large_bytes <= big + 2 * 4096);  // everything older went
  }
}

TEST_CASE("a thread's exit gives its cache and quarantine back, without a C++ thread_local") {
  lockbox_stats before;
  lockbox_get_stats(&before, sizeof before);
  for (int t = 0; t < 20; ++t) {
    std::thread([] {
      std::vector<void*> blocks;
      for (int i = 0; i < 300; ++i) blocks.push_back(lockbox_malloc(16 + i * 13 % 3000));
      for (void* block : blocks) lockbox_free(block);
    }).join();
  }
  lockbox_stats after;
  lockbox_get_stats(&after, sizeof after);
  // Twenty exited threads that each freed 300 blocks would hold thousands of quarantined slots
  // if their exit did not give them back.
  CHECK(after.quarantined_bytes <= before.quarantined_bytes);
  CHECK(after.live_allocations == before.live_allocations);
}
