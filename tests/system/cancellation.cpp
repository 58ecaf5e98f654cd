// SPDX-License-Identifier: ISC
// lockbox acts on no thread-cancellation request: a thread that another has asked to cancel
// (deferred cancellation, the default) keeps running through every lockbox call and is cancelled
// at its own next cancellation point. Before, a request acted inside lockbox wherever it reached
// a C library call that is a cancellation point (open and read of /proc, getrandom through
// libsodium), and the thread died holding what it held: the next thread to need it waited for
// ever. Each case runs in a child of its own, with an alarm, so that a hang is a failure:
//   startup:      the thread's call is the process's first (the heap starts, with randomness);
//   lock_refused: lockbox_lock of a PROT_NONE page (the refusal is explained, by a probe of the
//                 page or from smaps);
//   seal:         the process's first sealed box (the key is drawn under the key's lock);
//   fork:         the thread forks; the child's handler draws new keys before the child runs.
// After each, another thread makes the same kind of call, which must not wait on the first.
#include <lockbox/lockbox.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "support/check.hpp"

namespace {

constexpr int kHangSeconds = 20;
constexpr int kChildExit = 7;

// Exit codes of a case's child, so the parent can say what went wrong.
enum Outcome : int {
  kPassed = 0,
  kCancelledInsideLockbox = 10,  // the call never returned
  kCallFailed = 11,
  kNotCancelledAfter = 12,  // the request was lost instead of kept for the thread's own point
  kForkChildWrong = 13,
};

struct Case {
  int (*call)();   // the call made with the request pending: 0 when it did what it should
  int (*again)();  // the same kind of call from a thread with no request
};

int first_allocation() {
  void* key = lockbox_malloc(32);
  if (key == nullptr) return -1;
  std::memset(key, 1, 32);
  lockbox_free(key);
  return 0;
}

int lock_prot_none_page() {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return -1;
  int result = lockbox_lock(page, 4096);
  int err = errno;
  munmap(page, 4096);
  return result == -1 && err == EACCES ? 0 : -1;
}

int lock_stack_buffer() {
  alignas(4096) static char buffer[8192];
  if (lockbox_lock(buffer, sizeof buffer) != 0) return -1;
  return lockbox_unlock(buffer, sizeof buffer);
}

int seal_a_secret() {
  char secret[32] = "correct horse battery staple";
  lockbox_sealed* box = lockbox_seal(secret, sizeof secret);
  if (box == nullptr) return -1;
  const void* view = lockbox_sealed_open(box);
  int result = view != nullptr && std::memcmp(view, secret, sizeof secret) == 0 ? 0 : -1;
  if (view != nullptr) lockbox_sealed_close(box, view);
  lockbox_sealed_free(box);
  return result;
}

int fork_and_allocate() {
  pid_t child = fork();
  if (child < 0) return -1;
  if (child == 0) _exit(first_allocation() == 0 ? kChildExit : 1);
  int status = 0;
  // waitpid is a cancellation point of the test's own: the request must still be pending.
  int old_state = 0;
  pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old_state);
  pid_t waited = waitpid(child, &status, 0);
  pthread_setcancelstate(old_state, nullptr);
  return waited == child && WIFEXITED(status) && WEXITSTATUS(status) == kChildExit ? 0 : -1;
}

struct Run {
  int (*call)();
  bool returned = false;
  int result = -1;
};

void* call_with_cancel_pending(void* argument) {
  auto* run = static_cast<Run*>(argument);
  pthread_cancel(pthread_self());  // pending until this thread reaches a cancellation point
  run->result = run->call();
  run->returned = true;
  pthread_testcancel();
  return nullptr;
}

void* call_plainly(void* argument) {
  auto* run = static_cast<Run*>(argument);
  run->result = run->call();
  run->returned = true;
  return nullptr;
}

// In the child: the case's call on a thread with the request pending, then again on another.
int run_case(const Case& c) {
  alarm(kHangSeconds);
  Run pending{c.call};
  pthread_t thread;
  if (pthread_create(&thread, nullptr, call_with_cancel_pending, &pending) != 0) return kCallFailed;
  void* retval = nullptr;
  pthread_join(thread, &retval);
  if (!pending.returned) return kCancelledInsideLockbox;
  if (pending.result != 0) return c.call == fork_and_allocate ? kForkChildWrong : kCallFailed;
  if (retval != PTHREAD_CANCELED) return kNotCancelledAfter;
  Run plain{c.again};
  if (pthread_create(&thread, nullptr, call_plainly, &plain) != 0) return kCallFailed;
  pthread_join(thread, nullptr);  // a lock the first thread died holding: the alarm ends it
  return plain.returned && plain.result == 0 ? kPassed : kCallFailed;
}

void check_case(const char* name, const Case& c) {
  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) _exit(run_case(c));
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
    CHECK_MESSAGE(false, "%s: hung for %d s (a lock held by a thread cancelled inside lockbox)",
                  name, kHangSeconds);
    return;
  }
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  CHECK_MESSAGE(code == kPassed, "%s: %s (status 0x%x)", name,
                code == kCancelledInsideLockbox ? "the thread was cancelled inside lockbox"
                : code == kNotCancelledAfter    ? "the request was lost, not kept"
                : code == kForkChildWrong       ? "the forked child did not run its code"
                                                : "the call failed",
                status);
}

}  // namespace

int main() {
  // lockbox must not start in this process before the children: the startup case needs a
  // process whose first call is the cancelled thread's.
  check_case("startup", {first_allocation, first_allocation});
  check_case("lock_refused", {lock_prot_none_page, lock_stack_buffer});
  check_case("seal", {seal_a_secret, seal_a_secret});
  check_case("fork", {fork_and_allocate, first_allocation});
  return lockbox_test::finish();
}
