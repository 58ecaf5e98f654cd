// SPDX-License-Identifier: ISC
// The locked memory a program needs must not grow with its thread count: every thread's cache
// and quarantine pin locked pages, and before STRICT fails an allocation lockbox takes back
// every slot it can, other threads' included. As an ordinary user (CAP_IPC_LOCK gone):
//   busy: four threads at RLIMIT_MEMLOCK = 384 KiB allocate and free mixed sizes (16 B to
//         4 KiB), up to eight blocks (about 8 KiB) live each, as libgcrypt's secure heap does
//         with lockbox behind it: not one allocation may fail (before: 575 failed at 384 KiB).
//         Nearer the edge (256 KiB) failures are rare but depend on timing, so the test keeps
//         this margin; `thread_budget busy THREADS KIB` measures others (README's table).
//   big:  32 threads at 8 MiB with slots up to 64 KiB and cross-thread frees: the budget runs
//         short while shards hold quarantined slots above 8 KiB; nothing may fail or crash.
//   idle: eight threads each use every size class (and slots above 8 KiB, quarantined in their
//         shards), free everything and park outside lockbox;
//         then the main thread fills the budget with 32-byte keys. It must fit as many as a
//         process whose other threads never ran, but for a small, documented allowance.
#include <lockbox/lockbox.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/parked_threads.hpp"
#include "support/process.hpp"
#include "support/thread_traffic.hpp"

namespace {

std::size_t mixed_size(unsigned i) {
  static constexpr std::size_t kSizes[] = {16, 24, 32, 48, 64, 100, 160, 256, 400, 512, 768,
                                           1024, 1500, 2048, 3000, 4000};
  return kSizes[(i * 7 + i / 16) % (sizeof kSizes / sizeof kSizes[0])];
}

// `thread_count` threads at `limit_kib` (the test: 4 at 384 KiB; other values measure).
int busy(int thread_count, std::size_t limit_kib) {
  const std::size_t kLimit = limit_kib * 1024;
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  std::atomic<int> failures{0};
  std::atomic<std::size_t> most_live{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < thread_count; ++t) {
    threads.emplace_back([&, t] {
      constexpr unsigned kLive = 8;  // about 4 KiB live per thread on average
      void* live[kLive] = {};
      for (unsigned i = 0; i < 200000; ++i) {
        unsigned slot = (i * 5 + static_cast<unsigned>(t)) % kLive;
        lockbox_free(live[slot]);
        std::size_t size = mixed_size(i + static_cast<unsigned>(t) * 3);
        live[slot] = lockbox_malloc(size);
        if (live[slot] == nullptr) {
          if (failures.fetch_add(1) == 0) {
            lockbox_stats now;
            lockbox_get_stats(&now, sizeof now);
            std::fprintf(stderr, "thread %d, step %u: %zu bytes: %s (in use %zu, quarantined %zu, locked %zu)\n", t, i, size,
                         lockbox_last_error(), now.in_use_bytes, now.quarantined_bytes, now.locked_bytes);
          }
          continue;
        }
        std::memset(live[slot], 0x33, size);
        if (i % 4096 == 0) {
          lockbox_stats stats;
          lockbox_get_stats(&stats, sizeof stats);
          std::size_t seen = most_live.load();
          while (stats.in_use_bytes > seen && !most_live.compare_exchange_weak(seen, stats.in_use_bytes)) {
          }
        }
      }
      for (void* block : live) lockbox_free(block);
    });
  }
  for (auto& thread : threads) thread.join();
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::printf("%d threads at %zu KiB: %d failed allocations, at most %zu bytes live, peak "
              "locked %zu bytes\n", thread_count, limit_kib, failures.load(), most_live.load(),
              stats.peak_locked_bytes);
  CHECK(failures.load() == 0);
  CHECK(stats.peak_locked_bytes <= kLimit);
  return lockbox_test::finish();
}

// 32 threads as an ordinary user at 8 MiB, slots of 16 B to 64 KiB, half of them freed by
// another thread: the budget runs short again and again, and each time every shard's
// quarantine of slots above 8 KiB goes back. A build that emptied the quarantine of the very
// shard whose take_slots had run out (from inside it) dissolved runs under it: this crashed
// or reported writes after free that never happened, six runs of six.
int big_slots() {
  constexpr std::size_t kLimit = std::size_t{8} << 20;
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  if (lockbox_set_backend(LOCKBOX_BACKEND_ANON) != 0) {  // where slots go up to 64 KiB
    CHECK_MESSAGE(false, "lockbox_set_backend: %s", lockbox_last_error());
    return lockbox_test::finish();
  }
  constexpr int kThreads = 32;
  std::vector<std::atomic<void*>> shared(64);
  std::atomic<std::size_t> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      lockbox_test::ThreadTraffic traffic(shared, t, false);  // slots only
      failures.fetch_add(traffic.run(10000));
      traffic.free_own();
    });
  }
  for (auto& thread : threads) thread.join();
  for (auto& slot : shared) lockbox_free(slot.exchange(nullptr));
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::printf("32 threads at 8 MiB, 16 B to 64 KiB: %zu failed allocations, peak locked %zu\n",
              failures.load(), stats.peak_locked_bytes);
  CHECK(failures.load() == 0);
  CHECK(stats.live_allocations == 0);
  CHECK(stats.peak_locked_bytes <= kLimit);
  return lockbox_test::finish();
}

