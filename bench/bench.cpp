// SPDX-License-Identifier: ISC
// lockbox's benchmark: every peer, the same workloads, one run, one table. Each peer runs in a
// forked child of its own (peers keep global state, and one peer's heap must not slow another),
// and the density measurement runs as an ordinary user with RLIMIT_MEMLOCK = 8 MiB.
//
// Usage: lockbox_bench [--quick] [--rounds N] [--only NAME] [--out DIR]
//        lockbox_bench --steady N
//        lockbox_bench --time PEER WORKLOAD
//   --quick      fewer repetitions and one round (a smoke test)
//   --rounds N   run every peer N times, in turn (default 3): the machine's drift then falls on
//                all peers alike, and each figure is the median over the rounds
//   --only NAME  run only the peers whose name starts with NAME
//   --out DIR    write results.md and results.csv into DIR (default: print only)
//   --steady N   lockbox only, in this process: warm up, then N operations of each workload;
//                run it under strace -c with two values of N to see what steady state costs
//   --time PEER WORKLOAD   one workload (pair, live, mixed, mixed2, bulk1000, bulk20000,
//                bulk150000, large16k, large256k, large1m, threads8, threads32) of the first
//                peer whose name starts with PEER, in this process: prints its ns per
//                operation alone (for bench/variants/run.sh, which times builds of lockbox
//                against each other)
#include <lockbox/lockbox.h>
#include <sodium.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "peers.hpp"
#include "support/process.hpp"

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeapBytes = 8u << 20;  // for the peers that need a heap sized up front
constexpr std::size_t kLiveKeys = 20000;
constexpr std::size_t kMixedLive = 512;
constexpr std::size_t kDensityCap = 200000;
constexpr std::size_t kDensityLimit = 8u << 20;

int g_repetitions = 7;
int g_rounds = 3;

void clobber(void* p) { __asm__ __volatile__("" : : "r"(p) : "memory"); }

double median(std::vector<double> values) {
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

// The median over the rounds, or -1 (failed) if any round failed.
double median_of_rounds(const std::vector<double>& values) {
  return *std::min_element(values.begin(), values.end()) < 0 ? -1 : median(values);
}

// Runs `body(iterations)` (which returns false on an allocation failure) with enough iterations
// for ~100 ms, g_repetitions times; returns the median ns per iteration, or -1 on failure.
template <typename Body>
double measure(Body body) {
  std::size_t iterations = 64;
  for (;;) {
    auto start = Clock::now();
    if (!body(iterations)) return -1;
    double ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
    if (ms > 20 || iterations >= (1u << 24)) break;
    iterations *= 4;
  }
  auto once = Clock::now();
  body(iterations);
  double ms = std::chrono::duration<double, std::milli>(Clock::now() - once).count();
  iterations =
      std::max<std::size_t>(16, static_cast<std::size_t>(iterations * 100 / std::max(ms, 1.0)));
  std::vector<double> samples;
  for (int r = 0; r < g_repetitions; ++r) {
    auto start = Clock::now();
    if (!body(iterations)) return -1;
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                      static_cast<double>(iterations));
  }
  return median(samples);
}

double pair_32(const bench::Peer& peer) {
  return measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      void* key = peer.allocate(32);
      if (key == nullptr) return false;
      std::memset(key, static_cast<int>(i), 32);
      clobber(key);
      peer.release(key, 32);
    }
    return true;
  });
}

double live_20k(const bench::Peer& peer) {
  std::vector<void*> keys(kLiveKeys, nullptr);
  for (auto& key : keys) {
    if ((key = peer.allocate(32)) == nullptr) return -1;
    std::memset(key, 1, 32);
  }
  std::mt19937 random(42);
  std::vector<std::uint32_t> victims(1 << 16);
  for (auto& v : victims) v = random() % kLiveKeys;
  double ns = measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      std::uint32_t v = victims[i & (victims.size() - 1)];
      peer.release(keys[v], 32);
      if ((keys[v] = peer.allocate(32)) == nullptr) return false;
      std::memset(keys[v], static_cast<int>(i), 32);
    }
    return true;
  });
  for (void* key : keys) {
    if (key != nullptr) peer.release(key, 32);
  }
  return ns;
}

// Mixed sizes, log-uniform in 16 B .. 4 KiB, 512 live, every byte written.
struct MixedPlan {
  std::vector<std::uint32_t> sizes;
  std::vector<std::uint32_t> victims;
  explicit MixedPlan(unsigned seed) : sizes(1 << 16), victims(1 << 16) {
    std::mt19937 random(seed);
    std::uniform_real_distribution<double> exponent(std::log(16.0), std::log(4096.0));
    for (auto& s : sizes) s = static_cast<std::uint32_t>(std::exp(exponent(random)));
    for (auto& v : victims) v = random() % kMixedLive;
  }
};

bool mixed_ops(const bench::Peer& peer, const MixedPlan& plan, std::size_t n,
               std::vector<std::pair<void*, std::size_t>>& live) {
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t k = i & (plan.sizes.size() - 1);
    auto& [block, size] = live[plan.victims[k]];
    if (block != nullptr) peer.release(block, size);
    size = plan.sizes[k];
    if ((block = peer.allocate(size)) == nullptr) return false;
    std::memset(block, static_cast<int>(i), size);
  }
  return true;
}

