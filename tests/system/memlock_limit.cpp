// SPDX-License-Identifier: ISC
// RLIMIT_MEMLOCK as an ordinary user (CAP_IPC_LOCK gone, limit 64 KiB): STRICT fails cleanly
// with the reason, the kernel's VmLck never passes the limit, freeing makes room again, and
// BEST_EFFORT keeps going unlocked after one warning.
// Usage: memlock_limit strict | env-best-effort | strict-after-best-effort
#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstring>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kLimit = 64 * 1024;

void check_kernel_agrees() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  long long vmlck = lockbox_test::vmlck_bytes();
  CHECK_MESSAGE(vmlck >= 0 && static_cast<std::size_t>(vmlck) <= kLimit, "VmLck %lld", vmlck);
  CHECK_MESSAGE(vmlck == static_cast<long long>(stats.locked_bytes), "VmLck %lld, locked_bytes %zu",
                vmlck, stats.locked_bytes);
}

void strict_then_best_effort() {
  CHECK(lockbox_get_policy() == LOCKBOX_POLICY_STRICT);
  std::vector<unsigned char*> keys;
  unsigned char* key = nullptr;
  errno = 0;
  while (keys.size() < 100000 && (key = static_cast<unsigned char*>(lockbox_malloc(32)))) {
    std::memset(key, 0x42, 32);
    keys.push_back(key);
  }
  CHECK(key == nullptr);
  CHECK(errno == ENOMEM);
  std::string reason = lockbox_last_error();
  CHECK_MESSAGE(reason.find("RLIMIT_MEMLOCK is 65536 bytes") != std::string::npos, "'%s'",
                reason.c_str());
  CHECK_MESSAGE(reason.find("LOCKBOX_POLICY=best-effort") != std::string::npos, "'%s'",
                reason.c_str());
  // 64 KiB of 48-byte slots, minus what the process itself had locked: well over 1,000 keys.
  CHECK_MESSAGE(keys.size() > 1000, "only %zu keys", keys.size());
  check_kernel_agrees();

  errno = 0;
  CHECK(lockbox_malloc(100000) == nullptr);
  CHECK(errno == ENOMEM);

  // Freeing one key makes room for one more.
  lockbox_free(keys.back());
  keys.back() = static_cast<unsigned char*>(lockbox_malloc(32));
  CHECK(keys.back() != nullptr);

  // Freeing everything makes room for another size class: empty locked pages are given up.
  for (unsigned char* k : keys) lockbox_free(k);
  keys.clear();
  void* other_class = lockbox_malloc(3000);
  CHECK_MESSAGE(other_class != nullptr, "%s", lockbox_last_error());
  CHECK(lockbox_test::kernel_says_locked(other_class, 3000));
  lockbox_free(other_class);
  check_kernel_agrees();

  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.unlocked_bytes == 0);

  // BEST_EFFORT: 160 KiB of secrets under a 64 KiB limit, all usable, one warning.
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) == 0);
  lockbox_test::start_capturing_stderr();
  for (int i = 0; i < 40; ++i) {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(4000));
    if (block == nullptr) break;
    std::memset(block, i, 4000);
    keys.push_back(block);
  }
  std::string warnings = lockbox_test::stop_capturing_stderr();
  CHECK(keys.size() == 40);
  for (std::size_t i = 0; i < keys.size(); ++i) CHECK(keys[i][3999] == static_cast<int>(i));
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.unlocked_bytes > 0);
  CHECK(stats.locked_bytes <= kLimit);
  check_kernel_agrees();
  CHECK_MESSAGE(warnings.rfind("lockbox: warning: cannot lock more memory", 0) == 0 &&
                    warnings.find('\n') == warnings.size() - 1,
                "stderr: '%s'", warnings.c_str());
  std::size_t unlocked_in_use = stats.unlocked_bytes;
  std::size_t committed_in_use = stats.unlocked_bytes + stats.locked_bytes;
  for (unsigned char* k : keys) lockbox_free(k);
  keys.clear();
  lockbox_get_stats(&stats, sizeof stats);
  // The unlocked pages stay committed, empty and zero, for the next run (bounded by the
  // reserve's limit), so that churn past the budget does not map them again each time.
  CHECK(stats.quarantined_bytes >= 4 * 4096);
  CHECK_MESSAGE(stats.unlocked_bytes <= unlocked_in_use, "unlocked %zu of %zu",
                stats.unlocked_bytes, unlocked_in_use);
  CHECK(stats.live_allocations == 0);
  // The same secrets again take those pages: no more is committed than the first time, but for
  // the pages of the slots that wait in the quarantine meanwhile (8 at most).
  for (int i = 0; i < 40; ++i) {
    auto* block = static_cast<unsigned char*>(lockbox_malloc(4000));
    CHECK(block != nullptr);
    if (block != nullptr) keys.push_back(block);
  }
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(stats.unlocked_bytes + stats.locked_bytes <= committed_in_use + 8 * 4096,
                "committed %zu, the first time %zu", stats.unlocked_bytes + stats.locked_bytes,
                committed_in_use);
  check_kernel_agrees();
  for (unsigned char* k : keys) lockbox_free(k);
  // Back under STRICT, what is handed out is locked again.
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_STRICT) == 0);
  void* strict = lockbox_malloc(2000);
  CHECK_MESSAGE(strict != nullptr, "%s", lockbox_last_error());
  if (strict != nullptr) CHECK(lockbox_test::kernel_says_locked(strict, 2000));
  check_kernel_agrees();
  lockbox_free(strict);
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) == 0);
}

