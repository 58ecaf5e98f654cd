// SPDX-License-Identifier: ISC
// The C API through the process-wide heap: contracts for good and bad input, zeroing, stats
// against the kernel's VmLck, and two threads at once.
#include <doctest/doctest.h>
#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <atomic>
#include <cstring>
#include <mutex>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "heap/heap.hpp"
#include "heap/options.hpp"
#include "support/freed.hpp"
#include "support/process.hpp"
#include "support/stats.hpp"

namespace {

using lockbox_test::stats_now;

bool freed_memory_reads_zero(const void* pointer, std::size_t length) {
  return lockbox::heap::Heap::instance().freed_range_reads_zero(pointer, length);
}

}  // namespace

TEST_CASE("malloc(0) gives unique pointers that free cleanly") {
  void* a = lockbox_malloc(0);
  void* b = lockbox_malloc(0);
  REQUIRE(a != nullptr);
  REQUIRE(b != nullptr);
  CHECK(a != b);
  CHECK(lockbox_usable_size(a) == 0);
  lockbox_free(a);
  lockbox_free(b);
  lockbox_free(nullptr);
}

TEST_CASE("every pointer is 16-byte aligned and usable_size is the requested size") {
  std::vector<void*> blocks;
  for (std::size_t size :
       {1u, 15u, 16u, 17u, 32u, 100u, 2040u, 2048u, 4096u, 8184u, 8185u, 20000u, 1000000u}) {
    void* block = lockbox_malloc(size);
    REQUIRE(block != nullptr);
    CAPTURE(size);
    CHECK(reinterpret_cast<std::uintptr_t>(block) % 16 == 0);
    CHECK(lockbox_usable_size(block) == size);
    CHECK(lockbox_owns(block) == 1);
    std::memset(block, 0xab, size);
    blocks.push_back(block);
  }
  for (void* block : blocks) lockbox_free(block);
}

TEST_CASE("aligned_alloc honours every power-of-two alignment and rejects others") {
  for (std::size_t alignment = 1; alignment <= (std::size_t{1} << 20); alignment *= 2) {
    for (std::size_t size : {1u, 24u, 4096u, 70000u}) {
      void* block = lockbox_aligned_alloc(alignment, size);
      REQUIRE(block != nullptr);
      CAPTURE(alignment);
      CAPTURE(size);
      CHECK(reinterpret_cast<std::uintptr_t>(block) % alignment == 0);
      CHECK(lockbox_usable_size(block) == size);
      std::memset(block, 1, size);
      lockbox_free(block);
    }
  }
  // volatile: compilers reject literal bad alignments at build time (alloc_align).
  volatile std::size_t not_a_power_of_two = 24, zero = 0;
  errno = 0;
  CHECK(lockbox_aligned_alloc(not_a_power_of_two, 16) == nullptr);
  CHECK(errno == EINVAL);
  CHECK(std::string(lockbox_last_error()).find("not a power of two") != std::string::npos);
  errno = 0;
  CHECK(lockbox_aligned_alloc(zero, 16) == nullptr);
  CHECK(errno == EINVAL);
}