void release_all(const bench::Peer& peer, std::vector<std::pair<void*, std::size_t>>& live) {
  for (auto& [block, size] : live) {
    if (block != nullptr) peer.release(block, size);
    block = nullptr;
  }
}

double mixed(const bench::Peer& peer) {
  MixedPlan plan(7);
  std::vector<std::pair<void*, std::size_t>> live(kMixedLive, {nullptr, 0});
  double ns = measure([&](std::size_t n) { return mixed_ops(peer, plan, n, live); });
  release_all(peer, live);
  return ns;
}

// `count` long-lived threads (as a server's workers are), each running work(t, n) for every
// measured batch of n operations (false: an allocation failed), then leave(t) before it exits.
// ns per operation over all threads' operations (wall time), or -1. Threads that wait sleep
// (futex), never spin: the machine may have only two cores, and a spinning waiter would take
// time from the threads being measured.
template <typename Work, typename Leave>
double measure_in_threads(int count, Work work, Leave leave) {
  std::atomic<std::size_t> round{0}, done{0}, operations{0};
  std::atomic<bool> ok{true}, stop{false};
  auto worker = [&](int t) {
    for (std::size_t seen = 0;;) {
      round.wait(seen);
      if (stop.load()) break;
      seen = round.load();
      if (!work(t, operations.load())) ok = false;
      done.fetch_add(1);
      done.notify_one();
    }
    leave(t);
  };
  std::vector<std::thread> threads;
  auto finish = [&] {
    stop = true;
    round.fetch_add(1);
    round.notify_all();
    for (auto& thread : threads) thread.join();
  };
  // A peer that exhausted the process's mappings (libsodium: 4 per allocation) leaves no room
  // for a thread's stack: report the workload as failed.
  try {
    for (int t = 0; t < count; ++t) threads.emplace_back(worker, t);
  } catch (const std::system_error&) {
    finish();
    return -1;
  }
  double ns = measure([&](std::size_t n) {
    done = 0;
    operations = n;
    round.fetch_add(1);
    round.notify_all();
    for (std::size_t finished = done.load(); finished < static_cast<std::size_t>(count);
         finished = done.load()) {
      done.wait(finished);
    }
    return ok.load();
  });
  finish();
  return ns < 0 ? ns : ns / count;  // n operations on each thread
}

// Two threads, each with its own 512 live blocks: ns per operation of the pair, so that the
// single-thread figure divided by this one is the speed-up.
double mixed_two_threads(const bench::Peer& peer) {
  MixedPlan plans[2] = {MixedPlan(11), MixedPlan(13)};
  std::vector<std::pair<void*, std::size_t>> live[2] = {
      std::vector<std::pair<void*, std::size_t>>(kMixedLive, {nullptr, 0}),
      std::vector<std::pair<void*, std::size_t>>(kMixedLive, {nullptr, 0})};
  return measure_in_threads(
      2, [&](int t, std::size_t n) { return mixed_ops(peer, plans[t], n, live[t]); },
      [&](int t) { release_all(peer, live[t]); });
}

// ---------------------------------------------------------------------------------------------
// Constant cost: what an operation costs as the process grows (more keys, other locked memory,
// many mappings, large blocks, more threads than cores).
// ---------------------------------------------------------------------------------------------

constexpr std::size_t kBulkKeys[] = {1000, 20000, 150000};
constexpr double kTooSlow = -2;  // a round took longer than kRoundDeadline: not repeated
constexpr auto kRoundDeadline = std::chrono::seconds(3);

// Allocates `keys` 32-byte keys (each written), then frees them all: ns per operation (the
// allocations and the frees), the median of the repetitions, after one round of warm-up.
double bulk(const bench::Peer& peer, std::size_t keys) {
  std::vector<void*> live(keys, nullptr);
  auto round = [&](bool deadline) {
    auto start = Clock::now();
    std::size_t made = 0;
    bool ok = true;
    for (; made < keys; ++made) {
      if ((live[made] = peer.allocate(32)) == nullptr) {
        ok = false;
        break;
      }
      std::memset(live[made], static_cast<int>(made), 32);
      if (deadline && (made & 255) == 0 && Clock::now() - start > kRoundDeadline) {
        ++made;
        ok = false;
        break;
      }
    }
    for (std::size_t i = 0; i < made; ++i) peer.release(live[i], 32);
    return ok;
  };
  auto start = Clock::now();
  if (!round(true)) return Clock::now() - start > kRoundDeadline ? kTooSlow : -1;
  if (Clock::now() - start > kRoundDeadline) return kTooSlow;
  std::vector<double> samples;
  for (int r = 0; r < g_repetitions; ++r) {
    auto begin = Clock::now();
    if (!round(false)) return -1;
    samples.push_back(std::chrono::duration<double, std::nano>(Clock::now() - begin).count() /
                      static_cast<double>(2 * keys));
  }
  return median(samples);
}

// alloc + write every byte + free of one block of `bytes`.
double large_block(const bench::Peer& peer, std::size_t bytes) {
  return measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      void* block = peer.allocate(bytes);
      if (block == nullptr) return false;
      std::memset(block, static_cast<int>(i), bytes);
      clobber(block);
      peer.release(block, bytes);
    }
    return true;
  });
}

