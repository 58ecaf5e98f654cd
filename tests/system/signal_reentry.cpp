// SPDX-License-Identifier: ISC
// Signal handlers that call lockbox on the thread they interrupted, in the middle of lockbox.
//   storm:   a worker allocates and frees blocks of every kind in a tight loop (so most signals
//            land inside lockbox) while the main thread sends it thousands of signals; the
//            handler frees a block the worker never touches, allocates another, writes it and
//            keeps it. Nothing may report a fault on this correct program, every block the
//            handler freed is gone, and the counts come back to zero.
//   sigterm: a child with hundreds of secrets of every kind, busy in lockbox, is sent SIGTERM;
//            its handler frees (wipes) every secret and exits 0. Repeated, so that the signal
//            lands inside malloc, free and realloc alike.
//   startup: fresh processes whose threads make lockbox's first calls under a rain of signals
//            whose handler calls lockbox: start-up must not wait for itself.
#include <lockbox/lockbox.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "support/check.hpp"

namespace {

std::size_t size_for(unsigned i) {
  switch (i % 5) {
    case 0: return 16 + i % 48;              // key-sized: the fast paths
    case 1: return 100 + (i * 37) % 4000;    // the other small classes
    case 2: return 5000 + (i * 101) % 20000; // large blocks
    default: return 32;
  }
}

// The handler's blocks: taken from `given` (prepared before the storm), kept in `kept`.
constexpr int kHandlerBlocks = 4096;
void* g_given[kHandlerBlocks];
void* g_kept[kHandlerBlocks];
std::atomic<int> g_next_given{0};
std::atomic<int> g_next_kept{0};
std::atomic<int> g_failed_allocations{0};
std::atomic<int> g_signals_handled{0};
std::atomic<int> g_misaligned{0};

void storm_handler(int) {
  int saved_errno = errno;
  int index = g_next_given.fetch_add(1);
  if (index < kHandlerBlocks) {
    lockbox_free(g_given[index]);
    g_given[index] = nullptr;
  }
  void* fresh = lockbox_malloc(size_for(static_cast<unsigned>(index)));
  if (fresh == nullptr) {
    g_failed_allocations.fetch_add(1);
  } else {
    std::memset(fresh, 0x5a, size_for(static_cast<unsigned>(index)));
    int slot = g_next_kept.fetch_add(1);
    if (slot < kHandlerBlocks) {
      g_kept[slot] = fresh;
    } else {
      lockbox_free(fresh);
    }
  }
  // An aligned request keeps its alignment in a handler too.
  void* aligned = lockbox_aligned_alloc(256, 100);
  // Through a volatile: lockbox.h's alloc_align lets the compiler assume the alignment.
  void* volatile seen = aligned;
  if (aligned == nullptr || reinterpret_cast<std::uintptr_t>(seen) % 256 != 0) {
    g_misaligned.fetch_add(1);
  }
  lockbox_free(aligned);
  g_signals_handled.fetch_add(1);
  errno = saved_errno;
}

std::atomic<bool> g_stop{false};

void* busy_worker(void*) {
  constexpr unsigned kRing = 64;
  void* ring[kRing] = {};
  for (unsigned i = 0; !g_stop.load(std::memory_order_relaxed); ++i) {
    unsigned slot = i % kRing;
    if (ring[slot] != nullptr) lockbox_free(ring[slot]);
    if (i % 7 == 0) {
      ring[slot] = lockbox_realloc(lockbox_malloc(24), size_for(i));
    } else {
      ring[slot] = lockbox_malloc(size_for(i));
    }
    if (ring[slot] != nullptr) static_cast<unsigned char*>(ring[slot])[0] = 1;
  }
  for (void* block : ring) lockbox_free(block);
  return nullptr;
}

int storm() {
  for (int i = 0; i < kHandlerBlocks; ++i) {
    g_given[i] = lockbox_malloc(size_for(static_cast<unsigned>(i)));
    CHECK(g_given[i] != nullptr);
  }
  struct sigaction action {};
  action.sa_handler = storm_handler;
  sigemptyset(&action.sa_mask);
  CHECK(sigaction(SIGUSR1, &action, nullptr) == 0);
  pthread_t worker;
  CHECK(pthread_create(&worker, nullptr, busy_worker, nullptr) == 0);
  constexpr int kSignals = 4000;
  for (int i = 0; i < kSignals; ++i) {
    pthread_kill(worker, SIGUSR1);
    // Let the handler run before the next one (a pending signal is not queued twice).
    while (g_signals_handled.load() <= i) sched_yield();
  }
  g_stop.store(true);
  pthread_join(worker, nullptr);
  std::printf("%d signals handled, %d handler allocations failed, %d misaligned\n",
              g_signals_handled.load(), g_failed_allocations.load(), g_misaligned.load());
  CHECK(g_signals_handled.load() == kSignals);
  CHECK(g_failed_allocations.load() == 0);
  CHECK_MESSAGE(g_misaligned.load() == 0, "%d aligned allocations in the handler were not",
                g_misaligned.load());
  int kept = g_next_kept.load() < kHandlerBlocks ? g_next_kept.load() : kHandlerBlocks;
  int intact = 0;
  for (int i = 0; i < kept; ++i) {
    auto* bytes = static_cast<unsigned char*>(g_kept[i]);
    if (lockbox_owns(bytes) == 1 && bytes[0] == 0x5a) ++intact;
    lockbox_free(bytes);
  }
  CHECK(intact == kept);
  for (int i = 0; i < kHandlerBlocks; ++i) lockbox_free(g_given[i]);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(stats.live_allocations == 0, "%zu allocations still live",
                stats.live_allocations);
  CHECK_MESSAGE(stats.in_use_bytes == 0, "%zu bytes still in use", stats.in_use_bytes);
  return lockbox_test::finish();
}

// Waits for `child`; true if it exited 0, else says how it ended.
bool exited_cleanly(pid_t child, int round) {
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  std::fprintf(stderr, "child %d: %s %d\n", round, WIFEXITED(status) ? "exit" : "signal",
               WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
  return false;
}

// The secrets the SIGTERM handler wipes.
constexpr int kSecrets = 300;
void* g_secrets[kSecrets];

void wipe_and_exit(int) {
  for (void*& secret : g_secrets) {
    lockbox_free(secret);
    secret = nullptr;
  }
  _exit(0);
}

[[noreturn]] void sigterm_child() {
  alarm(20);  // a handler that deadlocks shows as SIGALRM, not as a hung test
  for (int i = 0; i < kSecrets; ++i) {
    g_secrets[i] = i % 10 == 9 ? lockbox_guarded_alloc(64) : lockbox_malloc(size_for(i));
    if (g_secrets[i] == nullptr) _exit(2);
    std::memset(g_secrets[i], 0x77, 16);
  }
  struct sigaction action {};
  action.sa_handler = wipe_and_exit;
  sigemptyset(&action.sa_mask);
  sigaction(SIGTERM, &action, nullptr);
  // Tell the parent we are ready, then stay inside lockbox as much as possible.
  kill(getppid(), SIGUSR2);
  void* ring[32] = {};
  for (unsigned i = 0;; ++i) {
    unsigned slot = i % 32;
    lockbox_free(ring[slot]);
    ring[slot] = lockbox_malloc(size_for(i));
  }
}

int sigterm() {
  sigset_t ready;
  sigemptyset(&ready);
  sigaddset(&ready, SIGUSR2);
  pthread_sigmask(SIG_BLOCK, &ready, nullptr);
  constexpr int kChildren = 60;
  int clean = 0;
  for (int round = 0; round < kChildren; ++round) {
    pid_t child = fork();
    if (child == 0) sigterm_child();
    int signal_number = 0;
    sigwait(&ready, &signal_number);
    struct timespec pause {0, 1000000L * (round % 7)};
    nanosleep(&pause, nullptr);
    kill(child, SIGTERM);
    clean += exited_cleanly(child, round);
  }
  std::printf("%d of %d children wiped their secrets and exited cleanly\n", clean, kChildren);
  CHECK(clean == kChildren);
  return lockbox_test::finish();
}

// Start-up: in fresh processes, threads make lockbox's first calls while signals whose handler
// calls lockbox rain on them (the handler may land on the thread that is starting the heap).
void startup_handler(int) {
  int saved_errno = errno;
  lockbox_free(lockbox_malloc(40));
  errno = saved_errno;
}

[[noreturn]] void startup_child() {
  alarm(20);  // a start-up that waits for itself shows as SIGALRM
  struct sigaction action {};
  action.sa_handler = startup_handler;
  sigemptyset(&action.sa_mask);
  sigaction(SIGUSR1, &action, nullptr);
  constexpr int kThreads = 8;
  pthread_t threads[kThreads];
  for (pthread_t& thread : threads) {
    pthread_create(&thread, nullptr, [](void*) -> void* {
      for (int i = 0; i < 200; ++i) lockbox_free(lockbox_malloc(16 + static_cast<std::size_t>(i)));
      return nullptr;
    }, nullptr);
  }
  for (int round = 0; round < 50; ++round) {
    for (pthread_t thread : threads) pthread_kill(thread, SIGUSR1);
  }
  for (pthread_t thread : threads) pthread_join(thread, nullptr);
  _exit(0);
}

int startup() {
  constexpr int kChildren = 30;
  int clean = 0;
  for (int round = 0; round < kChildren; ++round) {
    pid_t child = fork();
    if (child == 0) startup_child();
    clean += exited_cleanly(child, round);
  }
  std::printf("%d of %d processes started lockbox under signals and exited cleanly\n", clean,
              kChildren);
  CHECK(clean == kChildren);
  return lockbox_test::finish();
}

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  if (std::strcmp(mode, "storm") == 0) return storm();
  if (std::strcmp(mode, "sigterm") == 0) return sigterm();
  if (std::strcmp(mode, "startup") == 0) return startup();
  std::fprintf(stderr, "usage: signal_reentry storm|sigterm|startup\n");
  return 2;
}
