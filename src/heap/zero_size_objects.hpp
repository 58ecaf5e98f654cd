// SPDX-License-Identifier: ISC
// Objects of zero bytes (malloc(0), realloc(p, 0), aligned_alloc(a, 0)): unique addresses in
// one range reserved PROT_NONE, with no memory behind it. A read or write through one faults at
// once, as in hardened_malloc, where an ordinary slot would let a write through pass until the
// free and a read return a canary byte; a second free is a double free. Addresses are handed out
// in turn (next fit), so a freed one comes back only after every other free address of the
// range has been handed out: a stale pointer stays apart from the live ones as long as it can.
// Nothing is committed, locked or charged to the budget; the range costs address space only.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "small/slot_bitmap.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::heap {

class ZeroSizeObjects {
 public:
  static constexpr std::size_t kGranule = 16;  // malloc's alignment
  // 65,536 live zero-byte objects at most; beyond that (or when the range cannot be reserved)
  // the heap gives an ordinary 16-byte slot, as it did for every malloc(0) before.
  static constexpr std::size_t kRangeBytes = std::size_t{1} << 20;
  static constexpr std::size_t kObjects = kRangeBytes / kGranule;
  // The largest alignment served here; a larger one takes the ordinary path.
  static constexpr std::size_t kMaxAlignment = 4096;

  // A new zero-byte object at a multiple of `alignment` (a power of two, 16 to kMaxAlignment),
  // or nullptr when every suitable address is live or the range cannot be reserved.
  void* allocate(std::size_t alignment);
  // Is `pointer` inside the range (live or not)? No lock: the range never moves once reserved.
  bool contains(const void* pointer) const {
    std::uintptr_t begin = begin_.load(std::memory_order_acquire);
    auto address = reinterpret_cast<std::uintptr_t>(pointer);
    return begin != 0 && address - begin < kRangeBytes;
  }
  enum class FreeResult { kFreed, kDoubleFree, kNotAllocated };
  // For a pointer the range contains().
  FreeResult free(const void* pointer);
  bool is_live(const void* pointer);
  std::size_t live_objects();
  std::size_t reserved_bytes() const {
    return begin_.load(std::memory_order_relaxed) != 0 ? kRangeBytes : 0;
  }

  // fork: the child keeps the range and the live objects (there is nothing secret in them), which
  // it may free; its count of live objects starts from zero, as every other count of a child's
  // does (lockbox.h: a child's stats cover only what it allocated itself).
  void lock_for_fork() { lock_.lock(); }
  void unlock_after_fork() { lock_.unlock(); }
  void reset_after_fork() {
    lock_.reset_after_fork();
    inherited_ = live_;
    live_count_ = 0;
  }

 private:
  // The index of a live object at `pointer`, or kObjects for an address never handed out or
  // not on a granule. Under lock_.
  std::size_t index_of(const void* pointer) const;
  // The first free index at or after `from` (wrapping), a multiple of `step`; kObjects if there
  // is none. Under lock_.
  std::size_t find_free(std::size_t from, std::size_t step) const;

  MaskedFutexLock lock_;  // a handler's malloc(0) or free may take it: see futex_lock.hpp
  std::atomic<std::uintptr_t> begin_{0};
  bool reserve_failed_ = false;
  std::size_t next_ = 0;        // where the next search starts
  std::size_t handed_out_ = 0;  // one past the highest index ever handed out
  std::size_t live_count_ = 0;
  using LiveBits = small::Bitmap<kObjects>;
  LiveBits live_;       // set: live
  LiveBits inherited_;  // set: live when this process was forked, not freed since (not counted)
};

}  // namespace lockbox::heap
