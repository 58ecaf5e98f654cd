// The page refcounts of a shard, seen from lockbox's metadata and from the kernel: a page is
// locked while any object overlaps it, an object straddling two pages holds both, freeing one
// object never unlocks a neighbour, and empty pages wait in a small locked reserve.
#include <doctest/doctest.h>

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
    lockbox::SpinLockGuard guard(shard.lock());
    return shard.allocate(size, class_for_request(size), 1, 0, registry, budget,
                          lockbox::pages::Reclaimer{nullptr, nullptr});
  }
  void free(void* pointer) {
    lockbox::SpinLockGuard guard(shard.lock());
    shard.free(*registry.find(pointer), pointer, budget);
  }
  std::size_t refcount(const void* address) {
    Arena* arena = registry.find(address);
    return arena->page_refcount[arena->page_index(address)];
  }
  ~ShardFixture() {
    lockbox::SpinLockGuard guard(shard.lock());
    shard.release_empty_pages(budget);
  }

  ArenaRegistry registry;
  lockbox::budget::Budget budget;
  Shard shard;
};

}  // namespace

TEST_CASE("objects count on every page they overlap; one free never unlocks a neighbour") {
  ShardFixture f;
  // 48-byte slots in a 3-page run: slots 0..84 sit on the first page, slot 85 straddles.
  std::vector<unsigned char*> keys;
  for (int i = 0; i < 86; ++i) keys.push_back(static_cast<unsigned char*>(f.allocate(32)));
  unsigned char* first_page = keys[0];
  unsigned char* second_page = first_page + 4096;
  CHECK(keys[85] + 48 > second_page);  // the straddler
  CHECK(f.refcount(first_page) == 86);
  CHECK(f.refcount(second_page) == 1);
  CHECK(f.budget.locked_bytes() == 2 * 4096);
  CHECK(lockbox_test::kernel_says_locked(first_page, 2 * 4096));

  for (int i = 1; i < 86; ++i) f.free(keys[i]);
  CHECK(f.refcount(first_page) == 1);
  CHECK(f.refcount(second_page) == 0);
  // keys[0] still lives: its page is locked, by the kernel's account too.
  CHECK(lockbox_test::kernel_says_locked(keys[0], 32));

  f.free(keys[0]);
  CHECK(f.refcount(first_page) == 0);
  // Empty pages stay locked in the reserve until room is needed.
  CHECK(f.budget.locked_bytes() == 2 * 4096);
  {
    lockbox::SpinLockGuard guard(f.shard.lock());
    CHECK(f.shard.release_empty_pages(f.budget));
  }
  CHECK(f.budget.locked_bytes() == 0);
  CHECK(lockbox_test::kernel_says_unlocked(first_page, 2 * 4096));
}

TEST_CASE("the reserve of empty locked pages is bounded") {
  ShardFixture f;
  // 200 objects of 4000 bytes (4096-byte slots) commit 200 pages.
  std::vector<void*> blocks;
  for (int i = 0; i < 200; ++i) blocks.push_back(f.allocate(4000));
  CHECK(f.budget.locked_bytes() == 200 * 4096);
  for (void* block : blocks) f.free(block);
  // Once everything is empty the reserve is back to its floor; it is never emptied outright.
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
  CHECK(keys.size() == 85);  // exactly the slots wholly on the first page
  CHECK(f.budget.locked_bytes() == 4096);
  for (void* k : keys) f.free(k);
}