// `count` threads on this machine's cores, each allocating sizes log-uniform in 16 B .. 64 KiB
// (every byte written); half the blocks go through a shared array and are freed by whichever
// thread finds them there, the other half wait in a thread's own 8 before it frees them. ns per
// operation: wall time over all threads' operations.
double oversubscribed(const bench::Peer& peer, int count) {
  constexpr std::size_t kShared = 128, kOwn = 8;
  struct Block {
    void* pointer;
    std::size_t size;
  };
  // A block handed through the array carries its size in its first bytes.
  std::vector<std::atomic<void*>> shared(kShared);
  struct Worker {
    std::vector<std::uint32_t> sizes;
    std::vector<Block> own;
    std::mt19937 random;
  };
  std::vector<Worker> workers(static_cast<std::size_t>(count));
  for (int t = 0; t < count; ++t) {
    Worker& w = workers[static_cast<std::size_t>(t)];
    w.random.seed(static_cast<unsigned>(101 + t));
    std::uniform_real_distribution<double> exponent(std::log(16.0), std::log(65536.0));
    w.sizes.resize(1 << 14);
    for (auto& size : w.sizes) size = static_cast<std::uint32_t>(std::exp(exponent(w.random)));
  }
  auto release_shared = [&](void* pointer) {
    std::size_t size;
    std::memcpy(&size, pointer, sizeof size);
    peer.release(pointer, size);
  };
  auto work = [&](int t, std::size_t n) {
    Worker& w = workers[static_cast<std::size_t>(t)];
    for (std::size_t i = 0; i < n; ++i) {
      std::size_t size = w.sizes[i & (w.sizes.size() - 1)];
      void* pointer = peer.allocate(size);
      if (pointer == nullptr) return false;
      std::memset(pointer, static_cast<int>(i), size);
      if (w.random() & 1) {
        std::memcpy(pointer, &size, sizeof size);
        if (void* other = shared[w.random() % kShared].exchange(pointer)) release_shared(other);
      } else {
        if (w.own.size() == kOwn) {
          std::size_t victim = w.random() % kOwn;
          peer.release(w.own[victim].pointer, w.own[victim].size);
          w.own[victim] = {pointer, size};
        } else {
          w.own.push_back({pointer, size});
        }
      }
    }
    return true;
  };
  auto leave = [&](int t) {
    for (Block& block : workers[static_cast<std::size_t>(t)].own) {
      peer.release(block.pointer, block.size);
    }
  };
  double ns = measure_in_threads(count, work, leave);
  for (auto& slot : shared) {
    if (void* pointer = slot.exchange(nullptr)) release_shared(pointer);
  }
  return ns;
}

// lock + unlock of a 256-byte stack buffer, by lockbox, by libsodium, and by the bare system
// calls (the floor: what mlock and munlock cost the kernel).
struct LockRow {
  const char* name;
  int (*lock)(void*, std::size_t);
  int (*unlock)(void*, std::size_t);
};

const std::vector<LockRow>& lock_rows() {
  static const std::vector<LockRow> rows = {
      {"lockbox_lock + lockbox_unlock", [](void* p, std::size_t n) { return lockbox_lock(p, n); },
       [](void* p, std::size_t n) { return lockbox_unlock(p, n); }},
      {"libsodium sodium_mlock + sodium_munlock", [](void* p, std::size_t n) { return sodium_mlock(p, n); },
       [](void* p, std::size_t n) { return sodium_munlock(p, n); }},
      {"bare mlock + munlock system calls",
       [](void* p, std::size_t n) { return static_cast<int>(syscall(SYS_mlock, p, n)); },
       [](void* p, std::size_t n) { return static_cast<int>(syscall(SYS_munlock, p, n)); }},
  };
  return rows;
}

double lock_stack_buffer(const LockRow& row) {
  unsigned char buffer[256];
  std::memset(buffer, 0x5a, sizeof buffer);
  return measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (row.lock(buffer, sizeof buffer) != 0) return false;
      clobber(buffer);
      if (row.unlock(buffer, sizeof buffer) != 0) return false;
    }
    return true;
  });
}

// How many live 32-byte keys end up in locked memory, as an ordinary user with 8 MiB.
std::string density(const bench::Peer& peer) {
  std::string why = lockbox_test::become_unprivileged(kDensityLimit);
  if (!why.empty()) return "error " + why;
  peer.start(kDensityLimit);
  std::size_t maps_before = lockbox_test::mapping_count();
  std::vector<void*> keys;
  keys.reserve(kDensityCap);
  while (keys.size() < kDensityCap) {
    void* key = peer.allocate(32);
    if (key == nullptr) break;
    std::memset(key, 0x33, 32);
    keys.push_back(key);
  }
  std::size_t maps = lockbox_test::mapping_count() - maps_before;
  auto ranges = lockbox_test::locked_ranges();
  std::size_t locked = 0;
  for (void* key : keys) {
    auto address = reinterpret_cast<std::uintptr_t>(key);
    auto after =
        std::upper_bound(ranges.begin(), ranges.end(), std::make_pair(address, UINTPTR_MAX));
    locked += after != ranges.begin() && std::prev(after)->second >= address + 32;
  }
  long long vmlck = lockbox_test::vmlck_bytes();
  std::ostringstream out;
  out << "allocated " << keys.size() << " locked " << locked << " mappings " << maps
      << " vmlck_kib " << vmlck / 1024;
  return out.str();
}

