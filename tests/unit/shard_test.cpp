// SPDX-License-Identifier: ISC
// The page refcounts of a shard, seen from lockbox's metadata and from the kernel: a page is
// locked while any object overlaps it, an object straddling two pages holds both, freeing one
// object never unlocks a neighbour, and empty pages wait in a small locked reserve.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "small/shard.hpp"
#include "support/process.hpp"

using namespace lockbox::small;

namespace {

struct ShardFixture {
  ShardFixture() {
    REQUIRE(registry.initialise());
    budget.refresh_limit();  // later refreshes keep a limit the test sets, unless the kernel's
                             // changes
    budget.set_limit(SIZE_MAX);
  }
  void* allocate(std::size_t size) {
    lockbox::FutexLockGuard guard(shard.lock());
    return shard.allocate(size, class_for_request(size), lockbox::report::Operation::kMalloc, 1, 0,
                          registry, budget,
                          lockbox::pages::Reclaimer{nullptr, nullptr});
  }
  void free(void* pointer) {
    lockbox::FutexLockGuard guard(shard.lock());
    shard.free(*registry.find(pointer), pointer, budget, lockbox::report::Operation::kFree);
  }
  std::size_t refcount(const void* address) {
    Arena* arena = registry.find(address);
    return arena->page_refcount[arena->page_index(address)];
  }
  ~ShardFixture() {
    lockbox::FutexLockGuard guard(shard.lock());
    shard.release_empty_pages(budget);
  }

  ArenaRegistry registry;
  lockbox::budget::Budget budget;
  Shard shard;
};

}  // namespace

TEST_CASE("objects count on every page they overlap; one free never unlocks a neighbour") {
  ShardFixture f;
  // 48-byte slots in a 3-page run of 256 slots, handed out in random order: take them all.
  std::vector<unsigned char*> keys;
  for (int i = 0; i < 256; ++i) keys.push_back(static_cast<unsigned char*>(f.allocate(32)));
  std::sort(keys.begin(), keys.end());
  unsigned char* first_page = keys[0];
  unsigned char* second_page = first_page + 4096;
  CHECK(keys[255] + 48 == first_page + 3 * 4096);  // one whole run
  unsigned char* straddler = keys[85];             // slots 0..84 sit on the first page
  CHECK(straddler < second_page);
  CHECK(straddler + 48 > second_page);
  CHECK(f.refcount(first_page) == 86);
  CHECK(f.refcount(second_page) == 86);  // the straddler, 84 slots, and the next straddler
  CHECK(f.budget.locked_bytes() == 3 * 4096);
  CHECK(lockbox_test::kernel_says_locked(first_page, 3 * 4096));

  // Everything but one slot wholly on the first page and the straddler goes.
  for (int i = 1; i < 256; ++i) {
    if (i != 85) f.free(keys[i]);
  }
  CHECK(f.refcount(first_page) == 2);
  CHECK(f.refcount(second_page) == 1);
  f.free(keys[0]);
  // The straddler still lives: both its pages stay locked, by the kernel's account too.
  CHECK(f.refcount(first_page) == 1);
  CHECK(lockbox_test::kernel_says_locked(first_page, 2 * 4096));

  f.free(straddler);
  CHECK(f.refcount(first_page) == 0);
  CHECK(f.refcount(second_page) == 0);
  // Empty pages stay locked in the reserve until room is needed.
  CHECK(f.budget.locked_bytes() == 3 * 4096);
  {
    lockbox::FutexLockGuard guard(f.shard.lock());
    CHECK(f.shard.release_empty_pages(f.budget));
  }
  CHECK(f.budget.locked_bytes() == 0);
  CHECK(lockbox_test::kernel_says_unlocked(first_page, 3 * 4096));
}

