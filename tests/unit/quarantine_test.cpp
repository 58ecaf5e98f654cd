// SPDX-License-Identifier: ISC
// Reuse is delayed and unpredictable: a freed slot waits for later frees of its class before it
// can be handed out again, the slot handed out is chosen at random, a freed large block's range
// stays reserved, and the stats count what waits.
#include <doctest/doctest.h>
#include <lockbox/lockbox.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "heap/heap.hpp"
#include "heap/thread_cache.hpp"
#include "small/shard.hpp"
#include "support/parked_threads.hpp"
#include "support/process.hpp"
#include "support/stats.hpp"

using lockbox_test::stats_now;

TEST_CASE("free(p) then malloc of the same size never gives p back within the quarantine") {
  // Key-sized (fast path), mid-sized and the largest class (general path).
  // Above 8 KiB the quarantine is the shard's (this thread's frees are all in one shard here).
  for (std::size_t size : {1, 32, 64, 100, 1000, 4000, 8000, 10000, 30000, 65000}) {
    CAPTURE(size);
    std::size_t class_index = lockbox::small::class_for_request(size);
    std::size_t quarantine = lockbox::small::Shard::quarantines(class_index)
                                 ? lockbox::small::Shard::kQuarantineLength
                                 : lockbox::heap::ThreadCache::quarantine(class_index);
    CHECK(quarantine >= 2);
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

TEST_CASE("a slot above 8 KiB freed by another thread waits in its shard's quarantine") {
  // A class the other tests leave alone. Its slots are runs of one: with the quarantine in
  // the freeing thread's cache, as before, that thread's exit put the slot back in its run,
  // and the next allocation of the class took that very run.
  constexpr std::size_t kSize = 24000;
  constexpr std::size_t kSlot = 24576;
  if (lockbox::heap::Heap::instance().small_request_limit() < kSize) {
    MESSAGE("arenas from memfd_secret: 24,000 bytes is a large block here");
    return;
  }
  void* block = lockbox_malloc(kSize);
  REQUIRE(block != nullptr);
  lockbox_stats before = stats_now();
  std::thread([block] { lockbox_free(block); }).join();
  lockbox_stats after = stats_now();
  // The thread's exit gave its own cache back; the slot stays quarantined all the same (one
  // in, at most one older one out).
  CHECK(after.quarantined_bytes >= kSlot);
  CHECK(after.live_allocations + 1 == before.live_allocations);
  // Not handed out again, to this thread either, before kQuarantineLength later frees of the
  // class in that shard.
  for (std::size_t i = 0; i < lockbox::small::Shard::kQuarantineLength; ++i) {
    void* next = lockbox_malloc(kSize);
    REQUIRE(next != nullptr);
    CHECK(next != block);
    lockbox_free(next);
  }
}

TEST_CASE("the quarantine of slots above 8 KiB does not grow with the number of threads") {
  if (lockbox::heap::Heap::instance().small_request_limit() < 65000) {
    MESSAGE("arenas from memfd_secret: these sizes are large blocks here");
    return;
  }
  // 32 live threads, each of which has freed every class above 8 KiB three times (but 24 KiB,
  // which the test above keeps to itself): kept per thread, that was 32 full quarantines
  // (21 MiB, locked); per shard, it is at most the shards' (4 x 728 KiB).
  constexpr int kThreads = 32;
  constexpr std::size_t kSizes[] = {10000, 12000, 14000, 16000, 20000,
                                    28000, 32000, 40000, 48000, 56000, 65000};
  lockbox_stats stats = lockbox_test::while_threads_park(
      kThreads,
      [&] {
        for (int round = 0; round < 3; ++round) {
          for (std::size_t size : kSizes) lockbox_free(lockbox_malloc(size));
        }
      },
      [] { return stats_now(); });
  std::size_t one_quarantine = 0;  // every class above 8 KiB, kQuarantineLength slots each
  for (std::size_t c = lockbox::small::Shard::kFirstQuarantinedClass;
       c < lockbox::small::kClassCount; ++c) {
    one_quarantine += lockbox::small::Shard::kQuarantineLength * lockbox::small::kSlotSizes[c];
  }
  CHECK(one_quarantine == 728 * 1024);  // README's figure
  // The main thread's own quarantine of small classes (from other tests) comes on top: 243 KiB
  // at most.
  CHECK(stats.quarantined_bytes <= lockbox::heap::Heap::kShards * one_quarantine + 243 * 1024);
  CHECK(stats.quarantined_bytes >= one_quarantine / 2);  // some shard did fill
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
  constexpr std::size_t kRange = 102400 + 2 * 4096;  // 25 data pages and two guards
  void* stale = lockbox_malloc(100000);
  REQUIRE(stale != nullptr);
  lockbox_stats live = stats_now();
  lockbox_free(stale);
  lockbox_stats freed = stats_now();
  // (Other tests' blocks wait there too, and the allocation may have reused one of them.)
  CHECK(freed.quarantined_large_bytes >= kRange);
  // Its pages stay locked in the cache (zeroed, PROT_NONE), and are counted as such.
  CHECK(freed.cached_large_bytes >= 102400);
  CHECK(freed.locked_bytes >= freed.cached_large_bytes);
  CHECK(lockbox_test::page_protection(stale) == "---");
  CHECK(lockbox_owns(stale) == 0);
  // Not handed out again before 8 later large frees.
  std::vector<std::uintptr_t> handed_out;
  for (int i = 0; i < 8; ++i) {
    void* next = lockbox_malloc(100000);
    REQUIRE(next != nullptr);
    handed_out.push_back(reinterpret_cast<std::uintptr_t>(next));
    lockbox_free(next);
  }
  for (std::uintptr_t address : handed_out)
    CHECK(address != reinterpret_cast<std::uintptr_t>(stale));
  // Many cycles later the cache serves them: the locked memory it holds stops growing, at
  // about the nine blocks one cycle needs, and the quarantine keeps its bound (64 blocks,
  // 256 MiB besides the newest).
  for (int i = 0; i < 200; ++i) lockbox_free(lockbox_malloc(100000));
  lockbox_stats settled = stats_now();
  for (int i = 0; i < 200; ++i) lockbox_free(lockbox_malloc(100000));
  lockbox_stats later = stats_now();
  CHECK(later.locked_bytes == settled.locked_bytes);
  CHECK(later.cached_large_bytes <= live.cached_large_bytes + 9 * 102400);
  CHECK(later.cached_large_bytes >= 9 * 102400);
  CHECK(later.quarantined_large_bytes <= (std::size_t{256} << 20) + kRange);
  std::size_t big = std::size_t{300} << 20;
  void* huge = lockbox_malloc(big);
  if (huge != nullptr) {  // 300 MiB may be over this process's limit; the bound is the point
    lockbox_free(huge);
    lockbox_stats after_huge = stats_now();
    CHECK(after_huge.quarantined_large_bytes >= big);
    CHECK(after_huge.quarantined_large_bytes <= big + 2 * 4096);  // everything older went
    CHECK(after_huge.cached_large_bytes == 0);  // 300 MiB is beyond the cache's bound
  }
}

TEST_CASE("a large block the cache hands out again is resident, locked and writable") {
  // The cache's pages are marked lock-on-fault, so that reopening them skips the kernel's
  // populate walk: they must still be resident and locked when a block comes back.
  constexpr std::size_t kSize = 256 << 10;
  for (int i = 0; i < 40; ++i) lockbox_free(lockbox_malloc(kSize));
  lockbox_stats before = stats_now();
  auto* block = static_cast<unsigned char*>(lockbox_malloc(kSize));
  REQUIRE(block != nullptr);
  lockbox_stats after = stats_now();
  CHECK(after.cached_large_bytes < before.cached_large_bytes);  // it came from the cache
  CHECK(after.locked_bytes == before.locked_bytes);
  CHECK(lockbox_test::kernel_says_locked(block, kSize));
  CHECK(lockbox_test::page_protection(block) == "rw-");
  std::vector<unsigned char> resident(kSize / 4096);
  REQUIRE(mincore(block, kSize, resident.data()) == 0);
  CHECK(std::all_of(resident.begin(), resident.end(), [](unsigned char r) { return r & 1; }));
  CHECK(std::all_of(block, block + kSize, [](unsigned char b) { return b == 0; }));
  std::fill(block, block + kSize, 0x5a);
  lockbox_free(block);
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
