// SPDX-License-Identifier: ISC
// The density promise: an ordinary user with the default 8 MiB RLIMIT_MEMLOCK keeps 150,000
// live 32-byte keys, every one of them locked, even after large blocks filled the large-block
// cache with locked pages first (the cache is the first thing given back).
#include <lockbox/lockbox.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

int main() {
  constexpr std::size_t kLimit = 8 * 1024 * 1024;
  constexpr std::size_t kKeys = 150000;
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();

  // Freed 256 KiB blocks keep their pages, locked, for reuse: about 2.3 MiB of the 8.
  for (int i = 0; i < 20; ++i) {
    void* block = lockbox_malloc(256 * 1024);
    CHECK_MESSAGE(block != nullptr, "a 256 KiB block: %s", lockbox_last_error());
    if (block == nullptr) return lockbox_test::finish();
    std::memset(block, 0x5a, 256 * 1024);
    lockbox_free(block);
  }
  lockbox_stats cache_filled;
  lockbox_get_stats(&cache_filled, sizeof cache_filled);
  CHECK_MESSAGE(cache_filled.cached_large_bytes >= 2 * 1024 * 1024, "cached %zu bytes",
                cache_filled.cached_large_bytes);

  std::vector<std::uint64_t*> keys(kKeys, nullptr);
  std::size_t stored = 0;
  for (; stored < kKeys; ++stored) {
    auto* key = static_cast<std::uint64_t*>(lockbox_malloc(32));
    if (key == nullptr) break;
    for (std::uint64_t word = 0; word < 4; ++word) key[word] = stored * 4 + word;
    keys[stored] = key;
  }
  CHECK_MESSAGE(stored == kKeys, "stopped at %zu keys: %s", stored, lockbox_last_error());

  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  long long vmlck = lockbox_test::vmlck_bytes();
  std::printf("%zu keys: locked %zu KiB, VmLck %lld KiB, %zu mappings\n", stored,
              stats.locked_bytes / 1024, vmlck / 1024, lockbox_test::mapping_count());
  CHECK(stats.unlocked_bytes == 0);
  CHECK(stats.locked_bytes <= kLimit);
  CHECK(stats.cached_large_bytes < cache_filled.cached_large_bytes);  // given back for the keys
  CHECK(vmlck == static_cast<long long>(stats.locked_bytes));
  CHECK(stats.live_allocations == stored);
  CHECK(stats.in_use_bytes == stored * 32);

  std::size_t intact = 0;
  for (std::size_t i = 0; i < stored; ++i) {
    bool same = true;
    for (std::uint64_t word = 0; word < 4; ++word) same &= keys[i][word] == i * 4 + word;
    intact += same;
  }
  CHECK(intact == stored);
  CHECK(lockbox_test::kernel_says_locked(keys[0], 32));
  CHECK(lockbox_test::kernel_says_locked(keys[stored - 1], 32));

  for (std::size_t i = 0; i < stored; ++i) lockbox_free(keys[i]);
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.live_allocations == 0);
  CHECK(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes));
  return lockbox_test::finish();
}