// A peer's figures for `what` ("timing" or "density"), one "key value" line each on `fd`, as
// soon as each exists, so that a peer that dies later still reports the earlier ones.
void measure(const std::string& what, const bench::Peer& peer, int fd) {
  auto report = [&](const std::string& key, const std::string& value) {
    std::string line = key + " " + value + "\n";
    if (write(fd, line.data(), line.size()) < 0) _exit(1);
  };
  if (peer.preload != nullptr) {
    // The peer is only what it claims if its library really replaced malloc here.
    std::ifstream maps("/proc/self/maps");
    std::string line;
    bool loaded = false;
    while (std::getline(maps, line)) loaded |= line.find(peer.preload) != std::string::npos;
    if (!loaded) {
      report("started", "0");
      return;
    }
  }
  if (what == "density") {
    report("density", density(peer));
  } else if (what == "cost") {
    report("started", peer.start(kHeapBytes) ? "1" : "0");
    for (std::size_t keys : kBulkKeys) report("bulk" + std::to_string(keys), std::to_string(bulk(peer, keys)));
    report("large16k", std::to_string(large_block(peer, 16 << 10)));
    report("large256k", std::to_string(large_block(peer, 256 << 10)));
    report("large1m", std::to_string(large_block(peer, 1 << 20)));
    report("threads8", std::to_string(oversubscribed(peer, 8)));
    report("threads32", std::to_string(oversubscribed(peer, 32)));
  } else if (what == "crowded") {
    report("started", peer.start(kHeapBytes) ? "1" : "0");
    bool crowded = lockbox_test::crowd_the_process();
    report("bulk20000crowded", std::to_string(crowded ? bulk(peer, 20000) : -1));
  } else {
    report("started", peer.start(kHeapBytes) ? "1" : "0");
    report("pair", std::to_string(pair_32(peer)));
    report("live", std::to_string(live_20k(peer)));
    report("mixed", std::to_string(mixed(peer)));
    report("mixed2", std::to_string(mixed_two_threads(peer)));
  }
}

// Runs measure() in a forked child of its own (peers keep global state), or, for a peer that
// preloads its allocator, in a fresh process of this program started with LD_PRELOAD.
std::map<std::string, std::string> run_in_child(const std::string& what, const bench::Peer& peer) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return {};
  pid_t pid = fork();
  if (pid == 0) {
    close(pipe_fds[0]);
    if (peer.preload != nullptr) {
      dup2(pipe_fds[1], STDOUT_FILENO);
      setenv("LD_PRELOAD", peer.preload, 1);
      execl("/proc/self/exe", "lockbox_bench", "--child", peer.name, what.c_str(),
            static_cast<char*>(nullptr));
      _exit(127);
    }
    measure(what, peer, pipe_fds[1]);
    _exit(0);
  }
  close(pipe_fds[1]);
  std::string text;
  char buffer[512];
  ssize_t got;
  while ((got = read(pipe_fds[0], buffer, sizeof buffer)) > 0)
    text.append(buffer, static_cast<std::size_t>(got));
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  std::map<std::string, std::string> result;
  std::istringstream lines(text);
  std::string line;
  while (std::getline(lines, line)) {
    auto space = line.find(' ');
    if (space != std::string::npos) result[line.substr(0, space)] = line.substr(space + 1);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) result["crashed"] = std::to_string(status);
  return result;
}

std::string machine_description() {
  std::ifstream cpuinfo("/proc/cpuinfo");
  std::string line, model = "unknown CPU";
  while (std::getline(cpuinfo, line)) {
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 2);
      break;
    }
  }
  std::ifstream release("/proc/sys/kernel/osrelease");
  std::string kernel;
  std::getline(release, kernel);
  return model + ", " + std::to_string(std::thread::hardware_concurrency()) + " cores, Linux " +
         kernel;
}

std::string format_ns(double ns) {
  if (ns == kTooSlow) return "too slow (a round > 3 s)";
  if (ns < 0) return "failed";
  char text[32];
  std::snprintf(text, sizeof text, ns < 100 ? "%.1f" : "%.0f", ns);
  return text;
}

std::string format_ratio(double ns, double base) {
  if (ns < 0 || base <= 0) return "—";
  char text[32];
  std::snprintf(text, sizeof text, "%.2fx", ns / base);
  return text;
}

}  // namespace

// Warm-up, then `operations` of each single-thread workload, for counting system calls.
int steady_state(std::size_t operations) {
  const bench::Peer& lockbox = bench::available_peers().front();
  MixedPlan plan(7);
  std::vector<std::pair<void*, std::size_t>> live(kMixedLive, {nullptr, 0});
  std::vector<void*> keys(kLiveKeys);
  for (auto& key : keys) key = lockbox.allocate(32);
  for (std::size_t round = 0; round < 2; ++round) {
    std::size_t n = round == 0 ? 100000 : operations;  // round 0 warms up
    for (std::size_t i = 0; i < n; ++i) {
      void* key = lockbox.allocate(32);
      clobber(key);
      lockbox.release(key, 32);
      std::size_t v = (i * 7919) % kLiveKeys;
      lockbox.release(keys[v], 32);
      keys[v] = lockbox.allocate(32);
    }
    if (!mixed_ops(lockbox, plan, n, live)) return 1;
  }
  release_all(lockbox, live);
  for (void* key : keys) lockbox.release(key, 32);
  std::printf("steady state: %zu operations of each workload done\n", operations);
  return 0;
}

