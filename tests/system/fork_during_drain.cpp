// SPDX-License-Identifier: ISC
// fork() while threads at the limit empty each other's caches and others lock their own
// memory. A thread that runs out of budget holds the thread-cache list's lock while it waits for
// every other thread to leave lockbox; fork's handler took the caller-lock table's lock, then
// waited for the list's; and a thread inside lockbox_lock waited for the table's lock: each of
// the three waited on the next, for ever (a hang within seconds, before). As an ordinary user at
// a small limit, so that allocations really run out; a watchdog turns a hang into a failure.
#include <lockbox/lockbox.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kLimit = 2u << 20;
constexpr auto kRunFor = std::chrono::seconds(8);
constexpr auto kHangAfter = std::chrono::seconds(30);

std::atomic<bool> g_done{false};
std::atomic<bool> g_joined{false};
std::atomic<long> g_refused{0};
std::atomic<long> g_forks{0};
std::atomic<long> g_locks{0};
std::atomic<long> g_stack_locks{0};
std::atomic<int> g_children_failed{0};

// Holds big blocks, and many small ones whose cache slots pin pages: the budget runs out and
// every refused allocation empties the other threads' caches.
void allocate_past_the_limit(unsigned seed) {
  constexpr int kHeld = 8;
  void* held[kHeld] = {};
  for (unsigned i = 0; !g_done.load(std::memory_order_relaxed); ++i) {
    seed = seed * 1103515245u + 12345u;
    int slot = static_cast<int>(seed >> 16) % kHeld;
    lockbox_free(held[slot]);
    std::size_t size =
        (seed >> 8) % 3 == 0 ? 200000 + (seed >> 4) % 200000 : 16 + (seed >> 4) % 3000;
    held[slot] = lockbox_malloc(size);
    if (held[slot] == nullptr) {
      g_refused.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::memset(held[slot], 1, size);
    }
  }
  for (void* block : held) lockbox_free(block);
}

// Inside lockbox, waiting on the caller-lock table's lock, again and again: on the thread's
// stack, whose pages the budget must pay for, and on a key of lockbox's own, whose page is
// locked already. The allocating threads may win every race for the budget (a run in CI locked
// the stack 0 times in 8 s, with 340,000 allocations refused); the key's lock costs no budget, so
// locks happen whoever wins, and each takes the table's lock all the same.
void lock_own_memory(void* key) {
  alignas(4096) char buffer[3 * 4096];
  std::memset(buffer, 2, sizeof buffer);
  while (!g_done.load(std::memory_order_relaxed)) {
    if (lockbox_lock(buffer, sizeof buffer) == 0) {
      if (lockbox_unlock(buffer, sizeof buffer) != 0) std::abort();
      g_stack_locks.fetch_add(1, std::memory_order_relaxed);
    }
    if (lockbox_lock(key, 32) != 0 || lockbox_unlock(key, 32) != 0) {
      std::fprintf(stderr, "a lock of lockbox's own key failed: %s\n", lockbox_last_error());
      std::abort();
    }
    g_locks.fetch_add(1, std::memory_order_relaxed);
  }
}

void fork_again_and_again() {
  while (!g_done.load(std::memory_order_relaxed)) {
    pid_t child = fork();
    if (child == 0) {
      void* key = lockbox_malloc(32);
      _exit(key != nullptr && lockbox_owns(key) ? 0 : 1);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
      g_children_failed.fetch_add(1);
    }
    g_forks.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace

int main() {
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  // Before the budget runs out: the lock threads' keys.
  void* keys[2] = {lockbox_malloc(32), lockbox_malloc(32)};
  CHECK(keys[0] != nullptr && keys[1] != nullptr);
  if (keys[0] == nullptr || keys[1] == nullptr) return lockbox_test::finish();
  // Every thread must finish within kHangAfter of being told to: one stuck thread is a hang,
  // even while the others go on.
  std::thread watchdog([] {
    auto deadline = std::chrono::steady_clock::now() + kRunFor + kHangAfter;
    while (!g_joined.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "hung: threads still running %lld s after the end (%ld forks)\n",
                     static_cast<long long>(kHangAfter.count()), g_forks.load());
        _exit(2);
      }
    }
  });
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t)
    threads.emplace_back(allocate_past_the_limit, 0x9e3779b9u * (t + 1));
  for (void* key : keys) threads.emplace_back(lock_own_memory, key);
  threads.emplace_back(fork_again_and_again);
  std::this_thread::sleep_for(kRunFor);
  g_done.store(true);
  for (auto& thread : threads) thread.join();
  g_joined.store(true);
  watchdog.join();
  for (void* key : keys) lockbox_free(key);
  std::printf("%ld forks, %ld refused allocations, %ld locks of keys, %ld of the stack\n",
              g_forks.load(), g_refused.load(), g_locks.load(), g_stack_locks.load());
  CHECK_MESSAGE(g_forks.load() > 10, "only %ld forks", g_forks.load());
  CHECK_MESSAGE(g_refused.load() > 10, "only %ld allocations refused: the limit never bound",
                g_refused.load());
  CHECK_MESSAGE(g_locks.load() > 10, "only %ld caller locks", g_locks.load());
  CHECK_MESSAGE(g_children_failed.load() == 0, "%d children failed", g_children_failed.load());
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(stats.live_allocations == 0, "%zu allocations live", stats.live_allocations);
  CHECK_MESSAGE(stats.caller_locked_bytes == 0, "%zu bytes still caller-locked",
                stats.caller_locked_bytes);
  return lockbox_test::finish();
}
