// SPDX-License-Identifier: ISC
// The least any allocator can spend on a large-block cycle (allocate, write every byte, free)
// when it keeps the promises issue #12 asks of lockbox, whatever its design: the memory work of
// the promise alone, no bookkeeping at all. Compared with the peers' whole cycles in
// `./dev.sh bench`, it says which speed goals no implementation can meet on this machine.
//
//   - A write after free is found when the memory is handed out again: every byte of it is read
//     then (or its protection changes, which costs more, below). Floor: read, write, zero one
//     buffer, always the same and so warm in L1, as no quarantine would allow.
//   - A freed large block's range turns PROT_NONE and comes back on reuse: two mprotect calls
//     around the two passes, the pages staying locked (the cheapest reuse there is).
//
//   lockbox_floors        prints each floor in ns, the best of 7 rounds
#include <sys/mman.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace {

using Clock = std::chrono::steady_clock;
using Vector = std::uint64_t __attribute__((vector_size(32)));

// Four accumulators in 32-byte vectors, as the library's own hand-out scan (src/small/slot.hpp).
#if defined(__x86_64__)
__attribute__((target("avx2")))
#endif
__attribute__((noinline)) bool all_zero(const unsigned char* bytes, std::size_t length) {
  Vector a{}, b{}, c{}, d{};
  for (std::size_t offset = 0; offset + 4 * sizeof(Vector) <= length;
       offset += 4 * sizeof(Vector)) {
    Vector v0, v1, v2, v3;  // one copy each: a copy of all four went through the stack
    std::memcpy(&v0, bytes + offset, sizeof v0);
    std::memcpy(&v1, bytes + offset + sizeof v0, sizeof v1);
    std::memcpy(&v2, bytes + offset + 2 * sizeof v0, sizeof v2);
    std::memcpy(&v3, bytes + offset + 3 * sizeof v0, sizeof v3);
    a |= v0;
    b |= v1;
    c |= v2;
    d |= v3;
  }
  Vector any = (a | b) | (c | d);
  return ((any[0] | any[1]) | (any[2] | any[3])) == 0;
}

void keep(void* pointer) { asm volatile("" : : "r"(pointer) : "memory"); }

template <typename Cycle>
double best_of_rounds(std::size_t cycles, Cycle cycle) {
  double best = 1e300;
  for (int round = 0; round < 7; ++round) {
    auto start = Clock::now();
    for (std::size_t i = 0; i < cycles; ++i) cycle(i);
    double ns = std::chrono::duration<double, std::nano>(Clock::now() - start).count() /
                static_cast<double>(cycles);
    best = ns < best ? ns : best;
  }
  return best;
}

// A locked, zeroed range of `bytes` between two guard pages.
unsigned char* locked_range(std::size_t bytes) {
  constexpr std::size_t kPage = 4096;
  void* mapping = mmap(nullptr, bytes + 2 * kPage, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return nullptr;
  auto* data = static_cast<unsigned char*>(mapping) + kPage;
  if (mprotect(data, bytes, PROT_READ | PROT_WRITE) != 0 || mlock(data, bytes) != 0) return nullptr;
  return data;
}

bool scanned_cycle(std::size_t bytes) {
  unsigned char* data = locked_range(bytes);
  if (data == nullptr) return false;
  bool zero = true;
  double two_passes = best_of_rounds(100000, [&](std::size_t i) {
    std::memset(data, static_cast<int>(i | 1), bytes);
    keep(data);
    std::memset(data, 0, bytes);
    keep(data);
  });
  double with_scan = best_of_rounds(100000, [&](std::size_t i) {
    zero &= all_zero(data, bytes);
    std::memset(data, static_cast<int>(i | 1), bytes);
    keep(data);
    std::memset(data, 0, bytes);
    keep(data);
  });
  if (!zero) return false;
  std::printf("%zu KiB: write + zero %.0f ns; checked zero first (one warm buffer) %.0f ns\n",
              bytes >> 10, two_passes, with_scan);
  return true;
}

bool protected_cycle(std::size_t bytes, std::size_t cycles) {
  unsigned char* data = locked_range(bytes);
  if (data == nullptr || mprotect(data, bytes, PROT_NONE) != 0) return false;
  bool refused = false;
  double ns = best_of_rounds(cycles, [&](std::size_t i) {
    refused |= mprotect(data, bytes, PROT_READ | PROT_WRITE) != 0;
    std::memset(data, static_cast<int>(i | 1), bytes);
    keep(data);
    std::memset(data, 0, bytes);
    keep(data);
    refused |= mprotect(data, bytes, PROT_NONE) != 0;
  });
  if (refused) return false;
  std::printf("%zu KiB: read-write, write + zero, PROT_NONE (pages locked) %.0f ns\n",
              bytes >> 10, ns);
  return true;
}

}  // namespace

int main() {
  bool ok = scanned_cycle(16 << 10) && protected_cycle(256 << 10, 2000) &&
            protected_cycle(1 << 20, 500);
  if (!ok) {
    std::fprintf(stderr, "lockbox_floors: mmap, mlock or mprotect failed (%s)\n",
                 std::strerror(errno));
    return 1;
  }
  return 0;
}
