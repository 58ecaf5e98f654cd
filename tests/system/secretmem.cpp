// SPDX-License-Identifier: ISC
// The memfd_secret backend: chosen by the API, its memory really is secretmem (the kernel names
// the mapping), the kernel's refusals fall back (auto) or fail with the reason (secretmem), and
// as an ordinary user the RLIMIT_MEMLOCK budget holds, arena by arena.
// Usage: secretmem select | fallback | unprivileged
#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "os/os.hpp"
#include "support/check.hpp"
#include "support/process.hpp"

namespace {

// The name the kernel gives the mapping that holds `address` ("/secretmem (deleted)").
std::string mapping_name(const void* address) {
  auto target = reinterpret_cast<std::uintptr_t>(address);
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0;
    if (std::sscanf(line.c_str(), "%lx-%lx", &start, &end) == 2 && target >= start &&
        target < end) {
      return line;
    }
  }
  return "";
}

lockbox_stats stats_now() {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  return stats;
}

int select_backend() {
  CHECK(lockbox_get_backend() == LOCKBOX_BACKEND_ANON);  // the default
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0);
  CHECK(lockbox_get_backend() == LOCKBOX_BACKEND_SECRETMEM);
  auto* key = static_cast<unsigned char*>(lockbox_malloc(32));
  CHECK_MESSAGE(key != nullptr, "%s", lockbox_last_error());
  if (key == nullptr) return lockbox_test::finish();
  std::memset(key, 0x5c, 32);
  CHECK_MESSAGE(mapping_name(key).find("secretmem") != std::string::npos, "'%s'",
                mapping_name(key).c_str());
  lockbox_stats stats = stats_now();
  CHECK(stats.secretmem_bytes >= 1000 * 1024);
  CHECK(stats.locked_bytes >= stats.secretmem_bytes);
  CHECK(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes));
  CHECK(lockbox_test::kernel_says_locked(key, 32));
  CHECK(lockbox_test::kernel_says_dont_dump(key, 32));
  // Many keys share the arena; freeing them all keeps the arena (its charge stays exact).
  std::vector<void*> keys;
  for (int i = 0; i < 5000; ++i) keys.push_back(lockbox_malloc(32));
  for (void* k : keys) CHECK(k != nullptr);
  for (void* k : keys) lockbox_free(k);
  lockbox_free(key);
  CHECK(lockbox_test::vmlck_bytes() == static_cast<long long>(stats_now().locked_bytes));
  // Slots stop at 8 KiB while arenas are secret memory (charged whole): a 20,000-byte buffer is a
  // large block of its own, anonymous, between guard pages; with anonymous arenas it is a slot.
  void* buffer = lockbox_malloc(20000);
  CHECK(buffer != nullptr);
  CHECK(mapping_name(buffer).find("secretmem") == std::string::npos);
  CHECK(lockbox_test::page_protection(static_cast<unsigned char*>(buffer) + 20000) == "---");
  lockbox_free(buffer);
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_ANON) == 0);
  buffer = lockbox_malloc(20000);
  CHECK(buffer != nullptr);
  CHECK(lockbox_test::page_protection(static_cast<unsigned char*>(buffer) + 20000) == "rw-");
  lockbox_free(buffer);
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0);
  errno = 0;
  CHECK(lockbox_set_backend(static_cast<lockbox_backend>(5)) == -1);
  CHECK(errno == EINVAL);
  return lockbox_test::finish();
}

int fallback() {
  // A kernel without memfd_secret (ENOSYS), then one whose seccomp filter forbids it (EPERM).
  for (int error : {ENOSYS, EPERM}) {
    lockbox::os::simulate_memfd_secret_error(error);
    CHECK(lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0);
    errno = 0;
    void* refused = lockbox_malloc(32);
    CHECK(refused == nullptr);
    CHECK(errno == ENOMEM);
    std::string reason = lockbox_last_error();
    CHECK_MESSAGE(
        reason.find("memfd_secret") != std::string::npos &&
            reason.find(error == ENOSYS ? "lacks memfd_secret" : "seccomp") != std::string::npos,
        "'%s'", reason.c_str());
    CHECK(stats_now().secretmem_bytes == 0);
  }
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_AUTO) == 0);
  void* kept = lockbox_malloc(32);  // auto falls back to anonymous memory
  CHECK(kept != nullptr);
  CHECK(mapping_name(kept).find("secretmem") == std::string::npos);
  CHECK(lockbox_test::kernel_says_locked(kept, 32));
  CHECK(stats_now().secretmem_bytes == 0);
  lockbox_free(kept);
  return lockbox_test::finish();
}

int unprivileged() {
  constexpr std::size_t kLimit = (2u << 20) + (512u << 10);  // room for two arenas, not three
  std::string why = lockbox_test::become_unprivileged(kLimit);
  CHECK_MESSAGE(why.empty(), "%s", why.c_str());
  if (!why.empty()) return lockbox_test::finish();
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0);
  std::vector<unsigned char*> keys;
  unsigned char* key = nullptr;
  errno = 0;
  while (keys.size() < 200000 && (key = static_cast<unsigned char*>(lockbox_malloc(32)))) {
    std::memset(key, 7, 32);
    keys.push_back(key);
  }
  CHECK(key == nullptr);
  CHECK(errno == ENOMEM);
  CHECK_MESSAGE(std::string(lockbox_last_error()).find("RLIMIT_MEMLOCK") != std::string::npos,
                "'%s'", lockbox_last_error());
  // Two arenas of 254 pages hold 2 x 254 x 4096 / 48 keys.
  CHECK_MESSAGE(keys.size() > 40000, "%zu keys", keys.size());
  lockbox_stats stats = stats_now();
  long long vmlck = lockbox_test::vmlck_bytes();
  CHECK(vmlck <= static_cast<long long>(kLimit));
  CHECK(vmlck == static_cast<long long>(stats.locked_bytes));
  CHECK(stats.secretmem_bytes == 2 * 254 * 4096u);
  lockbox_free(keys.back());
  keys.back() = static_cast<unsigned char*>(lockbox_malloc(32));  // room again
  CHECK(keys.back() != nullptr);
  for (unsigned char* k : keys) lockbox_free(k);
  return lockbox_test::finish();
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  // The simulated refusals run anywhere; the rest needs a kernel that offers memfd_secret.
  int probe = -1;
  if (mode != "fallback" && lockbox::os::memfd_secret_create(&probe) != 0) {
    std::printf("SKIP: this kernel does not offer memfd_secret (secretmem.enable=0?)\n");
    return 77;
  }
  if (probe >= 0) lockbox::os::close_file(probe);
  // This test chooses its backend itself.
  if (mode == "select") return select_backend();
  if (mode == "fallback") return fallback();
  if (mode == "unprivileged") return unprivileged();
  std::fprintf(stderr, "usage: secretmem select | fallback | unprivileged\n");
  return 2;
}
