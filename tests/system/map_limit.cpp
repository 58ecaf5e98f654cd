// SPDX-License-Identifier: ISC
// lockbox in a process at vm.max_map_count: the process fills its mappings until the kernel
// refuses more, then allocates thousands of 4,000-byte secrets (each page then has its own lock
// state) and frees three of every four. Giving an empty page back splits a locked mapping, which
// the kernel refuses at the limit (ENOMEM): a free must never abort for that. lockbox keeps the
// page (locked, counted) and gives it back later, when mappings are free again. Allocation at
// the limit fails cleanly (NULL, ENOMEM, a reason).
#include <lockbox/lockbox.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

// One-page mappings whose protections alternate, so that the kernel cannot merge them.
std::vector<void*> fill_mappings() {
  std::vector<void*> fillers;
  fillers.reserve(70000);  // nothing of the test's own may need a mapping at the limit
  for (int i = 0;; ++i) {
    void* page = mmap(nullptr, 4096, i % 2 ? PROT_READ : PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) break;
    fillers.push_back(page);
  }
  return fillers;
}

}  // namespace

int main() {
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  std::printf("SKIP: the sanitizers' own mappings make the limit unreachable in a test's time\n");
  return 77;
#endif
  // lockbox is up, with its first arena and a few hundred secrets, before the limit is reached.
  std::vector<unsigned char*> secrets;
  secrets.reserve(4000);
  for (int i = 0; i < 2000; ++i) {
    auto* secret = static_cast<unsigned char*>(lockbox_malloc(4000));
    CHECK(secret != nullptr);
    if (secret == nullptr) break;
    std::memset(secret, i, 4000);
    secrets.push_back(secret);
  }
  // Nothing below allocates from the C library or reads /proc until the fillers are gone
  // again: at the limit those need mappings too.
  std::vector<void*> fillers = fill_mappings();
  std::size_t filled = fillers.size();
  // Room for a handful more: allocation may take some, and fail cleanly once they are gone.
  for (int i = 0; i < 4 && !fillers.empty(); ++i) {
    munmap(fillers.back(), 4096);
    fillers.pop_back();
  }
  errno = 0;
  std::size_t failed = 0;
  for (int i = 0; i < 200; ++i) {
    void* more = lockbox_malloc(4000);
    if (more == nullptr) {
      ++failed;
      CHECK(errno == ENOMEM);
    } else {
      secrets.push_back(static_cast<unsigned char*>(more));
    }
  }
  // Three secrets of every four freed: each free empties a page between locked ones, and the
  // empty pages overflow lockbox's reserve, so it gives pages back.
  for (std::size_t i = 0; i < secrets.size(); ++i) {
    if (i % 4 != 3) lockbox_free(secrets[i]);
  }
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::size_t locked_at_the_limit = stats.locked_bytes;

  for (void* page : fillers) munmap(page, 4096);
  std::printf("%zu filler mappings; %zu of 200 allocations at the limit failed cleanly\n", filled,
              failed);
  CHECK(filled > 1000);
  // The kernel's count agrees with lockbox's: pages it could not give back are still locked.
  CHECK_MESSAGE(lockbox_test::vmlck_bytes() == static_cast<long long>(locked_at_the_limit),
                "at the limit: VmLck %lld, locked_bytes %zu", lockbox_test::vmlck_bytes(),
                locked_at_the_limit);

  // Mappings free again: the pages kept locked go back as lockbox next trims, which (as root,
  // with room in the budget) is at the first page that empties once the reserve has stayed
  // over its limit for 100 ms (README, "Empty pages").
  for (std::size_t i = 3; i < secrets.size(); i += 4) lockbox_free(secrets[i]);
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  std::vector<void*> again;
  again.reserve(100);
  for (int i = 0; i < 100; ++i) again.push_back(lockbox_malloc(4000));
  for (void* secret : again) lockbox_free(secret);
  lockbox_get_stats(&stats, sizeof stats);
  CHECK_MESSAGE(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes),
                "after: VmLck %lld, locked_bytes %zu", lockbox_test::vmlck_bytes(),
                stats.locked_bytes);
  // (memfd_secret arenas, under the secretmem setup, are charged whole and never shrink.)
  CHECK_MESSAGE(stats.locked_bytes - stats.secretmem_bytes < 2000 * 4096,
                "%zu bytes of anonymous pages still locked",
                stats.locked_bytes - stats.secretmem_bytes);
  return lockbox_test::finish();
}