// ---------------------------------------------------------------------------------------------
// Sealed secrets: what one use of a sealed secret costs (open a view, read it, close it), beside
// two other ways of keeping a secret unreadable at rest.
// ---------------------------------------------------------------------------------------------

constexpr std::size_t kPreKeyBytes = 16 * 1024;

// lockbox_sealed_open + read + lockbox_sealed_close (or the writable view, which re-seals).
double sealed_use(std::size_t size, bool writable) {
  std::vector<unsigned char> secret(size, 0x5a);
  lockbox_sealed* box = lockbox_seal(secret.data(), size);
  if (box == nullptr) return -1;
  double ns = measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto* view = static_cast<unsigned char*>(writable ? lockbox_sealed_open_rw(box)
                                                        : const_cast<void*>(lockbox_sealed_open(box)));
      if (view == nullptr) return false;
      clobber(view);
      lockbox_sealed_close(box, view);
    }
    return true;
  });
  lockbox_sealed_free(box);
  return ns;
}

// OpenSSH's shielding of private keys (sshkey_shield_private / sshkey_unshield_private): the
// key is encrypted under a hash of a 16 KiB random pre-key, and every use hashes the pre-key
// again (SHA-512), decrypts into fresh memory, and wipes the hash and, after use, the plaintext.
// OpenSSH decrypts with AES-256-CTR; here the same XChaCha20-Poly1305 as lockbox's boxes, so
// that the difference is the key derivation.
double openssh_unshield(std::size_t size) {
  auto* pre_key = static_cast<unsigned char*>(lockbox_malloc(kPreKeyBytes));
  auto* hash = static_cast<unsigned char*>(lockbox_malloc(crypto_hash_sha512_BYTES));
  std::vector<unsigned char> sealed(size + crypto_aead_xchacha20poly1305_ietf_ABYTES);
  unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {};
  if (pre_key == nullptr || hash == nullptr) return -1;
  randombytes_buf(pre_key, kPreKeyBytes);
  {
    std::vector<unsigned char> secret(size, 0x5a);
    crypto_hash_sha512(hash, pre_key, kPreKeyBytes);
    crypto_aead_xchacha20poly1305_ietf_encrypt(sealed.data(), nullptr, secret.data(), size,
                                               nullptr, 0, nullptr, nonce, hash);
  }
  double ns = measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto* plain = static_cast<unsigned char*>(lockbox_malloc(size));
      if (plain == nullptr) return false;
      crypto_hash_sha512(hash, pre_key, kPreKeyBytes);
      if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, nullptr, nullptr, sealed.data(),
                                                     sealed.size(), nullptr, 0, nonce,
                                                     hash) != 0)
        return false;
      sodium_memzero(hash, crypto_hash_sha512_BYTES);
      clobber(plain);
      lockbox_free(plain);
    }
    return true;
  });
  lockbox_free(hash);
  lockbox_free(pre_key);
  return ns;
}

// A guarded secret (lockbox_guarded_alloc) no-access at rest: each use is two mprotect calls.
double guarded_use(std::size_t size) {
  auto* secret = static_cast<unsigned char*>(lockbox_guarded_alloc(size));
  if (secret == nullptr || lockbox_protect(secret, LOCKBOX_NOACCESS) != 0) return -1;
  double ns = measure([&](std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (lockbox_protect(secret, LOCKBOX_READONLY) != 0) return false;
      clobber(secret);
      if (lockbox_protect(secret, LOCKBOX_NOACCESS) != 0) return false;
    }
    return true;
  });
  lockbox_free(secret);
  return ns;
}

struct SealedRow {
  const char* name;
  double (*use)(std::size_t);
};

const std::vector<SealedRow>& sealed_rows() {
  static const std::vector<SealedRow> rows = {
      {"lockbox sealed box: open, read, close", [](std::size_t size) { return sealed_use(size, false); }},
      {"lockbox sealed box: writable view (re-sealed on close)",
       [](std::size_t size) { return sealed_use(size, true); }},
      {"OpenSSH's scheme: SHA-512 of a 16 KiB pre-key per use, then decrypt", &openssh_unshield},
      {"lockbox guarded secret: mprotect read-only, then no-access", &guarded_use},
  };
  return rows;
}

// Every row, g_rounds times in turn, in a child of its own; the medians as Markdown.
std::string sealed_table() {
  std::vector<std::vector<double>> small(sealed_rows().size()), record(sealed_rows().size());
  for (int round = 0; round < g_rounds; ++round) {
    std::fprintf(stderr, "bench: round %d of %d: sealed secrets\n", round + 1, g_rounds);
    for (std::size_t r = 0; r < sealed_rows().size(); ++r) {
      int pipe_fds[2];
      if (pipe(pipe_fds) != 0) return "";
      pid_t pid = fork();
      if (pid == 0) {
        close(pipe_fds[0]);
        double figures[2] = {sealed_rows()[r].use(32), sealed_rows()[r].use(4096)};
        if (write(pipe_fds[1], figures, sizeof figures) != sizeof figures) _exit(1);
        _exit(0);
      }
      close(pipe_fds[1]);
      double figures[2] = {-1, -1};
      if (read(pipe_fds[0], figures, sizeof figures) != sizeof figures) figures[0] = figures[1] = -1;
      close(pipe_fds[0]);
      waitpid(pid, nullptr, 0);
      small[r].push_back(figures[0]);
      record[r].push_back(figures[1]);
    }
  }
  std::ostringstream md;
  md << "\n### Sealed secrets: one use (open, read, close)\n\n"
     << "ns per use, the median of " << g_rounds << " round(s); ratios are to OpenSSH's scheme "
     << "in the same run.\n\n"
     << "| way of keeping the secret | 32 B key | 4 KiB record |\n|---|---|---|\n";
  double base_small = median_of_rounds(small[2]), base_record = median_of_rounds(record[2]);
  for (std::size_t r = 0; r < sealed_rows().size(); ++r) {
    double a = median_of_rounds(small[r]), b = median_of_rounds(record[r]);
    md << "| " << sealed_rows()[r].name << " | " << format_ns(a) << " ("
       << format_ratio(a, base_small) << ") | " << format_ns(b) << " ("
       << format_ratio(b, base_record) << ") |\n";
  }
  return md.str();
}