TEST_CASE("impossible sizes fail with ENOMEM and a reason, and change nothing") {
  lockbox_stats before = stats_now();
  // volatile: the compiler rejects literal impossible sizes at build time (alloc_size).
  volatile std::size_t size_max = SIZE_MAX;
  errno = 0;
  CHECK(lockbox_malloc(size_max) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(std::string(lockbox_last_error()).find("lockbox_malloc") != std::string::npos);
  errno = 0;
  volatile std::size_t huge = SIZE_MAX / 2;
  CHECK(lockbox_calloc(huge, 3) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(std::string(lockbox_last_error()).find("overflow") != std::string::npos);
  errno = 0;
  CHECK(lockbox_aligned_alloc(4096, size_max - 10) == nullptr);
  CHECK(errno == ENOMEM);
  void* kept = lockbox_malloc(10);
  errno = 0;
  CHECK(lockbox_realloc(kept, size_max) == nullptr);
  CHECK(errno == ENOMEM);
  CHECK(lockbox_usable_size(kept) == 10);  // the old block is untouched
  lockbox_free(kept);
  lockbox_stats after = stats_now();
  CHECK(after.live_allocations == before.live_allocations);
  CHECK(after.in_use_bytes == before.in_use_bytes);
}

TEST_CASE("calloc memory is zero, even in slots used before") {
  for (int round = 0; round < 3; ++round) {
    auto* block = static_cast<unsigned char*>(lockbox_calloc(100, 7));
    REQUIRE(block != nullptr);
    for (int i = 0; i < 700; ++i) REQUIRE(block[i] == 0);
    std::memset(block, 0xff, 700);
    lockbox_free(block);
  }
}

TEST_CASE("freed memory reads back as zero") {
  auto* left = static_cast<unsigned char*>(lockbox_malloc(64));
  auto* secret = static_cast<unsigned char*>(lockbox_malloc(64));
  auto* right = static_cast<unsigned char*>(lockbox_malloc(64));
  std::memset(secret, 0x5c, 64);
  const void* secret_address = lockbox_test::address_kept(secret);
  lockbox_free(secret);
  CHECK(freed_memory_reads_zero(secret_address, 64 + 16));  // the canary is wiped too
  CHECK(left[0] == 0);  // neighbours untouched (and they were zero when handed out)
  lockbox_free(left);
  lockbox_free(right);
}

TEST_CASE("realloc keeps the contents and zeroes the old block") {
  auto* block = static_cast<unsigned char*>(lockbox_malloc(20));
  for (int i = 0; i < 20; ++i) block[i] = static_cast<unsigned char>(i + 1);
  auto* grown = static_cast<unsigned char*>(lockbox_realloc(block, 5000));
  REQUIRE(grown != nullptr);
  CHECK(freed_memory_reads_zero(block, 20));
  for (int i = 0; i < 20; ++i) CHECK(grown[i] == i + 1);
  CHECK(lockbox_usable_size(grown) == 5000);
  auto* large = static_cast<unsigned char*>(lockbox_realloc(grown, 300000));
  REQUIRE(large != nullptr);
  CHECK(large[19] == 20);
  auto* shrunk = static_cast<unsigned char*>(lockbox_realloc(large, 3));
  REQUIRE(shrunk != nullptr);
  CHECK(shrunk[0] == 1);
  CHECK(shrunk[2] == 3);
  void* minimal = lockbox_realloc(shrunk, 0);
  REQUIRE(minimal != nullptr);
  CHECK(lockbox_usable_size(minimal) == 0);
  lockbox_free(minimal);
  void* fresh = lockbox_realloc(nullptr, 40);
  CHECK(lockbox_usable_size(fresh) == 40);
  lockbox_free(fresh);
}

TEST_CASE("strdup and strndup copy into lockbox memory; NULL is EINVAL") {
  char* copy = lockbox_strdup("hunter2");
  REQUIRE(copy != nullptr);
  CHECK(std::string(copy) == "hunter2");
  CHECK(lockbox_owns(copy) == 1);
  char* prefix = lockbox_strndup("hunter2", 4);
  CHECK(std::string(prefix) == "hunt");
  lockbox_free(copy);
  lockbox_free(prefix);
  const char* volatile no_string = nullptr;  // declared nonnull: the compiler would refuse NULL
  errno = 0;
  CHECK(lockbox_strdup(no_string) == nullptr);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(lockbox_strndup(no_string, 3) == nullptr);
  CHECK(errno == EINVAL);
}

TEST_CASE("owns is 1 only for live lockbox pointers") {
  int on_stack = 0;
  void* ordinary = std::malloc(32);
  auto* mine = static_cast<char*>(lockbox_malloc(32));
  void* large = lockbox_malloc(100000);
  CHECK(lockbox_owns(mine) == 1);
  CHECK(lockbox_owns(large) == 1);
  CHECK(lockbox_owns(mine + 16) == 0);
  CHECK(lockbox_owns(&on_stack) == 0);
  CHECK(lockbox_owns(ordinary) == 0);
  CHECK(lockbox_owns(nullptr) == 0);
  const void* mine_address = lockbox_test::address_kept(mine);
  const void* large_address = lockbox_test::address_kept(large);
  lockbox_free(mine);
  lockbox_free(large);
  CHECK(lockbox_owns(mine_address) == 0);
  CHECK(lockbox_owns(large_address) == 0);
  std::free(ordinary);
}

TEST_CASE("policy: set, read back, and reject unknown values") {
  CHECK(lockbox_get_policy() == LOCKBOX_POLICY_STRICT);
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_BEST_EFFORT) == 0);
  CHECK(lockbox_get_policy() == LOCKBOX_POLICY_BEST_EFFORT);
  CHECK(lockbox_set_policy(LOCKBOX_POLICY_STRICT) == 0);
  errno = 0;
  CHECK(lockbox_set_policy(static_cast<lockbox_policy>(7)) == -1);
  CHECK(errno == EINVAL);
  CHECK(lockbox_get_policy() == LOCKBOX_POLICY_STRICT);
}

