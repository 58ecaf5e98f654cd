// SPDX-License-Identifier: ISC
// The memfd_secret backend: chosen by the API, its memory really is secretmem (the kernel names
// the mapping), the kernel's refusals fall back (auto) or fail with the reason (secretmem), and
// as an ordinary user the RLIMIT_MEMLOCK budget holds, arena by arena, and an application that
// closes descriptors it does not know cannot make lockbox map one of its own files.
// Usage: secretmem select | fallback | unprivileged | descriptors_closed
#include <fcntl.h>
#include <lockbox/lockbox.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

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

// A daemon that closes every descriptor above stderr (closefrom, close_range) after lockbox
// opened its memfd_secret file, then opens a file of its own, which gets the same number. Before,
// lockbox mapped the next arenas from that number: from the application's file, MAP_SHARED, so
// the secrets written into them went to the file (and to disk). Now the descriptor is checked
// (device and inode) before each use, a lost one is neither used nor ever closed, and a new
// memfd_secret file serves the next arenas.
int descriptors_closed() {
  constexpr char kMarker[] = "lockbox-secret-marker-0123456789";  // 32 bytes and its NUL
  CHECK(lockbox_set_backend(LOCKBOX_BACKEND_SECRETMEM) == 0);
  void* first = lockbox_malloc(32);  // the first arena: the pool opens its file
  CHECK(first != nullptr && mapping_name(first).find("secretmem") != std::string::npos);
  for (int fd = 3; fd < 1024; ++fd) close(fd);
  char path[] = "/tmp/lockbox-descriptors-XXXXXX";
  int file = mkstemp(path);
  CHECK(file >= 3);
  unlink(path);
  CHECK(ftruncate(file, 256 << 20) == 0);  // larger than anything lockbox would map from it
  // Enough keys for several more arenas, each holding the marker.
  std::vector<void*> keys;
  for (int i = 0; i < 100000; ++i) {
    void* key = lockbox_malloc(32);
    if (key == nullptr) break;
    std::memcpy(key, kMarker, 32);
    keys.push_back(key);
  }
  CHECK_MESSAGE(keys.size() == 100000, "%zu keys", keys.size());
  CHECK(mapping_name(keys.back()).find("secretmem") != std::string::npos);
  // The application's file must hold nothing of them.
  std::vector<char> contents(1 << 20);
  bool leaked = false;
  for (off_t offset = 0; offset < (256 << 20) && !leaked; offset += 1 << 20) {
    ssize_t got = pread(file, contents.data(), contents.size(), offset);
    if (got <= 0) break;
    leaked = memmem(contents.data(), static_cast<std::size_t>(got), kMarker, 32) != nullptr;
  }
  CHECK_MESSAGE(!leaked, "a secret lockbox allocated was written into the application's file");
  struct stat before {};
  CHECK(fstat(file, &before) == 0);
  for (void* key : keys) lockbox_free(key);
  lockbox_free(first);
  // Nor does lockbox close it (in a forked child, it closes the descriptors it still owns).
  std::fflush(nullptr);
  pid_t child = fork();
  if (child == 0) _exit(fcntl(file, F_GETFD) == -1 ? 1 : 0);
  int status = 0;
  CHECK(waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(fcntl(file, F_GETFD) != -1);
  close(file);
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
  if (mode == "descriptors_closed") return descriptors_closed();
  std::fprintf(stderr, "usage: secretmem select | fallback | unprivileged | descriptors_closed\n");
  return 2;
}
