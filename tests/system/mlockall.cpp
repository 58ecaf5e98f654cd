// SPDX-License-Identifier: ISC
// lockbox inside an application that called mlockall(): lockbox never undoes the application's
// lock, and its reservations cope with every new mapping being locked (and charged) at mmap
// time under MCL_FUTURE.
// Usage: mlockall current-and-future   (as root with CAP_IPC_LOCK, as real-time programs run)
//        mlockall future-unprivileged  (as an ordinary user with a tight RLIMIT_MEMLOCK)
#include <lockbox/lockbox.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/freed.hpp"
#include "support/process.hpp"

namespace {

// Allocates `count` blocks of 4000 bytes, frees them all, and checks the kernel still has every
// page locked (the application's lock, which a munlock of lockbox's would have undone).
void allocations_keep_the_application_lock(int count) {
  std::vector<unsigned char*> blocks;
  for (int i = 0; i < count; ++i) {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(4000));
    CHECK_MESSAGE(block != nullptr, "allocation %d: %s", i, lockbox_last_error());
    if (block == nullptr) break;
    std::memset(block, i, 4000);
    blocks.push_back(block);
  }
  for (unsigned char* block : blocks) lockbox_free(block);
  bool all_locked = true;
  for (unsigned char* block : blocks) all_locked &= lockbox_test::kernel_says_locked(block, 4000);
  CHECK(all_locked);
}

void caller_locks_keep_the_application_lock() {
  auto* buffer = static_cast<unsigned char*>(
      mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK(lockbox_test::kernel_says_locked(buffer, 4096));  // MCL_FUTURE at work
  CHECK(lockbox_lock(buffer, 100) == 0);
  CHECK(lockbox_unlock(buffer, 100) == 0);
  CHECK(lockbox_test::kernel_says_locked(buffer, 4096));
  munmap(buffer, 4096);
}

// A forked child of an mlockall() process holds no lock of its parent's (locks are not
// inherited, MCL_FUTURE included): lockbox must lock and unlock its own pages again, so that its
// budget matches the kernel's VmLck, and a page emptied there is unlocked.
int child_of_locked_parent() {
  std::vector<unsigned char*> blocks;
  for (int i = 0; i < 300; ++i) {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(4000));
    if (block == nullptr) return 1;
    std::memset(block, i, 4000);
    blocks.push_back(block);
  }
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  if (lockbox_test::vmlck_bytes() != static_cast<long long>(stats.locked_bytes)) return 2;
  if (!lockbox_test::kernel_says_locked(blocks[0], 4000)) return 3;
  for (unsigned char* block : blocks) lockbox_free(block);
  lockbox_get_stats(&stats, sizeof stats);
  if (lockbox_test::vmlck_bytes() != static_cast<long long>(stats.locked_bytes)) return 4;
  return 0;
}

int current_and_future() {
  if (geteuid() != 0) {
    std::printf("SKIP: mlockall(MCL_CURRENT) of a whole test process needs CAP_IPC_LOCK\n");
    return 77;
  }
  // lockbox starts (registry, first arena, pages locked by lockbox) before the application
  // locks everything: its first arena's pages are then locked twice over.
  void* early = lockbox_malloc(100);
  CHECK(mlockall(MCL_CURRENT | MCL_FUTURE) == 0);
  const void* early_address = lockbox_test::address_kept(early);
  lockbox_free(early);
  CHECK(lockbox_test::kernel_says_locked(early_address, 100));
  caller_locks_keep_the_application_lock();
  allocations_keep_the_application_lock(300);  // more than one 1 MiB arena holds
  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) _exit(child_of_locked_parent());
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "the child of the mlockall parent: status 0x%x (exit 2 or 4: its budget and VmLck "
                "disagree)",
                status);
  return lockbox_test::finish();
}

int future_unprivileged() {
  std::string why = lockbox_test::become_unprivileged(8 << 20);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  lockbox_stats stats;
  // lockbox is up (its registry is mapped), with no arena yet
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.reserved_bytes == 0);
  CHECK(mlockall(MCL_FUTURE) == 0);
  // Room for one arena (1 MiB, charged whole at mmap time) and its metadata (530 KiB, most of
  // it the 64-bit slot words), not for a 2 MiB over-reservation: lockbox must reserve exactly
  // what it needs.
  rlim_t tight = static_cast<rlim_t>(lockbox_test::vmlck_bytes()) + (1792 << 10);
  struct rlimit limit {
    tight, tight
  };
  CHECK(setrlimit(RLIMIT_MEMLOCK, &limit) == 0);
  caller_locks_keep_the_application_lock();
  allocations_keep_the_application_lock(100);  // fits in one arena
  long long vmlck = lockbox_test::vmlck_bytes();
  CHECK_MESSAGE(vmlck >= 0 && static_cast<rlim_t>(vmlck) <= tight, "VmLck %lld", vmlck);
  return lockbox_test::finish();
}

}  // namespace

int main(int argc, char** argv) {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  // The sanitizers turn mlockall() into a no-op (their shadow memory is terabytes).
  std::printf("SKIP: mlockall() is not available under a sanitizer\n");
  return 77;
#endif
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "current-and-future") return current_and_future();
  if (mode == "future-unprivileged") return future_unprivileged();
  std::fprintf(stderr, "usage: mlockall current-and-future | future-unprivileged\n");
  return 2;
}