TEST_CASE("stats count live allocations and requested bytes exactly") {
  lockbox_stats before = stats_now();
  void* a = lockbox_malloc(10);
  void* b = lockbox_malloc(3000);
  // A large block of a page count no other test uses (84), so that it is a new mapping, not a
  // cached one (300,016 bytes had the 74 pages of the realloc test's 300,000, and came from the
  // cache when enough large frees ran between the two).
  void* c = lockbox_malloc(340016);
  lockbox_stats during = stats_now();
  CHECK(during.live_allocations == before.live_allocations + 3);
  CHECK(during.in_use_bytes == before.in_use_bytes + 343026);
  CHECK(during.reserved_bytes >= before.reserved_bytes + (340016 + 2 * 4096));
  lockbox_free(a);
  lockbox_free(b);
  lockbox_free(c);
  lockbox_stats after = stats_now();
  CHECK(after.live_allocations == before.live_allocations);
  CHECK(after.in_use_bytes == before.in_use_bytes);
}

TEST_CASE("locked_bytes is exactly what lockbox adds to the kernel's VmLck") {
  // Nothing else in this test process locks memory, so the two must agree at every step.
  auto agree = [] {
    return lockbox_test::vmlck_bytes() == static_cast<long long>(stats_now().locked_bytes);
  };
  CHECK(agree());
  std::vector<void*> blocks;
  std::mt19937 random(7);
  for (int i = 0; i < 3000; ++i) {
    blocks.push_back(lockbox_malloc(std::uniform_int_distribution<std::size_t>(1, 9000)(random)));
    if (i % 500 == 0) CHECK(agree());
  }
  blocks.push_back(lockbox_malloc(3 << 20));
  CHECK(agree());
  CHECK(stats_now().locked_bytes >= (3u << 20));
  for (std::size_t i = 0; i < blocks.size(); i += 2) lockbox_free(blocks[i]);
  CHECK(agree());
  for (std::size_t i = 1; i < blocks.size(); i += 2) lockbox_free(blocks[i]);
  CHECK(agree());
  CHECK(stats_now().peak_locked_bytes >= (3u << 20));
}

TEST_CASE("lockbox memory is locked in the kernel's own view") {
  void* small = lockbox_malloc(100);
  void* large = lockbox_malloc(200000);
  CHECK(lockbox_test::kernel_says_locked(small, 100));
  CHECK(lockbox_test::kernel_says_locked(large, 200000));
  lockbox_free(small);
  lockbox_free(large);
}

TEST_CASE("two threads hammering mixed sizes keep every byte they wrote") {
  auto hammer = [](unsigned seed, std::size_t* errors) {
    std::mt19937 random(seed);
    std::vector<std::pair<unsigned char*, std::size_t>> live;
    for (int step = 0; step < 60000; ++step) {
      bool allocate = live.size() < 200 && (live.empty() || random() % 3 != 0);
      if (allocate) {
        // Log-uniform 16 B .. 16 KiB, so both the small and the large heap work.
        std::size_t size = std::size_t{1} << (4 + random() % 11);
        size += random() % size;
        auto* block = static_cast<unsigned char*>(lockbox_malloc(size));
        if (block == nullptr) {
          ++*errors;
          continue;
        }
        std::memset(block, static_cast<int>(seed + size), size);
        live.emplace_back(block, size);
      } else {
        std::size_t victim = random() % live.size();
        auto [block, size] = live[victim];
        for (std::size_t i = 0; i < size; ++i) {
          if (block[i] != static_cast<unsigned char>(seed + size)) {
            ++*errors;
            break;
          }
        }
        lockbox_free(block);
        live[victim] = live.back();
        live.pop_back();
      }
    }
    for (auto [block, size] : live) lockbox_free(block);
  };
  std::size_t errors_a = 0, errors_b = 0;
  lockbox_stats before = stats_now();
  std::thread a(hammer, 1u, &errors_a);
  std::thread b(hammer, 2u, &errors_b);
  a.join();
  b.join();
  CHECK(errors_a == 0);
  CHECK(errors_b == 0);
  CHECK(stats_now().live_allocations == before.live_allocations);
}