void best_effort_from_environment() {
  CHECK(lockbox_get_policy() == LOCKBOX_POLICY_BEST_EFFORT);
  std::vector<void*> blocks;
  lockbox_test::start_capturing_stderr();
  for (int i = 0; i < 100; ++i) blocks.push_back(lockbox_malloc(2000));
  lockbox_test::stop_capturing_stderr();
  for (void* block : blocks) CHECK(block != nullptr);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.unlocked_bytes > 0);
  check_kernel_agrees();

  for (void* block : blocks) lockbox_free(block);

  // After the switch to STRICT, a caller lock on memory BEST_EFFORT left unlocked means the
  // kernel's lock: lockbox locks it (once there is room), or fails with ENOMEM. A thread of
  // its own allocates until one block comes out unlocked, frees the rest and exits (its cache
  // goes back to the shards), so that room can be made.
  void* unlocked_block = nullptr;
  std::thread([&] {
    std::vector<void*> mine;
    lockbox_test::start_capturing_stderr();
    while (mine.size() < 1000) {
      void* block = lockbox_malloc(2000);
      if (block == nullptr) break;
      if (lockbox_test::kernel_says_unlocked(block, 2000)) {
        unlocked_block = block;
        break;
      }
      mine.push_back(block);
    }
    lockbox_test::stop_capturing_stderr();
    for (void* block : mine) lockbox_free(block);
  }).join();
  CHECK(unlocked_block != nullptr);
  if (unlocked_block == nullptr) return;
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_STRICT) == 0);
  std::vector<void*> filler;  // spend the budget again: the lock must fail cleanly
  while (void* block = lockbox_malloc(32)) filler.push_back(block);
  errno = 0;
  CHECK(lockbox_lock(unlocked_block, 2000) == -1);
  CHECK(errno == ENOMEM);
  CHECK(lockbox_test::kernel_says_unlocked(unlocked_block, 2000));
  std::thread([&] {
    for (void* block : filler) lockbox_free(block);
  }).join();
  CHECK_MESSAGE(lockbox_lock(unlocked_block, 2000) == 0, "%s", lockbox_last_error());
  CHECK(lockbox_test::kernel_says_locked(unlocked_block, 2000));
  check_kernel_agrees();
  CHECK(lockbox_unlock(unlocked_block, 2000) == 0);
  lockbox_free(unlocked_block);
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) == 0);

  // A big unlocked block with one page written: its free zeroes what may hold data, not the
  // whole block (which would fault every page in: the process's peak would grow by 256 MiB).
  constexpr std::size_t kBig = std::size_t{256} << 20;
  auto* big = static_cast<unsigned char*>(lockbox_malloc(kBig));
  CHECK(big != nullptr);
  if (big == nullptr) return;
  std::memset(big + kBig / 2, 0x42, 4096);
  long long peak_before = lockbox_test::status_bytes("VmHWM");
  lockbox_free(big);
  long long peak_after = lockbox_test::status_bytes("VmHWM");
  long long allowed = 32 << 20;
