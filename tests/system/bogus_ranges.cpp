// SPDX-License-Identifier: ISC
// Huge or bogus ranges given to lockbox_lock are refused before any work in proportion to their
// length: no exception, no gigabytes of bookkeeping, just -1, ENOMEM and the reason. (Before,
// 128 TiB at 0x10000 terminated the program with std::bad_alloc, and a 64 GiB hole took 578 MiB
// and seconds to refuse.) Peak memory is read from the kernel (VmHWM), never a clock.
#include <lockbox/lockbox.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <string>

#include "support/check.hpp"
#include "support/process.hpp"

namespace {

constexpr std::size_t kGiB = std::size_t{1} << 30;
// Far less than one byte of bookkeeping per page of any of the ranges below.
constexpr long long kMostPeakGrowth = 8 << 20;

bool reason_says(const char* words) {
  return std::string(lockbox_last_error()).find(words) != std::string::npos;
}

void refused(const void* address, std::size_t length, const char* reason) {
  long long peak_before = lockbox_test::status_bytes("VmHWM");
  errno = 0;
  CHECK(lockbox_lock(address, length) == -1);
  CHECK(errno == ENOMEM);
  CHECK_MESSAGE(reason_says(reason), "reason: '%s'", lockbox_last_error());
  long long growth = lockbox_test::status_bytes("VmHWM") - peak_before;
  CHECK_MESSAGE(growth < kMostPeakGrowth, "the refusal of %zu bytes grew the process by %lld bytes",
                length, growth);
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  CHECK(stats.caller_locked_bytes == 0);
}

}  // namespace

int main() {
  // 128 TiB from a low address, where nothing is mapped.
  refused(reinterpret_cast<void*>(0x10000), std::size_t{128} << 40, "no memory is mapped");

  // 64 GiB where nothing is mapped (a reservation, given back).
  void* hole = mmap(nullptr, 64 * kGiB, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
                    -1, 0);
  CHECK(hole != MAP_FAILED);
  if (hole != MAP_FAILED) {
    CHECK(munmap(hole, 64 * kGiB) == 0);
    refused(hole, 64 * kGiB, "no memory is mapped");
  }

  // Mapped (PROT_NONE, reserved only), but twice this machine's memory.
  std::size_t twice_memory = 2 * static_cast<std::size_t>(sysconf(_SC_PHYS_PAGES)) * 4096;
  void* reservation =
      mmap(nullptr, twice_memory, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  CHECK(reservation != MAP_FAILED);
  if (reservation != MAP_FAILED) {
    refused(reservation, twice_memory, "pages of memory");
    munmap(reservation, twice_memory);
  }

  // A real range still locks and unlocks.
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  CHECK(lockbox_lock(page, 4096) == 0);
  CHECK(lockbox_unlock(page, 4096) == 0);
  return lockbox_test::finish();
}