TEST_CASE("blocks freed by another thread, with more threads than shards") {
  // Six threads share four shards; each frees what its neighbour allocated.
  constexpr int kThreads = 6;
  constexpr int kRounds = 2000;
  std::vector<std::vector<unsigned char*>> handed(kThreads);
  std::vector<std::thread> threads;
  std::atomic<int> ready{0};
  std::size_t errors = 0;
  std::mutex errors_lock;
  lockbox_stats before = stats_now();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        auto* block = static_cast<unsigned char*>(lockbox_malloc(16 + (i * 37) % 3000));
        if (block != nullptr) block[0] = static_cast<unsigned char>(t);
        handed[t].push_back(block);
      }
      ready.fetch_add(1);
      while (ready.load() < kThreads) std::this_thread::yield();
      std::size_t bad = 0;
      for (unsigned char* block : handed[(t + 1) % kThreads]) {
        bad += block == nullptr || block[0] != static_cast<unsigned char>((t + 1) % kThreads);
        lockbox_free(block);
      }
      std::lock_guard<std::mutex> guard(errors_lock);
      errors += bad;
    });
  }
  for (auto& thread : threads) thread.join();
  CHECK(errors == 0);
  CHECK(stats_now().live_allocations == before.live_allocations);
}

TEST_CASE("the backend LOCKBOX_BACKEND names is the one in use") {
  const char* chosen = std::getenv("LOCKBOX_BACKEND");
  std::string backend = chosen == nullptr ? "anon" : chosen;
  // Does this kernel offer memfd_secret at all? (auto falls back when it does not.)
  long fd = syscall(447, 0);
  bool kernel_has_secretmem = fd >= 0;
  if (fd >= 0) close(static_cast<int>(fd));
  void* key = lockbox_malloc(32);
  lockbox_stats stats = stats_now();
  CAPTURE(backend);
  if (backend == "anon") CHECK(stats.secretmem_bytes == 0);
  if (backend == "secretmem" || (backend == "auto" && kernel_has_secretmem)) {
    CHECK(stats.secretmem_bytes > 0);
  }
  CHECK(lockbox_test::vmlck_bytes() == static_cast<long long>(stats.locked_bytes));
  lockbox_free(key);
}

TEST_CASE("a large alignment costs address space, not locked memory") {
  lockbox_stats before = stats_now();
  constexpr std::size_t kAlignment = std::size_t{16} << 20;
  auto* aligned = static_cast<unsigned char*>(lockbox_aligned_alloc(kAlignment, 16));
  REQUIRE(aligned != nullptr);
  CHECK(reinterpret_cast<std::uintptr_t>(aligned) % kAlignment == 0);
  std::memset(aligned, 0x42, 16);
  lockbox_stats during = stats_now();
  // The object's page, and the one before it for its leading canary at most.
  CHECK(during.locked_bytes - before.locked_bytes <= 2 * 4096);
  CHECK(lockbox_test::vmlck_bytes() == static_cast<long long>(during.locked_bytes));
  // The padding before it stays reserved: an underflow far below the object faults.
  CHECK(lockbox_test::page_protection(aligned - 2 * 4096) == "---");
  lockbox_free(aligned);
  // Its pages may wait in the large blocks' cache (still locked, and counted there).
  lockbox_stats after = stats_now();
  CHECK(after.locked_bytes - after.cached_large_bytes ==
        before.locked_bytes - before.cached_large_bytes);
}

TEST_CASE("the options are documented from the list lockbox reads") {
  char buffer[1024];
  std::size_t needed = lockbox_describe_options(buffer, sizeof buffer);
  CHECK(needed < sizeof buffer);
  CHECK(std::string(buffer).find("LOCKBOX_POLICY=strict | best-effort (default: strict)") !=
        std::string::npos);
  char tiny[8];
  CHECK(lockbox_describe_options(tiny, sizeof tiny) == needed);
  CHECK(std::strlen(tiny) == 7);

  // Every value the documentation names is one the parser takes, and the default is one of
  // them: the text and the parser cannot drift apart.
  std::istringstream lines(buffer);
  std::string line;
  int options = 0;
  while (std::getline(lines, line)) {
    CAPTURE(line);
    std::size_t equals = line.find('='), open = line.find(" (default: ");
    REQUIRE(equals != std::string::npos);
    REQUIRE(open != std::string::npos);
    std::string variable = line.substr(0, equals);
    std::string values = line.substr(equals + 1, open - equals - 1);
    std::string fallback = line.substr(open + 11, line.find(')', open) - open - 11);
    bool default_listed = false;
    for (std::size_t at = 0; at <= values.size();) {
      std::size_t bar = values.find(" | ", at);
      std::string value = values.substr(at, bar == std::string::npos ? bar : bar - at);
      int parsed = -1;
      CHECK(lockbox::options::parse(variable.c_str(), value.c_str(), &parsed));
      default_listed |= value == fallback;
      if (bar == std::string::npos) break;
      at = bar + 3;
    }
    CHECK(default_listed);
    int parsed = -1;
    CHECK_FALSE(lockbox::options::parse(variable.c_str(), "no-such-value", &parsed));
    ++options;
  }
  CHECK(options == 2);
}