TEST_CASE("the reserve of empty locked pages is bounded") {
  ShardFixture f;
  // 200 objects of 4000 bytes (4096-byte slots) commit 200 pages.
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(f.allocate(4000));
  CHECK(f.budget.locked_bytes() == 200 * 4096);
  for (void* block : blocks) f.free(block);
  // Freed all at once, the pages stay (a program that allocates them again makes no system
  // call): the reserve is over its limit, but not for long yet.
  CHECK(f.budget.locked_bytes() == 200 * 4096);
  // Allocated and freed again within the delay: still no trim.
  for (void*& block : blocks) block = f.allocate(4000);
  for (void* block : blocks) f.free(block);
  CHECK(f.budget.locked_bytes() == 200 * 4096);
  // Once it has stayed over its limit for the delay, the next page that empties trims it back
  // to its floor; it is never emptied outright.
  std::this_thread::sleep_for(std::chrono::milliseconds(Shard::kTrimDelayMs + 20));
  f.free(f.allocate(4000));
  CHECK(f.budget.locked_bytes() <= Shard::kMinReservePages * 4096);
  CHECK(f.budget.locked_bytes() > 0);
  CHECK(lockbox_test::vmlck_bytes() >= static_cast<long long>(f.budget.locked_bytes()));
}

TEST_CASE("a failed commit leaves no page half-locked") {
  ShardFixture f;
  f.budget.set_limit(4096);  // one page
  void* a = f.allocate(32);
  REQUIRE(a != nullptr);
  std::vector<void*> keys{a};
  void* key = nullptr;
  while ((key = f.allocate(32)) != nullptr) keys.push_back(key);
  // Slots are chosen at random: the run stops at the first one whose pages would need more
  // than the one locked page. Every key handed out lies on that page, and nothing else is
  // locked, half or whole.
  auto page_of = [](void* p) { return reinterpret_cast<std::uintptr_t>(p) & ~std::uintptr_t{4095}; };
  bool one_page = true;
  for (void* k : keys) {
    one_page &= page_of(k) == page_of(a) &&
                page_of(static_cast<unsigned char*>(k) + 47) == page_of(a);
  }
  CHECK(one_page);
  CHECK(keys.size() <= 85);
  CHECK(f.budget.locked_bytes() == 4096);
  CHECK(lockbox_test::kernel_says_locked(reinterpret_cast<void*>(page_of(a)), 4096));
  for (void* k : keys) f.free(k);
}

TEST_CASE("pages BEST_EFFORT could not lock wait for the next run, and are locked when reused") {
  ShardFixture f;
  f.budget.set_limit(0);  // nothing can be locked
  f.budget.set_policy(lockbox::budget::Policy::kBestEffort);
  // 50 objects of 4000 bytes (4096-byte slots): 50 pages, all unlocked.
  std::vector<void*> blocks;
  for (int i = 0; i < 50; ++i) blocks.push_back(f.allocate(4000));
  for (void* block : blocks) REQUIRE(block != nullptr);
  CHECK(f.budget.unlocked_bytes() == 50 * 4096);
  for (void* block : blocks) f.free(block);
  // Empty, zero and still committed: the next round makes no system call for its pages.
  CHECK(f.budget.unlocked_bytes() == 50 * 4096);
  CHECK(lockbox_test::page_protection(blocks.front()) == "rw-");
  for (void*& block : blocks) block = f.allocate(4000);
  CHECK(f.budget.unlocked_bytes() == 50 * 4096);
  for (void* block : blocks) f.free(block);
  // With room in the budget (and STRICT), a page kept unlocked is locked before it is used.
  f.budget.set_limit(SIZE_MAX);
  f.budget.set_policy(lockbox::budget::Policy::kStrict);
  void* locked = f.allocate(4000);
  REQUIRE(locked != nullptr);
  CHECK(lockbox_test::kernel_says_locked(locked, 4000));
  CHECK(f.budget.locked_bytes() == 4096);
  CHECK(f.budget.unlocked_bytes() == 49 * 4096);
  f.free(locked);
}
