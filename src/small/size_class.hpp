// SPDX-License-Identifier: ISC
// Size classes for small objects: slot sizes, how many pages a run of each class spans, and
// the lookup from a request (plus its trailing canary) to a class. All computed at compile time.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "os/os.hpp"

namespace lockbox::small {

// Every slot ends with at least this many canary bytes after the requested size.
inline constexpr std::size_t kMinCanaryBytes = 8;
// ... and at most this many: the canary is one 16-byte window (canary.hpp), the slack beyond
// stays zero.
inline constexpr std::size_t kCanaryWindow = 16;
inline constexpr std::size_t kGranule = 16;  // alignof(max_align_t)

// Slot sizes: multiples of 16, four per doubling above 128, so waste stays under 25%. Up to
// 64 KiB: a buffer of 16, 32 or just under 64 KiB is a slot too, handed out and taken back
// with no system call. As its own mapping it cost an mmap, an mlock and more per allocation,
// and two mprotects per cycle from the large-block cache, each a TLB shootdown across the
// process's threads under its mmap lock (8 threads on 2 cores mixing sizes up to 64 KiB spent
// 21,000 rt_sigprocmask and 5,000 mprotect per 160,000 operations on the 1.6% of blocks above
// 56 KiB). The requested size must fit the slot word's 16 bits (arena.hpp): 65,528 does.
inline constexpr std::array<std::uint32_t, 44> kSlotSizes = {
    16,    32,    48,    64,    80,    96,    112,   128,   160,   192,   224,
    256,   320,   384,   448,   512,   640,   768,   896,   1024,  1280,  1536,
    1792,  2048,  2560,  3072,  3584,  4096,  5120,  6144,  7168,  8192,  10240,
    12288, 14336, 16384, 20480, 24576, 28672, 32768, 40960, 49152, 57344, 65536};
inline constexpr std::size_t kClassCount = kSlotSizes.size();
inline constexpr std::size_t kMaxSlotSize = kSlotSizes.back();
inline constexpr std::size_t kMaxSmallRequest = kMaxSlotSize - kMinCanaryBytes;
// While arenas come from memfd_secret, which charges an arena whole, slots stop at 8 KiB: runs
// of 5 to 14 pages for a few big objects would spread the budget over more arenas, and a tight
// RLIMIT_MEMLOCK ran out with a fraction of it in use. Bigger objects are large blocks then.
inline constexpr std::size_t kMaxSecretmemSmallRequest = 8192 - kMinCanaryBytes;

constexpr std::size_t gcd(std::size_t a, std::size_t b) { return b == 0 ? a : gcd(b, a % b); }

// A run spans the fewest pages that hold a whole number of slots, so no byte of a run is waste.
// Tables, not the arithmetic: the shards ask for every slot they hand out and take back, with a
// class known only at run time, and the gcd's loop of divisions was a fifth of the time spent
// in a shard when 20,000 keys were allocated and freed.
namespace detail {
inline constexpr auto kRunPages = [] {
  std::array<std::uint16_t, kClassCount> pages{};
  for (std::size_t c = 0; c < kClassCount; ++c) {
    pages[c] = static_cast<std::uint16_t>(kSlotSizes[c] / gcd(kSlotSizes[c], os::kPageSize));
  }
  return pages;
}();
inline constexpr auto kRunSlots = [] {
  std::array<std::uint16_t, kClassCount> slots{};
  for (std::size_t c = 0; c < kClassCount; ++c) {
    slots[c] = static_cast<std::uint16_t>(kRunPages[c] * os::kPageSize / kSlotSizes[c]);
  }
  return slots;
}();
}  // namespace detail
constexpr std::size_t run_pages(std::size_t class_index) { return detail::kRunPages[class_index]; }
constexpr std::size_t run_slots(std::size_t class_index) { return detail::kRunSlots[class_index]; }

inline constexpr std::size_t kMaxRunSlots = [] {
  std::size_t most = 0;
  for (std::size_t c = 0; c < kClassCount; ++c) most = run_slots(c) > most ? run_slots(c) : most;
  return most;
}();

// Division by a slot size, as a multiplication: offset / slot == (offset * m) >> 32 for every
// offset inside a run (checked exhaustively by the unit tests). A hardware divide would be the
// most expensive instruction of giving a slot back to its run.
inline constexpr auto kSlotReciprocals = [] {
  std::array<std::uint64_t, kClassCount> reciprocals{};
  for (std::size_t c = 0; c < kClassCount; ++c) {
    reciprocals[c] = ((std::uint64_t{1} << 32) + kSlotSizes[c] - 1) / kSlotSizes[c];
  }
  return reciprocals;
}();
constexpr std::size_t slot_index(std::size_t offset, std::size_t class_index) {
  return static_cast<std::size_t>((offset * kSlotReciprocals[class_index]) >> 32);
}

namespace detail {
inline constexpr std::size_t kLookupEntries = kMaxSlotSize / kGranule + 1;
inline constexpr auto kClassByGranules = [] {
  std::array<std::uint8_t, kLookupEntries> table{};
  std::size_t c = 0;
  for (std::size_t granules = 0; granules < kLookupEntries; ++granules) {
    while (kSlotSizes[c] < granules * kGranule) ++c;
    table[granules] = static_cast<std::uint8_t>(c);
  }
  return table;
}();
}  // namespace detail

// The class of a request of `size` bytes; size must be <= kMaxSmallRequest.
constexpr std::size_t class_for_request(std::size_t size) {
  return detail::kClassByGranules[(size + kMinCanaryBytes + kGranule - 1) / kGranule];
}

// The smallest class whose every slot is aligned to `alignment` (a power of two, at most the
// page size) and holds `size` bytes plus the canary; kClassCount when none does.
constexpr std::size_t class_for_aligned_request(std::size_t size, std::size_t alignment) {
  if (size > kMaxSmallRequest) return kClassCount;
  for (std::size_t c = class_for_request(size); c < kClassCount; ++c) {
    if (kSlotSizes[c] % alignment == 0) return c;
  }
  return kClassCount;
}

}  // namespace lockbox::small
