// SPDX-License-Identifier: ISC
// Sealed boxes through the C API: round trips, the view rules, bad input, rekey (also while
// views are held), the stats, and many threads on the same and different boxes (run under TSan
// by ./dev.sh sanitize).
#include <doctest/doctest.h>
#include <lockbox/lockbox.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "heap/heap.hpp"

namespace {

lockbox_stats stats_now() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  return stats;
}

bool in_lockbox_memory(const void* pointer) {
  return lockbox::heap::Heap::instance().is_lockbox_memory(pointer);
}

std::vector<unsigned char> pattern(std::size_t size, unsigned seed) {
  std::vector<unsigned char> bytes(size);
  for (std::size_t i = 0; i < size; ++i) bytes[i] = static_cast<unsigned char>(seed * 131 + i * 7);
  return bytes;
}

}  // namespace

TEST_CASE("a sealed box gives back what was sealed, at every size") {
  for (std::size_t size : {std::size_t{0}, std::size_t{1}, std::size_t{32}, std::size_t{1000},
                           std::size_t{4096}, std::size_t{100000}}) {
    CAPTURE(size);
    std::vector<unsigned char> data = pattern(size, 3);
    lockbox_sealed* box = lockbox_seal(data.data(), size);
    REQUIRE(box != nullptr);
    CHECK(lockbox_sealed_size(box) == size);
    const void* view = lockbox_sealed_open(box);
    REQUIRE(view != nullptr);
    CHECK(reinterpret_cast<std::uintptr_t>(view) % 16 == 0);
    CHECK(in_lockbox_memory(view));
    CHECK(std::memcmp(view, data.data(), size) == 0);
    lockbox_sealed_close(box, view);
    lockbox_sealed_free(box);
  }
}

TEST_CASE("the box never holds the plaintext, and the view is wiped on the last close") {
  std::vector<unsigned char> data = pattern(64, 9);
  lockbox_sealed* box = lockbox_seal(data.data(), data.size());
  REQUIRE(box != nullptr);
  std::size_t box_bytes = lockbox_usable_size(box);
  REQUIRE(box_bytes >= data.size() + 16);
  std::string box_memory(reinterpret_cast<const char*>(box), box_bytes);
  CHECK(box_memory.find(std::string(data.begin(), data.end())) == std::string::npos);

  const void* view = lockbox_sealed_open(box);
  REQUIRE(view != nullptr);
  CHECK(std::memcmp(view, data.data(), data.size()) == 0);
  lockbox_sealed_close(box, view);
  CHECK(lockbox::heap::Heap::instance().freed_range_reads_zero(view, data.size()));
  lockbox_sealed_free(box);
}

TEST_CASE("read-only views nest; a writable view is exclusive") {
  unsigned char data[32] = {1, 2, 3};
  lockbox_sealed* box = lockbox_seal(data, sizeof data);
  REQUIRE(box != nullptr);
  const void* first = lockbox_sealed_open(box);
  const void* second = lockbox_sealed_open(box);
  REQUIRE(first != nullptr);
  CHECK(second == first);
  CHECK(stats_now().open_sealed_boxes >= 1);

  errno = 0;
  CHECK(lockbox_sealed_open_rw(box) == nullptr);
  CHECK(errno == EBUSY);
  CHECK(std::string(lockbox_last_error()).find("read-only view open") != std::string::npos);

  lockbox_sealed_close(box, first);
  CHECK(std::memcmp(second, data, sizeof data) == 0);  // the other reader's view stays
  lockbox_sealed_close(box, second);

  auto* writable = static_cast<unsigned char*>(lockbox_sealed_open_rw(box));
  REQUIRE(writable != nullptr);
  errno = 0;
  CHECK(lockbox_sealed_open(box) == nullptr);
  CHECK(errno == EBUSY);
  CHECK(lockbox_sealed_open_rw(box) == nullptr);
  CHECK(errno == EBUSY);
  writable[0] = 42;
  lockbox_sealed_close(box, writable);

  const auto* after = static_cast<const unsigned char*>(lockbox_sealed_open(box));
  REQUIRE(after != nullptr);
  CHECK(after[0] == 42);
  CHECK(after[1] == 2);
  lockbox_sealed_close(box, after);
  lockbox_sealed_free(box);
}

