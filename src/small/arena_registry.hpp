// SPDX-License-Identifier: ISC
// Which arena, if any, holds an address: a lock-free open-addressing table from the 1 MiB
// granule of an address to its Arena. Arenas are never removed, so readers need no lock.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "small/arena.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::small {

class ArenaRegistry {
 public:
  static constexpr std::size_t kCapacity = std::size_t{1} << 14;  // 256 KiB of table
  static constexpr std::size_t kMaxArenas = kCapacity / 2;        // keeps probe chains short

  // Maps the table; false with last_error set if the kernel refuses.
  bool initialise();
  // False (last_error set) when the table is full.
  bool insert(Arena* arena);
  Arena* find(const void* address) const {
    std::uintptr_t key = (reinterpret_cast<std::uintptr_t>(address) >> kArenaShift) + 1;
    for (std::size_t i = hash(key);; i = (i + 1) & (kCapacity - 1)) {
      std::uintptr_t stored = entries_[i].key.load(std::memory_order_acquire);
      if (stored == key) return entries_[i].arena;
      if (stored == 0) return nullptr;
    }
  }

 private:
  struct Entry {
    std::atomic<std::uintptr_t> key;  // granule + 1; 0 is empty
    Arena* arena;
  };
  static std::size_t hash(std::uintptr_t key) {
    return static_cast<std::size_t>((key * 0x9e3779b97f4a7c15ull) >> 40) & (kCapacity - 1);
  }

  Entry* entries_ = nullptr;
  std::size_t count_ = 0;
  FutexLock insert_lock_;
};

}  // namespace lockbox::small
