// SPDX-License-Identifier: ISC
// A forked child never sees the parent's secrets (they are wiped), frees the pointers it
// inherited without crashing, allocates new locked secrets, and its stats start from what it
// really holds (mlock is not inherited).
#include <dirent.h>
#include <lockbox/lockbox.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <unistd.h>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

enum ChildFailure {
  kSawSmallSecret = 1 << 0,
  kSawLargeSecret = 1 << 1,
  kInheritedStats = 1 << 2,
  kCannotAllocate = 1 << 3,
  kNewSecretUnlocked = 1 << 4,
  kStatsDisagreeWithKernel = 1 << 5,
  kSecretmemDescriptorOpen = 1 << 6,
  kSecretmemHoleNotFilled = 1 << 7,  // the exit status keeps 8 bits: no more
};

// Does this process hold a descriptor of a memfd_secret file (through which it could map the
// parent's secrets)?
bool holds_secretmem_descriptor() {
  DIR* fds = opendir("/proc/self/fd");
  bool found = false;
  while (dirent* entry = fds == nullptr ? nullptr : readdir(fds)) {
    char path[300], target[256];
    std::snprintf(path, sizeof path, "/proc/self/fd/%s", entry->d_name);
    ssize_t length = readlink(path, target, sizeof target - 1);
    if (length <= 0) continue;
    target[length] = '\0';
    found |= std::strstr(target, "secretmem") != nullptr;
  }
  if (fds != nullptr) closedir(fds);
  return found;
}

bool all_zero(const unsigned char* bytes, std::size_t length) {
  for (std::size_t i = 0; i < length; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

int child(unsigned char* small_secret, unsigned char* large_secret, std::size_t large_size,
          void* empty, bool secretmem) {
  int failures = 0;
  // Anonymous arenas are wiped in the child (MADV_WIPEONFORK). memfd_secret arenas are not in
  // the child at all (MADV_DONTFORK); lockbox fills the hole with read-only zero pages, so that
  // the kernel cannot place the child's own mappings inside an arena the registry still names.
  if (!all_zero(small_secret, 32)) failures |= kSawSmallSecret;
  if (secretmem && lockbox_test::page_protection(small_secret) != "r--") {
    failures |= kSecretmemHoleNotFilled;
  }
  if (!all_zero(large_secret, large_size)) failures |= kSawLargeSecret;
  if (holds_secretmem_descriptor()) failures |= kSecretmemDescriptorOpen;
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  if (stats.locked_bytes != 0 || stats.live_allocations != 0) failures |= kInheritedStats;
  lockbox_free(small_secret);
  lockbox_free(large_secret);
  // A zero-byte object the parent holds (the check above counted it too): freed here, it
  // counts neither before nor after; the child's own counts as one.
  void* own_empty = lockbox_malloc(0);
  lockbox_get_stats(&stats, sizeof stats);
  if (own_empty == nullptr || stats.live_allocations != 1) failures |= kInheritedStats;
  lockbox_free(empty);
  lockbox_free(own_empty);
  lockbox_get_stats(&stats, sizeof stats);
  if (stats.live_allocations != 0) failures |= kInheritedStats;
  auto* fresh = static_cast<unsigned char*>(lockbox_malloc(64));
  if (fresh == nullptr) return failures | kCannotAllocate;
  std::memset(fresh, 0x77, 64);
  if (!lockbox_test::kernel_says_locked(fresh, 64)) failures |= kNewSecretUnlocked;
  lockbox_get_stats(&stats, sizeof stats);
  if (lockbox_test::vmlck_bytes() != static_cast<long long>(stats.locked_bytes) ||
      stats.live_allocations != 1) {
    failures |= kStatsDisagreeWithKernel;
  }
  lockbox_free(fresh);
  return failures;
}

}  // namespace

int main() {
  constexpr std::size_t kLargeSize = 100000;
  auto* small_secret = static_cast<unsigned char*>(lockbox_malloc(32));
  auto* large_secret = static_cast<unsigned char*>(lockbox_malloc(kLargeSize));
  void* empty = lockbox_malloc(0);
  CHECK(small_secret != nullptr && large_secret != nullptr && empty != nullptr);
  std::memset(small_secret, 0xA5, 32);
  std::memset(large_secret, 0x5A, kLargeSize);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  bool secretmem = stats.secretmem_bytes > 0;        // LOCKBOX_BACKEND=secretmem or auto
  CHECK(holds_secretmem_descriptor() == secretmem);  // the check below can tell
  std::printf("small secrets in %s memory\n", secretmem ? "memfd_secret" : "anonymous");

  std::fflush(stdout);
  pid_t pid = fork();
  if (pid == 0) std::exit(child(small_secret, large_secret, kLargeSize, empty, secretmem));
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                "child status 0x%x (exit code = bitmask of ChildFailure)", status);

  // The parent's secrets are untouched by the child's frees.
  CHECK(small_secret[0] == 0xA5 && small_secret[31] == 0xA5);
  CHECK(large_secret[0] == 0x5A && large_secret[kLargeSize - 1] == 0x5A);
  CHECK(lockbox_test::kernel_says_locked(small_secret, 32));
  lockbox_free(small_secret);
  lockbox_free(large_secret);
  CHECK(lockbox_owns(empty));  // the child's free was its own
  lockbox_free(empty);
  return lockbox_test::finish();
}