#if defined(__SANITIZE_ADDRESS__)
  allowed += kBig / 8;  // AddressSanitizer's shadow of the block, written when it is unpoisoned
#endif
  CHECK_MESSAGE(peak_after - peak_before < allowed, "the peak grew by %lld bytes in the free",
                peak_after - peak_before);
}

// Are the first and the last byte of [address, address + length) (at most two pages) inside
// `ranges` (from locked_ranges(); two adjacent locked pages may be two of them)?
bool in_ranges(const std::vector<std::pair<std::uintptr_t, std::uintptr_t>>& ranges,
               const void* address, std::size_t length) {
  auto covered = [&](std::uintptr_t byte) {
    for (const auto& [from, to] : ranges) {
      if (byte >= from && byte < to) return true;
    }
    return false;
  };
  auto start = reinterpret_cast<std::uintptr_t>(address);
  return covered(start) && covered(start + length - 1);
}

// BEST_EFFORT past the budget leaves keys on unlocked pages: some freed (into the allocating
// thread's cache and their runs), some live (their pages still in use). After the switch to
// STRICT, every key handed out is locked, whichever of those it comes from, or the allocation
// fails. The keys belong to a thread of their own, which waits outside lockbox while another
// thread switches the policy: the switch must reach every thread's cache, not only its own.
void strict_after_best_effort() {
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) == 0);
  std::binary_semaphore keys_freed{0}, policy_switched{0};
  std::thread owner([&] {
    std::vector<void*> keys;
    lockbox_test::start_capturing_stderr();
    for (int i = 0; i < 3000; ++i) {
      void* key = lockbox_malloc(32);
      CHECK(key != nullptr);
      if (key == nullptr) break;
      std::memset(key, 0x42, 32);
      keys.push_back(key);
    }
    lockbox_test::stop_capturing_stderr();
    auto locked = lockbox_test::locked_ranges();
    std::vector<void*> live_unlocked;
    std::size_t freed_locked = 0, freed_unlocked = 0;
    for (std::size_t i = 0; i < keys.size(); ++i) {
      bool is_locked = in_ranges(locked, keys[i], 32);
      // Every key on a locked page goes (room for STRICT to lock pages again), and every other
      // one on an unlocked page; the rest stay live, so that their pages stay in use.
      if (is_locked || i % 2 == 1) {
        ++(is_locked ? freed_locked : freed_unlocked);
        lockbox_free(keys[i]);
      } else {
        live_unlocked.push_back(keys[i]);
      }
    }
    CHECK_MESSAGE(freed_unlocked > 100 && live_unlocked.size() > 100,
                  "%zu unlocked keys freed, %zu kept", freed_unlocked, live_unlocked.size());
    CHECK(freed_locked > 100);
    keys_freed.release();
    policy_switched.acquire();

    std::vector<void*> strict_keys;
    while (strict_keys.size() < 3000) {
      void* key = lockbox_malloc(32);
      if (key == nullptr) break;
      strict_keys.push_back(key);
    }
    locked = lockbox_test::locked_ranges();
    std::size_t not_locked = 0;
    for (void* key : strict_keys) not_locked += in_ranges(locked, key, 32) ? 0 : 1;
    CHECK_MESSAGE(not_locked == 0, "%zu of %zu keys handed out under STRICT are not locked",
                  not_locked, strict_keys.size());
    // The room the freed locked keys made is used again (shared with the pages of live keys
    // that STRICT locks to put more keys on them).
    CHECK_MESSAGE(strict_keys.size() > 100, "%zu keys under STRICT, %zu locked ones freed",
                  strict_keys.size(), freed_locked);
    check_kernel_agrees();
    for (void* key : strict_keys) lockbox_free(key);
    for (void* key : live_unlocked) lockbox_free(key);
  });
  keys_freed.acquire();
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_STRICT) == 0);
  policy_switched.release();
  owner.join();
}

}  // namespace

int main(int argc, char** argv) {
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.memlock_limit == kLimit);
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "strict") {
    strict_then_best_effort();
  } else if (mode == "env-best-effort") {
    best_effort_from_environment();
  } else if (mode == "strict-after-best-effort") {
    strict_after_best_effort();
  } else {
    CHECK_MESSAGE(false, "unknown mode '%s'", mode.c_str());
  }
  return lockbox_test::finish();
}
