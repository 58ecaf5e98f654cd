// SPDX-License-Identifier: ISC
// Workloads whose system calls tests/cost/syscall_count_test.py counts under strace, between
// two markers (a write to fd -1, which fails and which strace logs), never timed:
//   cost_workload bulk N [crowded]   allocate N 32-byte keys, then free them, three rounds
//   cost_workload past-budget N SIZE allocate N blocks of SIZE bytes under BEST_EFFORT, more
//                                    than the limit locks, then free them, three rounds
//   cost_workload lock N [crowded|straddling]  N lockbox_lock + lockbox_unlock pairs on a
//                                    256-byte stack buffer (straddling: across a page boundary)
//   cost_workload lock-refused N [crowded]  N lockbox_lock calls refused (EACCES) on two pages
//                                    whose second is PROT_NONE
//   cost_workload large BYTES N      N allocations of BYTES, each written and freed
//   cost_workload threads T N        T threads, N operations each, 16 B to 64 KiB, half of the
//                                    frees of blocks another thread allocated
//   cost_workload steady T N         the same on T long-lived threads, slots only, counted after
//                                    a warm-up of N operations each
//   cost_workload steady-past-budget T N  the same under BEST_EFFORT with twice as much live
//                                    as the limit locks
//   cost_workload refused-beside-idle T N  N allocations at the limit (most refused) while T
//                                    other threads, which used lockbox, wait outside it
// Each runs as an ordinary user at RLIMIT_MEMLOCK = 8 MiB, after a warm-up of the same work.
// The threads and steady workloads keep about 2 MiB live, so that what is counted is the locks,
// not the hand-over of other threads' caches when the budget runs out; steady-past-budget keeps
// about 16 MiB live, to count what running past the budget costs.
// "crowded": first lock 64 KiB of the application's own memory and make 10,000 mappings.
#include <lockbox/lockbox.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <barrier>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "support/process.hpp"
#include "support/thread_traffic.hpp"