// Every lock row, empty and crowded, each in a child of its own, g_rounds times in turn.
std::string lock_table() {
  std::size_t count = lock_rows().size();
  std::vector<std::vector<double>> empty(count), crowded(count);
  for (int round = 0; round < g_rounds; ++round) {
    std::fprintf(stderr, "bench: round %d of %d: lock and unlock\n", round + 1, g_rounds);
    for (std::size_t r = 0; r < count; ++r) {
      for (bool crowd : {false, true}) {
        int pipe_fds[2];
        if (pipe(pipe_fds) != 0) return "";
        pid_t pid = fork();
        if (pid == 0) {
          close(pipe_fds[0]);
          double ns = (!crowd || lockbox_test::crowd_the_process()) && sodium_init() >= 0
                          ? lock_stack_buffer(lock_rows()[r])
                          : -1;
          if (write(pipe_fds[1], &ns, sizeof ns) != sizeof ns) _exit(1);
          _exit(0);
        }
        close(pipe_fds[1]);
        double ns = -1;
        if (read(pipe_fds[0], &ns, sizeof ns) != sizeof ns) ns = -1;
        close(pipe_fds[0]);
        waitpid(pid, nullptr, 0);
        (crowd ? crowded : empty)[r].push_back(ns);
      }
    }
  }
  std::ostringstream md;
  md << "\n### Lock and unlock of a 256-byte stack buffer\n\n"
     << "ns per lock + unlock, the median of " << g_rounds << " round(s); ratios in the first "
     << "column are to the bare system calls in the same run, in the second to the same row's "
     << "empty process.\n\n"
     << "| lock + unlock | empty process | beside 64 KiB locked and 10,000 mappings |\n"
     << "|---|---|---|\n";
  double bare = median_of_rounds(empty[count - 1]);
  for (std::size_t r = 0; r < count; ++r) {
    double a = median_of_rounds(empty[r]), b = median_of_rounds(crowded[r]);
    md << "| " << lock_rows()[r].name << " | " << format_ns(a) << " (" << format_ratio(a, bare)
       << ") | " << format_ns(b) << " (" << format_ratio(b, a) << ") |\n";
  }
  return md.str();
}

// One workload of one peer, in this process: its ns per operation on stdout.
int time_one(const std::string& name, const std::string& workload) {
  const std::map<std::string, double (*)(const bench::Peer&)> workloads = {
      {"pair", pair_32},
      {"live", live_20k},
      {"mixed", mixed},
      {"mixed2", mixed_two_threads},
      {"bulk20000", [](const bench::Peer& peer) { return bulk(peer, 20000); }},
      {"large16k", [](const bench::Peer& peer) { return large_block(peer, 16 << 10); }},
      {"large256k", [](const bench::Peer& peer) { return large_block(peer, 256 << 10); }},
      {"large1m", [](const bench::Peer& peer) { return large_block(peer, 1 << 20); }},
      {"bulk1000", [](const bench::Peer& peer) { return bulk(peer, 1000); }},
      {"bulk150000", [](const bench::Peer& peer) { return bulk(peer, 150000); }},
      {"threads8", [](const bench::Peer& peer) { return oversubscribed(peer, 8); }},
      {"threads32", [](const bench::Peer& peer) { return oversubscribed(peer, 32); }}};
  auto run = workloads.find(workload);
  if (run == workloads.end()) {
    std::fprintf(stderr,
                 "lockbox_bench: no workload %s (pair, live, mixed, mixed2, bulk1000, bulk20000, "
                 "bulk150000, large16k, large256k, large1m, threads8, threads32)\n",
                 workload.c_str());
    return 2;
  }
  for (const bench::Peer& peer : bench::available_peers()) {
    if (std::string(peer.name).rfind(name, 0) != 0) continue;
    double ns = peer.start(kHeapBytes) ? run->second(peer) : -1;
    if (ns < 0) {
      std::fprintf(stderr, "lockbox_bench: %s failed %s\n", peer.name, workload.c_str());
      return 1;
    }
    std::printf("%.1f\n", ns);
    return 0;
  }
  std::fprintf(stderr, "lockbox_bench: no peer named %s here\n", name.c_str());
  return 2;
}

