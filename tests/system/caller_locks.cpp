// SPDX-License-Identifier: ISC
// lockbox_lock / lockbox_unlock on memory lockbox did not allocate, as an ordinary user with a
// 256 KiB RLIMIT_MEMLOCK. Every check reads the kernel's own view (/proc/self/smaps VmFlags,
// VmLck), not lockbox's bookkeeping.
#include <lockbox/lockbox.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <string>

#include "support/check.hpp"
#include "support/freed.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kLimit = 256 * 1024;
constexpr std::size_t kPage = 4096;

unsigned char* map_pages(std::size_t count) {
  void* p =
      mmap(nullptr, count * kPage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : static_cast<unsigned char*>(p);
}

long long vmlck() { return lockbox_test::vmlck_bytes(); }

std::size_t caller_locked() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  return stats.caller_locked_bytes;
}

void two_ranges_on_one_page() {
  unsigned char* page = map_pages(1);
  long long before = vmlck();
  CHECK(lockbox_lock(page, 100) == 0);
  CHECK(lockbox_lock(page + 200, 100) == 0);
  CHECK(vmlck() == before + static_cast<long long>(kPage));
  CHECK(lockbox_test::kernel_says_locked(page, kPage));
  CHECK(lockbox_test::kernel_says_dont_dump(page, kPage));
  CHECK(caller_locked() == kPage);
  CHECK(lockbox_unlock(page, 100) == 0);
  // The other range still holds the page: bare munlock would have unlocked it here.
  CHECK(lockbox_test::kernel_says_locked(page, kPage));
  CHECK(vmlck() == before + static_cast<long long>(kPage));
  CHECK(lockbox_unlock(page + 200, 100) == 0);
  CHECK(lockbox_test::kernel_says_unlocked(page, kPage));
  CHECK(!lockbox_test::kernel_says_dont_dump(page, kPage));  // dumping is as it was
  CHECK(vmlck() == before);
  CHECK(caller_locked() == 0);
  munmap(page, kPage);
}

void straddling_and_nested() {
  unsigned char* pages = map_pages(3);
  long long before = vmlck();
  CHECK(lockbox_lock(pages + kPage - 10, 20) == 0);  // straddles pages 0 and 1
  CHECK(vmlck() == before + 2 * static_cast<long long>(kPage));
  CHECK(lockbox_test::kernel_says_unlocked(pages + 2 * kPage, kPage));
  for (int i = 0; i < 3; ++i) CHECK(lockbox_lock(pages + kPage, 1) == 0);  // nested on page 1
  CHECK(lockbox_unlock(pages + kPage - 10, 20) == 0);
  CHECK(lockbox_test::kernel_says_unlocked(pages, kPage));
  CHECK(lockbox_test::kernel_says_locked(pages + kPage, kPage));
  CHECK(lockbox_unlock(pages + kPage, 1) == 0);
  CHECK(lockbox_unlock(pages + kPage, 1) == 0);
  CHECK(lockbox_test::kernel_says_locked(pages + kPage, kPage));
  CHECK(lockbox_unlock(pages + kPage, 1) == 0);
  CHECK(lockbox_test::kernel_says_unlocked(pages, 3 * kPage));
  CHECK(vmlck() == before);
  munmap(pages, 3 * kPage);
}

void unlock_of_never_locked_changes_nothing() {
  unsigned char* pages = map_pages(2);
  CHECK(lockbox_lock(pages, 10) == 0);
  errno = 0;
  CHECK(lockbox_unlock(pages, 2 * kPage) == -1);  // the second page was never locked
  CHECK(errno == EINVAL);
  CHECK(std::string(lockbox_last_error()).find("not locked with lockbox_lock") !=
        std::string::npos);
  CHECK(lockbox_test::kernel_says_locked(pages, kPage));
  errno = 0;
  CHECK(lockbox_unlock(pages + kPage, 1) == -1);
  CHECK(errno == EINVAL);
  CHECK(lockbox_unlock(pages, 10) == 0);  // still exactly one lock to undo
  CHECK(lockbox_unlock(pages, 10) == -1);
  CHECK(lockbox_test::kernel_says_unlocked(pages, 2 * kPage));
  munmap(pages, 2 * kPage);
}

