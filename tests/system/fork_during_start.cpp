// SPDX-License-Identifier: ISC
// fork() at the moment another thread makes the process's first lockbox call. The child keeps
// only the forking thread: before, one that inherited the start half done (the fork handlers
// were registered only at its end) waited for it for ever in its own first call. Each round is
// a fresh process, whose two threads meet at a barrier, one to allocate and one to fork; the
// child allocates, writes and frees, and must exit within a few seconds. The first hang ends
// the test.
#include <lockbox/lockbox.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "support/check.hpp"

namespace {

constexpr int kRounds = 200;
constexpr int kChildSeconds = 5;

pthread_barrier_t g_barrier;

int use_lockbox() {
  void* key = lockbox_malloc(32);
  if (key == nullptr) return 1;
  std::memset(key, 7, 32);
  lockbox_free(key);
  return 0;
}

void* first_call(void*) {
  pthread_barrier_wait(&g_barrier);
  return reinterpret_cast<void*>(static_cast<long>(use_lockbox()));
}

// One round, in a process that has not used lockbox: 0 if the fork's child used lockbox and
// exited, 1 if it hung, 2 if anything else failed.
int one_round() {
  pthread_barrier_init(&g_barrier, nullptr, 2);
  pthread_t thread;
  if (pthread_create(&thread, nullptr, first_call, nullptr) != 0) return 2;
  pthread_barrier_wait(&g_barrier);
  pid_t child = fork();
  if (child == 0) {
    alarm(kChildSeconds);
    _exit(use_lockbox() == 0 ? 0 : 3);
  }
  void* result = nullptr;
  pthread_join(thread, &result);
  int status = 0;
  if (child < 0 || waitpid(child, &status, 0) != child || result != nullptr) return 2;
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) return 1;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 2;
}

}  // namespace

int main() {
  int rounds = 0, hung = 0, failed = 0;
  while (rounds < kRounds && hung == 0) {
    ++rounds;
    std::fflush(nullptr);
    pid_t runner = fork();  // a fresh process: lockbox not started in it
    if (runner == 0) _exit(one_round());
    int status = 0;
    waitpid(runner, &status, 0);
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 2;
    hung += code == 1;
    failed += code == 2;
  }
  CHECK_MESSAGE(hung == 0, "round %d of %d: the child hung in its first lockbox call", rounds,
                kRounds);
  CHECK_MESSAGE(failed == 0, "%d of %d rounds failed", failed, rounds);
  return lockbox_test::finish();
}
