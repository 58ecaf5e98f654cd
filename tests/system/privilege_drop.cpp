// SPDX-License-Identifier: ISC
// A daemon that starts as root, uses lockbox, then drops to an ordinary user (setrlimit, then
// setuid: CAP_IPC_LOCK goes, RLIMIT_MEMLOCK binds). lockbox read "unlimited" at start; when the
// kernel refuses a lock the budget allowed, it must read the limit and the capability again and
// from then on behave as if it had started as that user: STRICT fails with the real limit in
// the message, the stats show it, the budget agrees with VmLck, reserve pages are given back,
// and freeing makes room again. Usage: privilege_drop (as root; skipped otherwise)
#include <lockbox/lockbox.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kLimit = 256 * 1024;

std::vector<unsigned char*> fill(std::size_t size, std::size_t at_most) {
  std::vector<unsigned char*> blocks;
  while (blocks.size() < at_most) {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(size));
    if (block == nullptr) break;
    std::memset(block, 0x42, size);
    blocks.push_back(block);
  }
  return blocks;
}

}  // namespace

int main() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::printf("SKIP: the sanitizers turn mlock() into a no-op\n");
  return 77;
#endif
  if (geteuid() != 0) {
    std::printf("SKIP: this test starts as root and drops to uid 65534\n");
    return 77;
  }
  // As root: half a MiB of keys, locked with the limit lifted by CAP_IPC_LOCK; then half of
  // them freed, so that empty locked pages wait in lockbox's reserve.
  std::vector<unsigned char*> root_keys = fill(32, 12000);
  CHECK(root_keys.size() == 12000);
  for (std::size_t i = 0; i < root_keys.size(); i += 2) lockbox_free(root_keys[i]);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.memlock_limit == SIZE_MAX);
  std::printf("as root: %zu bytes locked\n", stats.locked_bytes);

  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();

  // lockbox holds more than the user's limit: nothing more can be locked until it holds less.
  errno = 0;
  std::vector<unsigned char*> more = fill(3000, 1000);
  CHECK(errno == ENOMEM);
  std::string reason = lockbox_last_error();
  CHECK_MESSAGE(reason.find("RLIMIT_MEMLOCK is 262144 bytes") != std::string::npos, "'%s'",
                reason.c_str());
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(stats.memlock_limit == kLimit, "memlock_limit %zu", stats.memlock_limit);
  CHECK_MESSAGE(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes),
                "VmLck %lld, locked_bytes %zu", lockbox_test::vmlck_bytes(), stats.locked_bytes);

  // Once the root-era keys are gone, lockbox works within the user's limit, as if it had always
  // been that user: the limit holds, and the budget still agrees with the kernel.
  for (std::size_t i = 1; i < root_keys.size(); i += 2) lockbox_free(root_keys[i]);
  for (unsigned char* block : more) lockbox_free(block);
  std::vector<unsigned char*> keys = fill(32, 100000);
  CHECK_MESSAGE(keys.size() > 1000, "only %zu keys under the user's limit: %s", keys.size(),
                lockbox_last_error());
  lockbox_get_stats(&stats, sizeof stats);
  long long vmlck = lockbox_test::vmlck_bytes();
  // (A memfd_secret arena made as root is charged whole and never unmapped: under the
  // secretmem setup it stays above the user's limit, and the keys go into it.)
  CHECK_MESSAGE(vmlck >= 0 && (static_cast<std::size_t>(vmlck) <= kLimit ||
                               stats.secretmem_bytes == stats.locked_bytes),
                "VmLck %lld", vmlck);
  CHECK_MESSAGE(vmlck == static_cast<long long>(stats.locked_bytes), "VmLck %lld, locked %zu",
                vmlck, stats.locked_bytes);
  for (unsigned char* key : keys) lockbox_free(key);
  return lockbox_test::finish();
}