void application_lock_is_never_undone() {
  unsigned char* page = map_pages(1);
  CHECK(lockbox_test::kernel_mlock(page, kPage) == 0);  // the application's own lock
  lockbox_stats before;
  lockbox_get_stats(&before, sizeof before);
  long long vm_before = vmlck();
  CHECK(lockbox_lock(page, 64) == 0);
  lockbox_stats during;
  lockbox_get_stats(&during, sizeof during);
  CHECK(during.locked_bytes == before.locked_bytes);  // nothing of lockbox's to charge
  CHECK(lockbox_unlock(page, 64) == 0);
  CHECK(lockbox_test::kernel_says_locked(page, kPage));
  CHECK(vmlck() == vm_before);
  CHECK(lockbox_test::kernel_munlock(page, kPage) == 0);
  munmap(page, kPage);
}

void bad_ranges_fail_cleanly() {
  CHECK(lockbox_lock(nullptr, 0) == 0);
  CHECK(lockbox_unlock(nullptr, 0) == 0);
  errno = 0;
  CHECK(lockbox_lock(reinterpret_cast<void*>(UINTPTR_MAX - 10), 100) == -1);
  CHECK(errno == EINVAL);

  unsigned char* pages = map_pages(3);
  long long before = vmlck();
  CHECK(munmap(pages + 2 * kPage, kPage) == 0);  // page 2 is gone
  errno = 0;
  CHECK(lockbox_lock(pages, 3 * kPage) == -1);
  CHECK(errno == ENOMEM);
  CHECK(std::string(lockbox_last_error()).find("no memory is mapped") != std::string::npos);
  CHECK(lockbox_test::kernel_says_unlocked(pages, 2 * kPage));  // nothing half-locked
  CHECK(caller_locked() == 0);
  CHECK(mprotect(pages + kPage, kPage, PROT_NONE) == 0);
  errno = 0;
  CHECK(lockbox_lock(pages, 2 * kPage) == -1);
  CHECK(errno == EACCES);
  CHECK(lockbox_test::kernel_says_unlocked(pages, 2 * kPage));
  CHECK(vmlck() == before);
  CHECK(caller_locked() == 0);
  munmap(pages, 2 * kPage);
}

void budget_holds_for_locks() {
  // 512 KiB cannot be locked under 256 KiB: STRICT refuses the whole range.
  unsigned char* big = map_pages(128);
  long long before = vmlck();
  errno = 0;
  CHECK(lockbox_lock(big, 128 * kPage) == -1);
  CHECK(errno == ENOMEM);
  CHECK(std::string(lockbox_last_error()).find("RLIMIT_MEMLOCK") != std::string::npos);
  CHECK(lockbox_test::kernel_says_unlocked(big, 128 * kPage));
  CHECK(vmlck() == before);
  // Half of it fits, and is charged against the same budget as allocations.
  CHECK(lockbox_lock(big, 32 * kPage) == 0);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.locked_bytes >= 32 * kPage);
  CHECK(vmlck() == static_cast<long long>(stats.locked_bytes));
  CHECK(lockbox_unlock(big, 32 * kPage) == 0);
  munmap(big, 128 * kPage);
}

void locks_on_lockbox_memory_nest_with_objects() {
  auto* secret = static_cast<unsigned char*>(lockbox_malloc(32));
  auto* neighbour = static_cast<unsigned char*>(lockbox_malloc(32));
  CHECK(lockbox_lock(secret, 32) == 0);
  const void* secret_address = lockbox_test::address_kept(secret);
  lockbox_free(secret);
  lockbox_free(neighbour);
  // The caller's lock still holds the page, whatever the allocator does with it.
  CHECK(lockbox_test::kernel_says_locked(secret_address, 32));
  CHECK(lockbox_unlock(secret_address, 32) == 0);
  void* large = lockbox_malloc(100000);
  CHECK(lockbox_lock(large, 100000) == 0);
  CHECK(lockbox_unlock(large, 100000) == 0);
  CHECK(lockbox_test::kernel_says_locked(large, 100000));  // the block's own lock stays
  CHECK(lockbox_lock(large, 1) == 0);
  const void* large_address = lockbox_test::address_kept(large);
  lockbox_free(large);  // freeing drops the caller's lock with the block
  errno = 0;
  CHECK(lockbox_unlock(large_address, 1) == -1);
  CHECK(errno == EINVAL);
  CHECK(caller_locked() == 0);
}

