// SPDX-License-Identifier: ISC
// Threads at RLIMIT_MEMLOCK (8 MiB, as an ordinary user) while another thread flips the policy
// between STRICT and BEST_EFFORT every few milliseconds. Slots and large blocks, each written
// and checked before it is freed. Every switch to STRICT empties every thread's cache, and so
// does every allocation STRICT cannot fit: two threads then empty one cache at once unless
// each waits for the other. (Before, a large allocation that ran out of budget emptied its own
// thread's cache without that wait: the bin's tail passed its head and the next flush of it
// read far outside the ring: a SIGSEGV in 2 of 6 runs of this test, 2 of 3 of a longer one.)
// Nothing may crash, no block may change, and at the end nothing is live and VmLck agrees.
#include <lockbox/lockbox.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kLimit = std::size_t{8} << 20;
constexpr int kThreads = 4;
constexpr int kOperations = 60000;
constexpr unsigned kLargeOdds = 4;  // one allocation in four is a large block
constexpr std::size_t kLive = 512;

struct Block {
  unsigned char* bytes = nullptr;
  std::size_t size = 0;
  unsigned char fill = 0;
};

// Frees `block` after checking that it still holds what was written into it.
bool release(Block& block) {
  bool intact = true;
  for (std::size_t i = 0; i < block.size; ++i) intact &= block.bytes[i] == block.fill;
  lockbox_free(block.bytes);
  block = {};
  return intact;
}

void traffic(unsigned seed, std::atomic<int>& changed_blocks) {
  std::vector<Block> live(kLive);
  auto next = [&seed] {
    seed = seed * 1103515245u + 12345u;
    return seed >> 8;
  };
  for (int i = 0; i < kOperations; ++i) {
    Block& block = live[next() % kLive];
    if (block.bytes != nullptr && !release(block)) changed_blocks.fetch_add(1);
    // Large blocks of 70 to 170 KB, and slots of up to 9,000 bytes.
    std::size_t size = next() % kLargeOdds == 0 ? 70000 + next() % 100000 : next() % 9000;
    auto* bytes = static_cast<unsigned char*>(lockbox_malloc(size));
    if (bytes == nullptr) continue;  // STRICT at the limit
    block = {bytes, size, static_cast<unsigned char>(next())};
    std::memset(bytes, block.fill, size);
  }
  for (Block& block : live) {
    if (block.bytes != nullptr && !release(block)) changed_blocks.fetch_add(1);
  }
}

}  // namespace

int main() {
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  lockbox_test::start_capturing_stderr();  // BEST_EFFORT's one warning
  std::atomic<bool> done{false};
  std::atomic<int> changed_blocks{0};
  int switches = 0;
  std::thread flipper([&] {
    while (!done.load()) {
      lockbox_set_policy(switches++ % 2 == 0 ? LOCKBOX_POLICY_BEST_EFFORT : LOCKBOX_POLICY_STRICT);
      std::this_thread::sleep_for(std::chrono::milliseconds(3));
    }
  });
  std::vector<std::thread> workers;
  for (int t = 0; t < kThreads; ++t) {
    workers.emplace_back([t, &changed_blocks] { traffic(0x9e3779b9u * (t + 1), changed_blocks); });
  }
  for (auto& worker : workers) worker.join();
  done.store(true);
  flipper.join();
  lockbox_test::stop_capturing_stderr();
  CHECK_MESSAGE(switches > 10, "only %d policy switches", switches);
  CHECK_MESSAGE(changed_blocks.load() == 0, "%d blocks changed while live", changed_blocks.load());
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_STRICT) == 0);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(stats.live_allocations == 0, "%zu allocations live", stats.live_allocations);
  long long vmlck = lockbox_test::vmlck_bytes();
  CHECK_MESSAGE(vmlck == static_cast<long long>(stats.locked_bytes), "VmLck %lld, locked_bytes %zu",
                vmlck, stats.locked_bytes);
  CHECK(stats.locked_bytes <= kLimit);
  return lockbox_test::finish();
}