TEST_CASE("a writable view's close seals a new ciphertext") {
  unsigned char data[16] = {7};
  lockbox_sealed* box = lockbox_seal(data, sizeof data);
  REQUIRE(box != nullptr);
  std::size_t box_bytes = lockbox_usable_size(box);
  std::string before(reinterpret_cast<const char*>(box) + box_bytes - 32, 32);
  void* view = lockbox_sealed_open_rw(box);
  REQUIRE(view != nullptr);
  lockbox_sealed_close(box, view);  // unchanged plaintext, new nonce: other bytes
  std::string after(reinterpret_cast<const char*>(box) + box_bytes - 32, 32);
  CHECK(before != after);
  lockbox_sealed_free(box);
}

TEST_CASE("bad arguments get NULL, errno and a reason") {
  errno = 0;
  CHECK(lockbox_seal(nullptr, 5) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(std::string(lockbox_last_error()).find("data is NULL") != std::string::npos);
  errno = 0;
  CHECK(lockbox_seal("x", SIZE_MAX - 8) == nullptr);
  CHECK(errno == ENOMEM);
  errno = 0;
  CHECK(lockbox_sealed_open(nullptr) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(lockbox_sealed_open_rw(nullptr) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(lockbox_sealed_size(nullptr) == 0);
  CHECK(errno == EINVAL);
  lockbox_sealed_free(nullptr);  // a no-op
  lockbox_sealed* empty = lockbox_seal(nullptr, 0);
  REQUIRE(empty != nullptr);
  CHECK(lockbox_sealed_size(empty) == 0);
  const void* view = lockbox_sealed_open(empty);
  CHECK(view != nullptr);
  lockbox_sealed_close(empty, view);
  lockbox_sealed_free(empty);
}

TEST_CASE("the stats count boxes and open boxes") {
  lockbox_stats start = stats_now();
  unsigned char data[8] = {};
  lockbox_sealed* a = lockbox_seal(data, sizeof data);
  lockbox_sealed* b = lockbox_seal(data, sizeof data);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(stats_now().sealed_boxes == start.sealed_boxes + 2);
  CHECK(stats_now().open_sealed_boxes == start.open_sealed_boxes);
  const void* view = lockbox_sealed_open(a);
  const void* again = lockbox_sealed_open(a);
  CHECK(stats_now().open_sealed_boxes == start.open_sealed_boxes + 1);
  lockbox_sealed_close(a, view);
  CHECK(stats_now().open_sealed_boxes == start.open_sealed_boxes + 1);
  lockbox_sealed_close(a, again);
  CHECK(stats_now().open_sealed_boxes == start.open_sealed_boxes);
  // Freeing a box with a view still open ends the view (and wipes it).
  CHECK(lockbox_sealed_open(b) != nullptr);
  lockbox_sealed_free(b);
  lockbox_sealed_free(a);
  CHECK(stats_now().sealed_boxes == start.sealed_boxes);
  CHECK(stats_now().open_sealed_boxes == start.open_sealed_boxes);
}

TEST_CASE("rekey re-seals every box under new shares, also while views are held") {
  std::vector<lockbox_sealed*> boxes;
  for (unsigned i = 0; i < 50; ++i) {
    std::vector<unsigned char> data = pattern(1 + i * 37, i);
    boxes.push_back(lockbox_seal(data.data(), data.size()));
    REQUIRE(boxes.back() != nullptr);
  }
  const void* held = lockbox_sealed_open(boxes[3]);
  auto* writing = static_cast<unsigned char*>(lockbox_sealed_open_rw(boxes[4]));
  REQUIRE(held != nullptr);
  REQUIRE(writing != nullptr);
  std::size_t box_bytes = lockbox_usable_size(boxes[0]);
  std::string before(reinterpret_cast<const char*>(boxes[0]), box_bytes);

  CHECK(lockbox_sealed_rekey() == 0);
  CHECK(std::string(reinterpret_cast<const char*>(boxes[0]), box_bytes) != before);
  CHECK(std::memcmp(held, pattern(1 + 3 * 37, 3).data(), 1 + 3 * 37) == 0);
  writing[0] ^= 0xff;
  lockbox_sealed_close(boxes[4], writing);  // sealed under the new key
  lockbox_sealed_close(boxes[3], held);
  CHECK(lockbox_sealed_rekey() == 0);

  for (unsigned i = 0; i < boxes.size(); ++i) {
    std::vector<unsigned char> expected = pattern(1 + i * 37, i);
    if (i == 4) expected[0] ^= 0xff;
    const void* view = lockbox_sealed_open(boxes[i]);
    REQUIRE(view != nullptr);
    CHECK_MESSAGE(std::memcmp(view, expected.data(), expected.size()) == 0, "box ", i);
    lockbox_sealed_close(boxes[i], view);
    lockbox_sealed_free(boxes[i]);
  }
}

TEST_CASE("many threads open, write and close the same and different boxes while one rekeys") {
  constexpr int kThreads = 6;
  constexpr int kRounds = 300;
  constexpr std::size_t kSize = 48;
  // The shared box holds kSize copies of one byte; a writer changes them all at once, so a
  // reader that ever sees two different bytes saw a torn or wrongly decrypted view.
  std::vector<unsigned char> initial(kSize, 1);
  lockbox_sealed* shared = lockbox_seal(initial.data(), kSize);
  REQUIRE(shared != nullptr);
  std::atomic<int> torn{0}, wrong{0}, busy{0}, failed{0};
  std::atomic<bool> done{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<unsigned char> mine = pattern(100 + t, static_cast<unsigned>(t));
      lockbox_sealed* own = lockbox_seal(mine.data(), mine.size());
      if (own == nullptr) {
        failed++;
        return;
      }
      for (int round = 0; round < kRounds; ++round) {
        const auto* view = static_cast<const unsigned char*>(lockbox_sealed_open(own));
        if (view == nullptr || std::memcmp(view, mine.data(), mine.size()) != 0) wrong++;
        if (view != nullptr) lockbox_sealed_close(own, view);
        if (round % 5 == t % 5) {
          auto* writable = static_cast<unsigned char*>(lockbox_sealed_open_rw(shared));
          if (writable == nullptr) {
            if (errno == EBUSY) busy++; else failed++;
            continue;
          }
          std::memset(writable, static_cast<unsigned char>(t + round), kSize);
          lockbox_sealed_close(shared, writable);
        } else {
          const auto* reading = static_cast<const unsigned char*>(lockbox_sealed_open(shared));
          if (reading == nullptr) {
            if (errno == EBUSY) busy++; else failed++;
            continue;
          }
          for (std::size_t i = 1; i < kSize; ++i) {
            if (reading[i] != reading[0]) {
              torn++;
              break;
            }
          }
          lockbox_sealed_close(shared, reading);
        }
      }
      lockbox_sealed_free(own);
    });
  }
  std::thread rekeying([&] {
    int rekeys = 0;
    while (!done.load() || rekeys < 3) {
      if (lockbox_sealed_rekey() != 0) failed++;
      ++rekeys;
      std::this_thread::yield();
    }
  });
  for (auto& thread : threads) thread.join();
  done = true;
  rekeying.join();
  CHECK(torn == 0);
  CHECK(wrong == 0);
  CHECK(failed == 0);
  MESSAGE("views refused as busy: ", busy.load());
  const auto* last = static_cast<const unsigned char*>(lockbox_sealed_open(shared));
  REQUIRE(last != nullptr);
  for (std::size_t i = 1; i < kSize; ++i) CHECK(last[i] == last[0]);
  lockbox_sealed_close(shared, last);
  lockbox_sealed_free(shared);
}