void unlock_and_zero_wipes_a_stack_buffer() {
  alignas(16) char passphrase[64];
  std::strcpy(passphrase, "correct horse battery staple");
  CHECK(lockbox_lock(passphrase, sizeof passphrase) == 0);
  CHECK(lockbox_test::kernel_says_locked(passphrase, sizeof passphrase));
  CHECK(lockbox_unlock_and_zero(passphrase, sizeof passphrase) == 0);
  bool zero = true;
  for (char c : passphrase) zero &= c == 0;
  CHECK(zero);
  // A failed unlock zeroes nothing.
  std::strcpy(passphrase, "kept");
  CHECK(lockbox_unlock_and_zero(passphrase, sizeof passphrase) == -1);
  CHECK(std::string(passphrase) == "kept");
}

void randomized_against_a_page_model() {
  // Overlapping lock/unlock sequences on 16 pages against a per-page count model; unlocks the
  // model says must fail are tried too. The kernel's view is checked every 100 steps.
  constexpr std::size_t kPages = 16;
  unsigned char* pages = map_pages(kPages);
  long long base = vmlck();
  unsigned model[kPages] = {};
  std::uint64_t state = 0x9e3779b97f4a7c15ull;
  auto next = [&state](std::uint64_t bound) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state % bound;
  };
  int mismatches = 0;
  for (int step = 0; step < 3000; ++step) {
    std::size_t offset = next(kPages * kPage - 1);
    std::size_t length = 1 + next(3 * kPage);
    if (offset + length > kPages * kPage) length = kPages * kPage - offset;
    std::size_t first = offset / kPage, last = (offset + length - 1) / kPage;
    if (next(2) == 0) {
      mismatches += lockbox_lock(pages + offset, length) != 0;
      for (std::size_t p = first; p <= last; ++p) ++model[p];
    } else {
      bool all_held = true;
      for (std::size_t p = first; p <= last; ++p) all_held &= model[p] > 0;
      int result = lockbox_unlock(pages + offset, length);
      mismatches += (result == 0) != all_held;
      if (all_held) {
        for (std::size_t p = first; p <= last; ++p) --model[p];
      }
    }
    std::size_t held = 0;
    for (unsigned count : model) held += count > 0;
    mismatches += caller_locked() != held * kPage;
    if (step % 100 == 99) {
      for (std::size_t p = 0; p < kPages; ++p) {
        bool locked = lockbox_test::kernel_says_locked(pages + p * kPage, kPage);
        mismatches += locked != (model[p] > 0);
      }
      mismatches += vmlck() != base + static_cast<long long>(held * kPage);
    }
  }
  CHECK_MESSAGE(mismatches == 0, "%d mismatches against the model", mismatches);
  for (std::size_t p = 0; p < kPages; ++p) {
    while (model[p] > 0) {
      CHECK(lockbox_unlock(pages + p * kPage, 1) == 0);
      --model[p];
    }
  }
  CHECK(lockbox_test::kernel_says_unlocked(pages, kPages * kPage));
  CHECK(vmlck() == base);
  munmap(pages, kPages * kPage);
}

}  // namespace

int main() {
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  two_ranges_on_one_page();
  straddling_and_nested();
  unlock_of_never_locked_changes_nothing();
  application_lock_is_never_undone();
  bad_ranges_fail_cleanly();
  budget_holds_for_locks();
  locks_on_lockbox_memory_nest_with_objects();
  unlock_and_zero_wipes_a_stack_buffer();
  randomized_against_a_page_model();
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(vmlck() == static_cast<long long>(stats.locked_bytes));
  return lockbox_test::finish();
}