namespace {

void marker(const char* text) {
  // fd -1: the write fails (EBADF) and changes nothing, but strace shows its text.
  if (write(-1, text, std::strlen(text)) != -1) std::abort();
}

[[noreturn]] void fail(const char* what) {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::fprintf(stderr,
               "cost_workload: %s (%s); locked %zu, of it memfd_secret %zu, large cache %zu, "
               "quarantined slots %zu; in use %zu in %zu allocations\n",
               what, lockbox_last_error(), stats.locked_bytes, stats.secretmem_bytes,
               stats.cached_large_bytes, stats.quarantined_bytes, stats.in_use_bytes,
               stats.live_allocations);
  std::exit(1);
}

void bulk(std::size_t keys, std::size_t size = 32) {
  std::vector<void*> live(keys);
  auto round = [&] {
    for (auto& key : live) {
      if ((key = lockbox_malloc(size)) == nullptr) fail("allocation refused");
      std::memset(key, 0x5a, size);
    }
    for (void* key : live) lockbox_free(key);
  };
  round();
  marker("cost:begin");
  for (int i = 0; i < 3; ++i) round();
  marker("cost:end");
}

void lock_stack_buffer(std::size_t pairs, bool straddling) {
  alignas(4096) unsigned char stack[2 * 4096];
  std::memset(stack, 0, sizeof stack);
  // Where the stack happens to put a 256-byte buffer, it may straddle two pages or not: a
  // straddling one must cost the same calls (one per run of pages, not one per page).
  unsigned char* buffer = stack + (straddling ? 4096 - 128 : 0);
  auto pair = [&] {
    if (lockbox_lock(buffer, 256) != 0) fail("lockbox_lock refused");
    if (lockbox_unlock(buffer, 256) != 0) fail("lockbox_unlock refused");
  };
  pair();
  marker("cost:begin");
  for (std::size_t i = 0; i < pairs; ++i) pair();
  marker("cost:end");
}

void lock_refused(std::size_t calls) {
  auto* pages = static_cast<unsigned char*>(
      mmap(nullptr, 2 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (pages == MAP_FAILED || mprotect(pages + 4096, 4096, PROT_NONE) != 0) fail("no pages");
  auto refused = [&] {
    if (lockbox_lock(pages + 4000, 200) == 0 || errno != EACCES) fail("not refused with EACCES");
  };
  refused();
  marker("cost:begin");
  for (std::size_t i = 0; i < calls; ++i) refused();
  marker("cost:end");
  munmap(pages, 2 * 4096);
}

void large(std::size_t bytes, std::size_t cycles) {
  auto cycle = [&] {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(bytes));
    if (block == nullptr) fail("large allocation refused");
    std::memset(block, 0x5a, bytes);
    lockbox_free(block);
  };
  for (int i = 0; i < 20; ++i) cycle();
  marker("cost:begin");
  for (std::size_t i = 0; i < cycles; ++i) cycle();
  marker("cost:end");
}

constexpr std::size_t kSharedBlocks = 64;  // and 4 of its own per thread: about 2 MiB live at 32
// Slots of 16 B to 64 KiB (8 KiB on average) in 2,048 shared places: about 16 MiB live, twice
// what the 8 MiB limit locks.
constexpr std::size_t kPastBudgetBlocks = 2048;

void threads(int count, std::size_t operations) {
  std::vector<std::atomic<void*>> shared(kSharedBlocks);
  auto run = [&](std::size_t n) {
    std::vector<std::thread> workers;
    for (int t = 0; t < count; ++t) {
      workers.emplace_back([&shared, t, n] {
        lockbox_test::ThreadTraffic traffic(shared, t, true);
        if (traffic.run(n) != 0) fail("allocation refused");
        traffic.free_own();
      });
    }
    for (auto& worker : workers) worker.join();
  };
  run(operations / 10);
  marker("cost:begin");
  run(operations);
  marker("cost:end");
  for (auto& slot : shared) lockbox_free(slot.exchange(nullptr));
}

// The same threads, long-lived (as a server's workers are), and slots only: after a warm-up of
// the same work, steady state between the markers, where pages must neither go back to the
// kernel nor be committed again.
void steady_threads(int count, std::size_t operations, std::size_t shared_blocks = kSharedBlocks) {
  std::vector<std::atomic<void*>> shared(shared_blocks);
  std::barrier phase(count + 1);
  std::vector<std::thread> workers;
  for (int t = 0; t < count; ++t) {
    workers.emplace_back([&shared, &phase, t, operations] {
      lockbox_test::ThreadTraffic traffic(shared, t, false);
      if (traffic.run(operations) != 0) fail("allocation refused");
      phase.arrive_and_wait();  // warmed up
      phase.arrive_and_wait();  // the begin marker is written
      if (traffic.run(operations) != 0) fail("allocation refused");
      phase.arrive_and_wait();  // measured
      phase.arrive_and_wait();  // the end marker is written
      traffic.free_own();
    });
  }
  phase.arrive_and_wait();
  marker("cost:begin");
  phase.arrive_and_wait();
  phase.arrive_and_wait();
  marker("cost:end");
  phase.arrive_and_wait();
  for (auto& worker : workers) worker.join();
  for (auto& slot : shared) lockbox_free(slot.exchange(nullptr));
}

// Every refusal empties every other thread's cache first (the drain: heap.cpp), so it is one
// request set and withdrawn per idle thread. The threads wait outside lockbox, not for the
// drain, so withdrawing the request must wake nobody (before: one futex wake per thread per
// drain).
void refused_beside_idle(int count, std::size_t attempts) {
  std::barrier phase(count + 1);
  std::vector<std::thread> idle;
  for (int t = 0; t < count; ++t) {
    idle.emplace_back([&phase] {
      // A cache with slots of a few classes, then nothing until the end.
      std::vector<void*> blocks;
      for (std::size_t size = 16; size <= 4096; size *= 2) blocks.push_back(lockbox_malloc(size));
      for (void* block : blocks) lockbox_free(block);
      phase.arrive_and_wait();
      phase.arrive_and_wait();
    });
  }
  phase.arrive_and_wait();
  std::vector<void*> keys;
  while (void* key = lockbox_malloc(32)) keys.push_back(key);
  std::size_t refused = 0;
  auto attempt = [&] {
    if (void* key = lockbox_malloc(32)) {
      keys.push_back(key);
    } else {
      ++refused;
    }
  };
  attempt();
  marker("cost:begin");
  for (std::size_t i = 0; i < attempts; ++i) attempt();
  marker("cost:end");
  for (void* key : keys) lockbox_free(key);
  phase.arrive_and_wait();
  for (auto& thread : idle) thread.join();
  // What is counted must be refusals: a budget with room would measure nothing.
  if (refused < attempts / 2) fail("too few allocations refused at the limit");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr,
                 "usage: cost_workload bulk|lock|lock-refused N [crowded] | past-budget N SIZE | "
                 "large BYTES N | "
                 "threads|steady|steady-past-budget|refused-beside-idle T N\n");
    return 2;
  }
  std::string mode = argv[1];
  std::string why = lockbox_test::become_unprivileged(std::size_t{8} << 20);
  if (!why.empty()) {
    std::fprintf(stderr, "cost_workload: %s\n", why.c_str());
    return 1;
  }
  std::size_t n = std::strtoull(argv[2], nullptr, 10);
  bool crowded = argc > 3 && std::string(argv[3]) == "crowded";
  bool straddling = argc > 3 && std::string(argv[3]) == "straddling";
  if (crowded && !lockbox_test::crowd_the_process())
    fail("cannot lock 64 KiB of its own and make 10,000 mappings");
  if (mode == "bulk") {
    bulk(n);
  } else if (mode == "past-budget" && argc > 3) {
    if (lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) != 0) fail("no BEST_EFFORT");
    bulk(n, std::strtoull(argv[3], nullptr, 10));
  } else if (mode == "lock") {
    lock_stack_buffer(n, straddling);
  } else if (mode == "lock-refused") {
    lock_refused(n);
  } else if (mode == "large" && argc > 3) {
    large(n, std::strtoull(argv[3], nullptr, 10));
  } else if (mode == "threads" && argc > 3) {
    threads(static_cast<int>(n), std::strtoull(argv[3], nullptr, 10));
  } else if (mode == "steady" && argc > 3) {
    steady_threads(static_cast<int>(n), std::strtoull(argv[3], nullptr, 10));
  } else if (mode == "steady-past-budget" && argc > 3) {
    if (lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) != 0) fail("no BEST_EFFORT");
    steady_threads(static_cast<int>(n), std::strtoull(argv[3], nullptr, 10), kPastBudgetBlocks);
  } else if (mode == "refused-beside-idle" && argc > 3) {
    refused_beside_idle(static_cast<int>(n), std::strtoull(argv[3], nullptr, 10));
  } else {
    std::fprintf(stderr, "cost_workload: unknown mode %s\n", argv[1]);
    return 2;
  }
  return 0;
}
