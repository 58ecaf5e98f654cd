// SPDX-License-Identifier: ISC
// Sealed boxes end to end:
//   memory  a sealed marker is nowhere in the process's memory (every mapping read through
//           /proc/self/mem) while no view is open, only inside the view while one is, and
//           nowhere again after the close; the same after a rekey
//   core    a real core dump of a process holding a sealed marker lacks it (and holds a marker
//           in ordinary memory, so the core proves something)
//   fork    a forked child cannot open its parent's boxes: a clear error, not garbage; it seals
//           and opens boxes of its own, and frees the inherited ones
#include <fcntl.h>
#include <lockbox/lockbox.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "support/check.hpp"
#include "support/core_dump.hpp"
#include "support/marker.hpp"
#include "support/process.hpp"

namespace {

using lockbox_test::decode_marker;
using lockbox_test::encode_marker;
using lockbox_test::kMarkerKey;
using lockbox_test::write_decoded;

// Decoded straight into lockbox memory, sealed, and that memory freed (zeroed): a plain copy
// anywhere else is a leak.
constexpr auto kEncoded = encode_marker("SEALED-MARKER-5e0b7c-encrypted-at-rest-in-lockbox");
constexpr auto kHeapEncoded = encode_marker("HEAP-MARKER-a91f02-plain-malloc-memory-present");
constexpr std::size_t kMarkerBytes = kEncoded.size();

bool is_marker(const unsigned char* bytes) {
  for (std::size_t i = 0; i < kMarkerBytes; ++i) {
    if ((bytes[i] ^ kMarkerKey) != kEncoded.bytes[i]) return false;
  }
  return true;
}

lockbox_sealed* seal_marker() {
  auto* plain = static_cast<unsigned char*>(lockbox_malloc(kMarkerBytes));
  if (plain == nullptr) return nullptr;
  write_decoded(plain, kEncoded);
  lockbox_sealed* box = lockbox_seal(plain, kMarkerBytes);
  lockbox_free(plain);  // zeroes it
  return box;
}

// Where the marker occurs in the process's memory. Each chunk is read into a scratch mapping
// that is left out of the search and XOR-ed with the key in place, so that the marker is
// searched as its encoded form and no plain copy of it is ever made by the search itself.
std::size_t g_bytes_searched = 0;

bool readable_through_proc(const void* address) {
  int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  unsigned char byte = 0;
  bool readable = fd >= 0 && pread(fd, &byte, 1, reinterpret_cast<off_t>(address)) == 1;
  if (fd >= 0) close(fd);
  return readable;
}

std::vector<std::uintptr_t> find_marker() {
  std::vector<std::uintptr_t> found;
  constexpr std::size_t kChunk = 1 << 20;
  auto* scratch = static_cast<unsigned char*>(
      mmap(nullptr, kChunk + kMarkerBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
           -1, 0));
  if (scratch == MAP_FAILED) return {~std::uintptr_t{0}};
  auto scratch_start = reinterpret_cast<std::uintptr_t>(scratch);
  int fd = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return {~std::uintptr_t{0}};
  for (auto [start, end] : lockbox_test::all_ranges()) {
    if (start == scratch_start) continue;
#if defined(__SANITIZE_ADDRESS__)
    // AddressSanitizer reserves terabytes (shadow memory, its allocator's regions) that cannot
    // be read in a test's time; lockbox's own mappings are far smaller. The ordinary build
    // reads every mapping.
    if (end - start > (std::uintptr_t{1} << 30)) continue;
#endif
    for (std::uintptr_t at = start; at < end; at += kChunk) {
      // Overlap the chunks by the marker's length so that no occurrence straddles two.
      std::size_t want = std::min<std::uintptr_t>(kChunk + kMarkerBytes, end - at);
      ssize_t got = pread(fd, scratch, want, static_cast<off_t>(at));
      if (got <= 0) break;  // memfd_secret pages (and other unreadable ones) cannot be read
      g_bytes_searched += static_cast<std::size_t>(got);
      for (ssize_t i = 0; i < got; ++i) scratch[i] ^= kMarkerKey;
      for (ssize_t i = 0; i + static_cast<ssize_t>(kMarkerBytes) <= got; ++i) {
        if (scratch[i] == kEncoded.bytes[0] &&
            std::memcmp(scratch + i, kEncoded.bytes, kMarkerBytes) == 0 &&
            (i < static_cast<ssize_t>(kChunk))) {
          found.push_back(at + static_cast<std::uintptr_t>(i));
        }
      }
    }
  }
  close(fd);
  munmap(scratch, kChunk + kMarkerBytes);
  return found;
}

void check_memory() {
  lockbox_sealed* box = seal_marker();
  CHECK(box != nullptr);
  if (box == nullptr) return;
  std::vector<std::uintptr_t> sealed = find_marker();
  std::printf("searched %zu KiB of memory\n", g_bytes_searched >> 10);
  CHECK_MESSAGE(sealed.empty(), "sealed marker found %zu times, first at 0x%lx", sealed.size(),
                sealed.empty() ? 0ul : static_cast<unsigned long>(sealed[0]));

  const void* view = lockbox_sealed_open(box);
  CHECK(view != nullptr);
  std::vector<std::uintptr_t> open = find_marker();
  if (readable_through_proc(view)) {
    // The search really finds the marker, and only in the view.
    CHECK_MESSAGE(open.size() == 1 && open[0] == reinterpret_cast<std::uintptr_t>(view),
                  "with a view open the marker is found %zu times (view at %p)", open.size(),
                  view);
  } else {
    // A view in a memfd_secret arena (LOCKBOX_BACKEND=auto): not even /proc/self/mem reads it.
    std::printf("the view is in memfd_secret memory\n");
    CHECK(open.empty());
  }
  lockbox_sealed_close(box, view);
  CHECK(find_marker().empty());

  CHECK(lockbox_sealed_rekey() == 0);
  CHECK(find_marker().empty());
  view = lockbox_sealed_open(box);
  CHECK(view != nullptr && is_marker(static_cast<const unsigned char*>(view)));
  CHECK(find_marker().size() == (readable_through_proc(view) ? 1u : 0u));
  lockbox_sealed_close(box, view);
  lockbox_sealed_free(box);
  CHECK(find_marker().empty());
}

[[noreturn]] void crash_with_sealed_marker(const char* directory) {
  if (!lockbox_test::prepare_to_dump_core(directory)) _exit(10);
  auto* heap = static_cast<unsigned char*>(std::malloc(128));
  lockbox_sealed* box = seal_marker();
  if (heap == nullptr || box == nullptr) _exit(12);
  write_decoded(heap, kHeapEncoded);
  // Opened and closed once: a view was there, and is gone.
  const void* view = lockbox_sealed_open(box);
  if (view == nullptr) _exit(13);
  lockbox_sealed_close(box, view);
  std::abort();
}

int check_core() {
  if (!lockbox_test::cores_land_in_working_directory()) return 77;
  std::string core = lockbox_test::core_of_crashing_child(&crash_with_sealed_marker);
  CHECK(core.size() > 0);
  CHECK_MESSAGE(core.find(decode_marker(kHeapEncoded)) != std::string::npos,
                "the heap marker is missing: the core proves nothing");
  CHECK_MESSAGE(core.find(decode_marker(kEncoded)) == std::string::npos,
                "the sealed marker is in the core dump");
  return lockbox_test::finish();
}

enum ChildFailure {
  kOpenedParentBox = 1 << 0,
  kWrongErrno = 1 << 1,
  kNoReason = 1 << 2,
  kSizeOfParentBox = 1 << 3,
  kOwnBoxFailed = 1 << 4,
  kRekeyFailed = 1 << 5,
  kWrongStats = 1 << 6,
  kWritableOpened = 1 << 7,
};

int child(lockbox_sealed* parents_box) {
  int failures = 0;
  errno = 0;
  const void* view = lockbox_sealed_open(parents_box);
  if (view != nullptr) failures |= kOpenedParentBox;
  if (errno != EACCES) failures |= kWrongErrno;
  if (std::strstr(lockbox_last_error(), "forked child cannot unseal") == nullptr)
    failures |= kNoReason;
  errno = 0;
  if (lockbox_sealed_open_rw(parents_box) != nullptr || errno != EACCES)
    failures |= kWritableOpened;
  errno = 0;
  if (lockbox_sealed_size(parents_box) != 0 || errno != EACCES) failures |= kSizeOfParentBox;

  unsigned char mine[40];
  for (std::size_t i = 0; i < sizeof mine; ++i) mine[i] = static_cast<unsigned char>(i * 3);
  lockbox_sealed* own = lockbox_seal(mine, sizeof mine);
  const void* own_view = own != nullptr ? lockbox_sealed_open(own) : nullptr;
  if (own_view == nullptr || std::memcmp(own_view, mine, sizeof mine) != 0) failures |= kOwnBoxFailed;
  if (own_view != nullptr) lockbox_sealed_close(own, own_view);
  if (lockbox_sealed_rekey() != 0) failures |= kRekeyFailed;
  own_view = own != nullptr ? lockbox_sealed_open(own) : nullptr;
  if (own_view == nullptr || std::memcmp(own_view, mine, sizeof mine) != 0) failures |= kOwnBoxFailed;
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  if (stats.sealed_boxes != 1 || stats.open_sealed_boxes != 1) failures |= kWrongStats;
  if (own_view != nullptr) lockbox_sealed_close(own, own_view);
  lockbox_sealed_free(own);
  lockbox_sealed_free(parents_box);  // the child's bookkeeping only
  return failures;
}

void check_fork() {
  std::vector<unsigned char> record(5000, 0x77);
  const unsigned char* secret = record.data();
  lockbox_sealed* box = lockbox_seal(secret, 64);
  lockbox_sealed* open_box = lockbox_seal(secret, record.size());  // a large block, open at fork
  CHECK(box != nullptr && open_box != nullptr);
  const void* held = lockbox_sealed_open(open_box);
  CHECK(held != nullptr);
  for (lockbox_sealed* parents_box : {box, open_box}) {
    pid_t pid = fork();
    if (pid == 0) _exit(child(parents_box));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status 0x%x (failure bits 0x%x)", status,
                  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  }
  // The parent's boxes are untouched.
  const void* view = lockbox_sealed_open(box);
  CHECK(view != nullptr && std::memcmp(view, secret, 64) == 0);
  lockbox_sealed_close(box, view);
  CHECK(std::memcmp(held, secret, record.size()) == 0);
  lockbox_sealed_close(open_box, held);
  lockbox_sealed_free(box);
  lockbox_sealed_free(open_box);
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc > 1 ? argv[1] : "";
  if (mode == "memory") {
    check_memory();
  } else if (mode == "core") {
    return check_core();
  } else if (mode == "fork") {
    check_fork();
  } else {
    std::fprintf(stderr, "usage: sealed memory|core|fork\n");
    return 2;
  }
  return lockbox_test::finish();
}