TEST_CASE("options come from the environment; an unknown value keeps the default, out loud") {
  using lockbox::budget::Policy;
  using lockbox::pages::Backend;
  // The suite's own setting (the secretmem setup sets LOCKBOX_BACKEND) is put back after.
  const char* policy_before = std::getenv("LOCKBOX_POLICY");
  const char* backend_before = std::getenv("LOCKBOX_BACKEND");
  std::string saved_policy = policy_before ? policy_before : "";
  std::string saved_backend = backend_before ? backend_before : "";
  setenv("LOCKBOX_POLICY", "best-effort", 1);
  setenv("LOCKBOX_BACKEND", "auto", 1);
  CHECK(lockbox::options::policy_from_environment() == Policy::kBestEffort);
  CHECK(lockbox::options::backend_from_environment() == Backend::kAuto);
  setenv("LOCKBOX_BACKEND", "secret-mem", 1);
  lockbox_test::start_capturing_stderr();
  Backend backend = lockbox::options::backend_from_environment();
  std::string warning = lockbox_test::stop_capturing_stderr();
  CHECK(backend == Backend::kAnonymous);
  CHECK(warning ==
        "lockbox: warning: LOCKBOX_BACKEND must be one of anon, secretmem, auto; using anon\n");
  unsetenv("LOCKBOX_POLICY");
  unsetenv("LOCKBOX_BACKEND");
  CHECK(lockbox::options::policy_from_environment() == Policy::kStrict);
  if (policy_before != nullptr) setenv("LOCKBOX_POLICY", saved_policy.c_str(), 1);
  if (backend_before != nullptr) setenv("LOCKBOX_BACKEND", saved_backend.c_str(), 1);
}

TEST_CASE("the library's version is the header's") {
  CHECK(std::string(lockbox_version()) == LOCKBOX_VERSION_STRING);
  CHECK(LOCKBOX_VERSION_NUMBER ==
        LOCKBOX_VERSION_MAJOR * 10000 + LOCKBOX_VERSION_MINOR * 100 + LOCKBOX_VERSION_PATCH);
  std::string parts = std::to_string(LOCKBOX_VERSION_MAJOR) + "." +
                      std::to_string(LOCKBOX_VERSION_MINOR) + "." +
                      std::to_string(LOCKBOX_VERSION_PATCH);
  CHECK(parts == LOCKBOX_VERSION_STRING);
}

TEST_CASE("stats fill as much of the struct as the caller knows, and zero what lockbox does not") {
  void* held = lockbox_malloc(40);
  REQUIRE(held != nullptr);
  lockbox_stats now = stats_now();
  // A program built against an older, shorter lockbox_stats: only its prefix is written.
  struct {
    lockbox_stats first;
    unsigned char after[16];
  } older;
  std::memset(&older, 0xee, sizeof older);
  CHECK(lockbox_get_stats(&older.first, LOCKBOX_STATS_MIN_SIZE) == LOCKBOX_STATS_MIN_SIZE);
  CHECK(older.first.live_allocations == now.live_allocations);
  CHECK(older.first.in_use_bytes == now.in_use_bytes);
  for (unsigned char byte : older.after) CHECK(byte == 0xee);
  // A program built against a newer, longer one: the fields this library lacks read 0.
  struct {
    lockbox_stats known;
    std::size_t newer[3];
  } newer;
  std::memset(&newer, 0xee, sizeof newer);
  CHECK(lockbox_get_stats(&newer.known, sizeof newer) == sizeof(lockbox_stats));
  CHECK(newer.known.live_allocations == now.live_allocations);
  for (std::size_t field : newer.newer) CHECK(field == 0);
  // Too small to be any lockbox_stats, or nowhere to write: EINVAL, and nothing written.
  lockbox_stats untouched;
  std::memset(&untouched, 0xee, sizeof untouched);
  errno = 0;
  CHECK(lockbox_get_stats(&untouched, LOCKBOX_STATS_MIN_SIZE - 1) == 0);
  CHECK(errno == EINVAL);
  CHECK(std::string(lockbox_last_error()).find("smaller than any lockbox_stats") !=
        std::string::npos);
  CHECK(reinterpret_cast<unsigned char*>(&untouched)[0] == 0xee);
  lockbox_stats* volatile nowhere = nullptr;  // declared nonnull: the compiler would refuse NULL
  errno = 0;
  CHECK(lockbox_get_stats(nowhere, sizeof(lockbox_stats)) == 0);
  CHECK(errno == EINVAL);
  lockbox_free(held);
}
