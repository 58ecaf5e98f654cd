// SPDX-License-Identifier: ISC
// Publication order: the arena pointer is stored before its key is released, so a reader
// that sees the key sees a fully built arena.
#include "small/arena_registry.hpp"

#include <cstring>

#include "support/last_error.hpp"

namespace lockbox::small {

bool ArenaRegistry::initialise() {
  void* table = nullptr;
  if (int err = os::map_metadata(kCapacity * sizeof(Entry), &table)) {
    set_last_error("cannot map the arena registry: %s", std::strerror(err));
    return false;
  }
  entries_ = static_cast<Entry*>(table);  // zero-filled memory is an empty table
  return true;
}

bool ArenaRegistry::insert(Arena* arena) {
  FutexLockGuard guard(insert_lock_);
  if (count_ >= kMaxArenas) {
    set_last_error("cannot add an arena: lockbox already manages %zu arenas (%zu MiB)", count_,
                   count_ * (kArenaBytes >> 20));
    return false;
  }
  std::uintptr_t key = (reinterpret_cast<std::uintptr_t>(arena->base) >> kArenaShift) + 1;
  std::size_t i = hash(key);
  while (entries_[i].key.load(std::memory_order_relaxed) != 0) i = (i + 1) & (kCapacity - 1);
  entries_[i].arena = arena;
  entries_[i].key.store(key, std::memory_order_release);
  ++count_;
  return true;
}

}  // namespace lockbox::small