constexpr std::size_t kIdleLimit = 1024 * 1024;

// Keys of 32 bytes until the budget says no; all freed again. How many fit.
std::size_t fill_with_keys() {
  std::vector<void*> keys;
  keys.reserve(40000);
  while (void* key = lockbox_malloc(32)) {
    std::memset(key, 0x44, 32);
    keys.push_back(key);
  }
  CHECK(errno == ENOMEM);
  for (void* key : keys) lockbox_free(key);
  return keys.size();
}

// In a child of its own, so that both measurements start from a fresh process.
std::size_t keys_beside_idle_threads(int thread_count) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0) return 0;
  pid_t child = fork();
  if (child == 0) {
    close(pipe_ends[0]);
    std::string why = lockbox_test::become_unprivileged(kIdleLimit);
    if (!why.empty()) _exit(2);
    // Anonymous arenas, whatever the suite's setup: a memfd_secret arena is charged whole when
    // it is made, so at 1 MiB the budget would say which shard gets the one arena it affords,
    // not what the caches hold.
    if (lockbox_set_backend(LOCKBOX_BACKEND_ANON) != 0) _exit(4);
    std::size_t keys = lockbox_test::while_threads_park(
        thread_count,
        [] {
          // Every size class, several times over, so that the cache and quarantine fill; and
          // slots above 8 KiB, whose quarantine is their shard's.
          for (int round = 0; round < 4; ++round) {
            std::vector<void*> blocks;
            for (unsigned i = 0; i < 400; ++i) blocks.push_back(lockbox_malloc(mixed_size(i)));
            for (void* block : blocks) lockbox_free(block);
            for (std::size_t big : {10000, 20000, 40000, 65000}) {
              lockbox_free(lockbox_malloc(big));
            }
          }
        },
        [] { return fill_with_keys(); });
    if (write(pipe_ends[1], &keys, sizeof keys) != sizeof keys) _exit(3);
    _exit(0);
  }
  close(pipe_ends[1]);
  std::size_t keys = 0;
  if (read(pipe_ends[0], &keys, sizeof keys) != sizeof keys) keys = 0;
  close(pipe_ends[0]);
  int status = 0;
  waitpid(child, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  return keys;
}

int idle() {
  std::size_t alone = keys_beside_idle_threads(0);
  std::size_t beside_eight = keys_beside_idle_threads(8);
  // Every slot the idle threads cached or quarantined is taken back before the main thread's
  // allocation fails, and their shards' empty pages with it: what may stay is a few pages
  // (README, "RLIMIT_MEMLOCK and threads"). Before, the idle threads kept almost all of it.
  constexpr std::size_t kAllowanceBytes = 16 * 1024;
  constexpr std::size_t kKeySlotBytes = 48;  // a 32-byte key and its canary
  std::printf("1 MiB as an ordinary user: %zu keys alone, %zu beside 8 idle threads that used "
              "every size class\n", alone, beside_eight);
  CHECK(alone > 10000);
  CHECK_MESSAGE(beside_eight * kKeySlotBytes + kAllowanceBytes >= alone * kKeySlotBytes,
                "%zu keys fewer: %zu bytes of the budget stay with the idle threads",
                alone - beside_eight, (alone - beside_eight) * kKeySlotBytes);
  return lockbox_test::finish();
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "busy") == 0) {
    int threads = argc > 2 ? std::atoi(argv[2]) : 4;
    std::size_t limit_kib = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 384;
    return busy(threads, limit_kib);
  }
  if (std::strcmp(mode, "idle") == 0) return idle();
  if (std::strcmp(mode, "big") == 0) return big_slots();
  std::fprintf(stderr, "usage: thread_budget busy|idle|big\n");
  return 2;
}
