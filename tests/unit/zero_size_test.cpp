// SPDX-License-Identifier: ISC
// Zero-byte objects (heap/zero_size_objects.hpp): unique addresses with no memory behind them,
// reused as late as possible, counted, and ordinary slots once their range is full. The faults
// (a read, a write, a double free) have programs of their own in tests/faults.
#include <doctest/doctest.h>
#include <lockbox/lockbox.h>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <set>
#include <vector>

#include "heap/zero_size_objects.hpp"
#include "support/process.hpp"
#include "support/stats.hpp"

namespace {

using lockbox::heap::ZeroSizeObjects;
using lockbox_test::stats_now;

// Whether the kernel lets this process read the byte at `address`: write(2) from it into a
// pipe fails with EFAULT where a load would fault. The system call itself, so that no
// sanitizer's interceptor reads the byte first (an ordinary zero-byte slot is all canary,
// which ASan keeps poisoned).
bool readable(const void* address) {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  long wrote = ::syscall(SYS_write, fds[1], address, 1);
  ::close(fds[0]);
  ::close(fds[1]);
  return wrote == 1;
}

}  // namespace

TEST_CASE("a zero-byte object is a unique address with no memory behind it") {
  lockbox_stats before = stats_now();
  std::vector<void*> objects;
  std::set<void*> distinct;
  for (int i = 0; i < 1000; ++i) {
    void* object = lockbox_malloc(0);
    REQUIRE(object != nullptr);
    objects.push_back(object);
    distinct.insert(object);
    CHECK(reinterpret_cast<std::uintptr_t>(object) % 16 == 0);
  }
  CHECK(distinct.size() == objects.size());
  void* zeroed = lockbox_calloc(0, 32);
  REQUIRE(zeroed != nullptr);
  objects.push_back(zeroed);
  for (void* object : {objects.front(), objects[500], objects.back()}) {
    CHECK_FALSE(readable(object));
    CHECK(lockbox_test::page_protection(object) == "---");
    CHECK(lockbox_usable_size(object) == 0);
    CHECK(lockbox_owns(object) == 1);
  }
  lockbox_stats during = stats_now();
  CHECK(during.live_allocations == before.live_allocations + objects.size());
  CHECK(during.in_use_bytes == before.in_use_bytes);
  CHECK(during.locked_bytes == before.locked_bytes);  // nothing locked, nothing charged
  for (void* object : objects) lockbox_free(object);
  CHECK(lockbox_owns(objects.front()) == 0);
  CHECK(stats_now().live_allocations == before.live_allocations);
}

TEST_CASE("a freed zero-byte address comes back only after the rest of its range") {
  void* first = lockbox_malloc(0);
  REQUIRE(first != nullptr);
  lockbox_free(first);
  // Next fit: every other free address of the range goes out before this one again.
  std::vector<void*> later;
  for (int i = 0; i < 5000; ++i) {
    void* object = lockbox_malloc(0);
    REQUIRE(object != nullptr);
    CHECK(object != first);
    // Freed at once: the range is not full, yet the stale address still does not return.
    lockbox_free(object);
    later.push_back(object);
  }
  CHECK(std::set<void*>(later.begin(), later.end()).size() == later.size());
}

TEST_CASE("aligned zero-byte objects keep their alignment; above a page they are slots") {
  for (std::size_t alignment : {32u, 256u, 4096u}) {
    void* object = lockbox_aligned_alloc(alignment, 0);
    REQUIRE(object != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(object) % alignment == 0);
    CHECK_FALSE(readable(object));
    lockbox_free(object);
  }
  void* big = lockbox_aligned_alloc(8192, 0);
  REQUIRE(big != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(big) % 8192 == 0);
  CHECK(lockbox_usable_size(big) == 0);
  lockbox_free(big);
}

TEST_CASE("realloc moves a zero-byte object to memory and back") {
  void* nothing = lockbox_malloc(0);
  REQUIRE(nothing != nullptr);
  auto* grown = static_cast<unsigned char*>(lockbox_realloc(nothing, 24));
  REQUIRE(grown != nullptr);
  CHECK(readable(grown));
  CHECK(lockbox_usable_size(grown) == 24);
  CHECK(lockbox_owns(nothing) == 0);
  grown[0] = 7;
  void* shrunk = lockbox_realloc(grown, 0);
  REQUIRE(shrunk != nullptr);
  CHECK_FALSE(readable(shrunk));
  CHECK(lockbox_owns(grown) == 0);
  lockbox_free(shrunk);
}

TEST_CASE("past the range's last free address, malloc(0) gives an ordinary slot") {
  std::vector<void*> objects;
  void* overflow = nullptr;
  for (std::size_t i = 0; i <= ZeroSizeObjects::kObjects; ++i) {
    void* object = lockbox_malloc(0);
    REQUIRE(object != nullptr);
    if (readable(object)) {
      overflow = object;
      break;
    }
    objects.push_back(object);
  }
  // No other test leaves a zero-byte object live: exactly the range's worth had no memory.
  CHECK(objects.size() == ZeroSizeObjects::kObjects);
  REQUIRE(overflow != nullptr);
  CHECK(lockbox_usable_size(overflow) == 0);
  CHECK(lockbox_owns(overflow) == 1);
  lockbox_free(overflow);
  lockbox_free(objects[1234]);
  void* again = lockbox_malloc(0);  // the one free address
  CHECK(again == objects[1234]);
  CHECK_FALSE(readable(again));
  objects[1234] = again;
  for (void* object : objects) lockbox_free(object);
}

TEST_CASE("a forked child frees its parent's zero-byte objects and makes its own") {
  void* inherited = lockbox_malloc(0);
  REQUIRE(inherited != nullptr);
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (lockbox_owns(inherited) != 1) ::_exit(1);
    lockbox_free(inherited);
    void* own = lockbox_malloc(0);
    if (own == nullptr || own == inherited || readable(own)) ::_exit(2);
    lockbox_free(own);
    ::_exit(0);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(lockbox_owns(inherited) == 1);  // the parent's is still live
  lockbox_free(inherited);
}