int main(int argc, char** argv) {
  std::string only, out_dir;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--steady" && i + 1 < argc)
      return steady_state(std::strtoul(argv[++i], nullptr, 10));
    if (arg == "--time" && i + 2 < argc) return time_one(argv[i + 1], argv[i + 2]);
    if (arg == "--child" && i + 2 < argc) {  // run_in_child's process for a preloaded peer
      for (const bench::Peer& peer : bench::available_peers()) {
        if (peer.name == std::string(argv[i + 1])) measure(argv[i + 2], peer, STDOUT_FILENO);
      }
      return 0;
    }
    if (arg == "--quick") {
      g_repetitions = 3;
      g_rounds = 1;
    } else if (arg == "--rounds" && i + 1 < argc) {
      g_rounds = std::max(1, std::atoi(argv[++i]));
    } else if (arg == "--only" && i + 1 < argc) {
      only = argv[++i];
    } else if (arg == "--out" && i + 1 < argc) {
      out_dir = argv[++i];
    } else {
      std::fprintf(stderr,
                   "usage: lockbox_bench [--quick] [--rounds N] [--only NAME] [--out DIR]\n"
                   "       lockbox_bench --steady N\n"
                   "       lockbox_bench --time PEER WORKLOAD\n");
      return 2;
    }
  }
  struct Row {
    std::string name;
    std::map<std::string, std::string> timing, density, cost;
  };
  std::vector<Row> rows;
  std::vector<const bench::Peer*> peers;
  for (const bench::Peer& peer : bench::available_peers()) {
    if (!only.empty() && std::string(peer.name).rfind(only, 0) != 0) continue;
    peers.push_back(&peer);
    rows.push_back({peer.name, {}, {}, {}});
  }
  auto number = [](const std::map<std::string, std::string>& m, const char* key) {
    auto found = m.find(key);
    return found == m.end() ? -1.0 : std::atof(found->second.c_str());
  };
  // Rounds: every peer once per round, so that a slow stretch of the machine hits them all.
  std::vector<std::vector<std::map<std::string, std::string>>> rounds(peers.size());
  std::vector<std::vector<std::map<std::string, std::string>>> cost_rounds(peers.size());
  for (int round = 0; round < g_rounds; ++round) {
    for (std::size_t p = 0; p < peers.size(); ++p) {
      std::fprintf(stderr, "bench: round %d of %d: %s\n", round + 1, g_rounds, peers[p]->name);
      rounds[p].push_back(run_in_child("timing", *peers[p]));
      auto cost = run_in_child("cost", *peers[p]);
      auto crowded = run_in_child("crowded", *peers[p]);
      cost.insert(crowded.begin(), crowded.end());
      cost_rounds[p].push_back(cost);
    }
  }
  const char* cost_keys[] = {"bulk1000",  "bulk20000", "bulk150000", "bulk20000crowded",
                             "large16k",  "large256k", "large1m",    "threads8",
                             "threads32"};
  for (std::size_t p = 0; p < peers.size(); ++p) {
    for (const char* key : cost_keys) {
      std::vector<double> values;
      for (const auto& cost : cost_rounds[p]) values.push_back(number(cost, key));
      bool too_slow = std::find(values.begin(), values.end(), kTooSlow) != values.end();
      rows[p].cost[key] = std::to_string(too_slow ? kTooSlow : median_of_rounds(values));
    }
  }
  for (std::size_t p = 0; p < peers.size(); ++p) {
    Row& row = rows[p];
    for (const char* key : {"pair", "live", "mixed", "mixed2"}) {
      std::vector<double> values;
      for (const auto& timing : rounds[p]) values.push_back(number(timing, key));
      row.timing[key] = std::to_string(median_of_rounds(values));
    }
    // The speed-up per round (one and two threads measured seconds apart, in one window of the
    // machine's drift), then the median of those: steadier than a ratio of two medians.
    std::vector<double> speedups;
    for (const auto& timing : rounds[p]) {
      double one = number(timing, "mixed"), two = number(timing, "mixed2");
      speedups.push_back(one > 0 && two > 0 ? one / two : -1);
    }
    row.timing["speedup"] = std::to_string(median_of_rounds(speedups));
    for (const auto& timing : rounds[p]) {
      if (timing.count("started") && timing.at("started") == "0") row.timing["started"] = "0";
      if (timing.count("crashed")) row.timing["crashed"] = timing.at("crashed");
    }
    if (peers[p]->locks_memory) row.density = run_in_child("density", *peers[p]);
  }
  double base_pair = -1, base_live = -1, base_mixed = -1;
  for (const Row& row : rows) {
    if (row.name.rfind("mimalloc", 0) == 0) {
      base_pair = number(row.timing, "pair");
      base_live = number(row.timing, "live");
      base_mixed = number(row.timing, "mixed");
    }
  }

  std::time_t now = std::time(nullptr);
  char date[32];
  std::strftime(date, sizeof date, "%Y-%m-%d", std::gmtime(&now));
  std::ostringstream md, csv;
  md << "Run on " << date << ", " << machine_description()
     << ", as root (density as uid 65534 with RLIMIT_MEMLOCK = 8 MiB), by `./dev.sh bench`.\n"
     << "ns per operation: the median of " << g_rounds << " round(s) (each runs every peer once, "
     << "in turn), each the median of " << g_repetitions
     << " runs; ratios are to mimalloc + sodium_memzero in the same run; the 2-thread speed-up is "
        "the median over the rounds of each round's own.\n\n"
     << "| allocator | 32 B alloc+write+free | 20k live: free+alloc | mixed 16 B-4 KiB | "
        "mixed, 2 threads (per op) | 2-thread speed-up | 32 B keys kept locked (8 MiB, user) | "
        "mappings for them |\n"
     << "|---|---|---|---|---|---|---|---|\n";
  csv << "allocator,pair_ns,live_ns,mixed_ns,mixed_two_threads_ns,keys_locked,mappings\n";
  for (const Row& row : rows) {
    double pair = number(row.timing, "pair"), live = number(row.timing, "live");
    double mix = number(row.timing, "mixed"), mix2 = number(row.timing, "mixed2");
    std::string keys = "— (not locked)", maps = "—";
    std::string locked_count = "0", map_count = "0";
    if (!row.density.empty()) {
      std::istringstream d(row.density.count("density") ? row.density.at("density") : "");
      std::string word, allocated, locked, mappings, vmlck;
      d >> word >> allocated >> word >> locked >> word >> mappings >> word >> vmlck;
      keys = locked + " of " + allocated;
      maps = mappings;
      locked_count = locked;
      map_count = mappings;
    }
    char speedup[32] = "—";
    if (double rounds_speedup = number(row.timing, "speedup"); rounds_speedup > 0) {
      std::snprintf(speedup, sizeof speedup, "%.2fx", rounds_speedup);
    }
    std::string note =
        row.timing.count("started") && row.timing.at("started") == "0" ? " (heap not locked)" : "";
    if (row.timing.count("crashed")) note += " (crashed)";
    md << "| " << row.name << note << " | " << format_ns(pair) << " ("
       << format_ratio(pair, base_pair) << ") | " << format_ns(live) << " ("
       << format_ratio(live, base_live) << ") | " << format_ns(mix) << " ("
       << format_ratio(mix, base_mixed) << ") | " << format_ns(mix2) << " | " << speedup << " | "
       << keys << " | " << maps << " |\n";
    csv << '"' << row.name << "\"," << pair << ',' << live << ',' << mix << ',' << mix2 << ','
        << locked_count << ',' << map_count << "\n";
  }
  auto cost_ratio = [&](const Row& row, const char* key, const char* base_row) {
    double ns = number(row.cost, key), base = -1;
    for (const Row& other : rows) {
      if (other.name.rfind(base_row, 0) == 0) base = number(other.cost, key);
    }
    return format_ns(ns) + " (" + format_ratio(ns, base) + ")";
  };
  auto cost_table = [&] {
    std::ostringstream table;
    table << "\n### Constant cost: bigger processes, large blocks, more threads than cores\n\n"
          << "ns per operation, the median of " << g_rounds << " round(s), as root. Bulk: "
          << "allocate that many 32-byte keys, then free them (per allocation or free; ratios "
          << "to the same row's 20,000). Crowded: the same 20,000 beside 64 KiB the application "
          << "mlocked and 10,000 mappings (ratio to the same row's empty process). Large: alloc "
          << "+ write + free (ratios to mimalloc + sodium_memzero). Threads: 8 or 32 threads on "
          << std::thread::hardware_concurrency() << " cores, 16 B to 64 KiB, half the frees "
          << "cross-thread (ratios to glibc malloc + explicit_bzero).\n\n"
          << "| allocator | bulk 1,000 | bulk 20,000 | bulk 150,000 | 20,000 crowded | "
             "16 KiB | 256 KiB | 1 MiB | 8 threads | 32 threads |\n"
          << "|---|---|---|---|---|---|---|---|---|---|\n";
    for (const Row& row : rows) {
      double bulk_base = number(row.cost, "bulk20000");
      auto own = [&](const char* key) {
        double ns = number(row.cost, key);
        return format_ns(ns) + " (" + format_ratio(ns, bulk_base) + ")";
      };
      table << "| " << row.name << " | " << own("bulk1000") << " | "
            << format_ns(bulk_base) << " | " << own("bulk150000") << " | "
            << own("bulk20000crowded") << " | " << cost_ratio(row, "large16k", "mimalloc")
            << " | " << cost_ratio(row, "large256k", "mimalloc") << " | "
            << cost_ratio(row, "large1m", "mimalloc") << " | "
            << cost_ratio(row, "threads8", "glibc") << " | "
            << cost_ratio(row, "threads32", "glibc") << " |\n";
    }
    return table.str();
  };
  // keys, then one column per allocator: ns per operation (for bench/chart.gp's second chart).
  auto bulk_csv = [&] {
    std::ostringstream data;
    data << "keys";
    for (const Row& row : rows) data << ",\"" << row.name << '"';
    data << "\n";
    for (std::size_t keys : kBulkKeys) {
      data << keys;
      for (const Row& row : rows) {
        double ns = number(row.cost, ("bulk" + std::to_string(keys)).c_str());
        data << ',';
        if (ns > 0) data << ns;
      }
      data << "\n";
    }
    return data.str();
  };
  md << cost_table();
  if (only.empty() || only == "sealed") md << sealed_table();
  if (only.empty() || only == "lock") md << lock_table();
  if (!bench::missing_peers().empty()) {
    md << "\nNot measured (not installed at configure time):";
    for (const auto& name : bench::missing_peers()) md << " " << name << ";";
    md << "\n";
  }
  std::printf("%s", md.str().c_str());
  if (!out_dir.empty()) {
    std::ofstream(out_dir + "/results.md") << md.str();
    std::ofstream(out_dir + "/results.csv") << csv.str();
    std::ofstream(out_dir + "/bulk.csv") << bulk_csv();
  }
  return 0;
}
