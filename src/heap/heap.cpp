// Dispatch between the small and the large heap, start-up and fork. A forked child keeps the
// parent's arenas mapped (wiped by MADV_WIPEONFORK) only so that its frees of inherited pointers
// are recognised; it allocates from fresh arenas and its stats start from zero.
#include "heap/heap.hpp"

#include <pthread.h>
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "heap/options.hpp"
#include "report/report.hpp"
#include "small/canary.hpp"
#include "small/size_class.hpp"
#include "support/last_error.hpp"

namespace lockbox::heap {
namespace {

alignas(Heap) unsigned char g_heap_storage[sizeof(Heap)];
Heap* g_heap = nullptr;
thread_local std::uint32_t t_shard_index = UINT32_MAX;

}  // namespace

Heap& Heap::instance() {
  // A function-local static is initialised exactly once, even when threads race to it. The
  // heap is never destroyed: other static destructors may still free secrets at exit.
  static Heap* heap = [] {
    g_heap = new (g_heap_storage) Heap;
    return g_heap;
  }();
  return *heap;
}

Heap::Heap() {
  if (sodium_init() < 0) report::fatal_os_failure("sodium_init", nullptr);
  std::uint64_t secret = 0;
  randombytes_buf(&secret, sizeof secret);
  small::set_canary_secret(secret);
  budget_.refresh_limit();
  budget_.set_policy(options::policy_from_environment());
  if (!registry_.initialise()) report::fatal_os_failure("mmap (arena registry)", nullptr);
  ::pthread_atfork(&Heap::before_fork, &Heap::after_fork_in_parent, &Heap::after_fork_in_child);
}

small::Shard& Heap::my_shard(std::uint32_t* index) {
  if (t_shard_index == UINT32_MAX) {
    t_shard_index = next_shard_.fetch_add(1, std::memory_order_relaxed) % kShards;
  }
  *index = t_shard_index;
  return shards_[t_shard_index];
}

bool Heap::reclaim_from_shards(void* context) {
  auto* reclaim = static_cast<ReclaimContext*>(context);
  bool released = false;
  for (std::size_t i = 0; i < kShards; ++i) {
    small::Shard& shard = reclaim->shards[i];
    if (i == reclaim->held) {
      released |= shard.release_empty_pages(*reclaim->budget);
    } else if (shard.lock().try_lock()) {
      // try_lock only: waiting here while holding our own shard could deadlock.
      released |= shard.release_empty_pages(*reclaim->budget);
      shard.lock().unlock();
    }
  }
  return released;
}

void* Heap::allocate(std::size_t size, std::size_t alignment) {
  if (alignment < kMinAlignment) alignment = kMinAlignment;
  std::size_t class_index = alignment == kMinAlignment
                                ? (size <= small::kMaxSmallRequest ? small::class_for_request(size)
                                                                   : small::kClassCount)
                                : (alignment <= os::kPageSize
                                       ? small::class_for_aligned_request(size, alignment)
                                       : small::kClassCount);
  void* pointer = nullptr;
  if (class_index < small::kClassCount) {
    std::uint32_t index = 0;
    small::Shard& shard = my_shard(&index);
    ReclaimContext context{shards_, index, &budget_};
    SpinLockGuard guard(shard.lock());
    pointer = shard.allocate(size, class_index, generation_.load(std::memory_order_relaxed),
                             index, registry_, budget_,
                             pages::Reclaimer{&Heap::reclaim_from_shards, &context});
  } else {
    ReclaimContext context{shards_, kShards, &budget_};
    pointer = large_.allocate(size, alignment, budget_,
                              pages::Reclaimer{&Heap::reclaim_from_shards, &context});
  }
  if (pointer == nullptr) errno = ENOMEM;
  return pointer;
}

void Heap::free(void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    SpinLockGuard guard(shard.lock());
    if (is_inherited(*arena)) {
      shard.free_inherited(*arena, pointer);
    } else {
      shard.free(*arena, pointer, budget_);
    }
    return;
  }
  std::uintptr_t mapping = 0;
  std::size_t mapping_bytes = 0;
  if (!large_.free(pointer, budget_, &mapping, &mapping_bytes)) {
    report::fatal_invalid_pointer(pointer);
  }
  forget_caller_locks(mapping, mapping_bytes);
}

std::size_t Heap::usable_size(const void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    SpinLockGuard guard(shard.lock());
    return shard.usable_size(*arena, pointer);
  }
  std::size_t size = 0;
  if (!large_.usable_size(pointer, &size)) report::fatal_invalid_pointer(pointer);
  return size;
}

bool Heap::owns(const void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    SpinLockGuard guard(shard.lock());
    return shard.owns(*arena, pointer);
  }
  std::size_t size = 0;
  return large_.usable_size(pointer, &size);
}

bool Heap::freed_range_reads_zero(const void* pointer, std::size_t length) {
  small::Arena* arena = registry_.find(pointer);
  if (arena == nullptr) return true;  // a freed large block is unmapped
  small::Shard& shard = shards_[arena->shard_index];
  SpinLockGuard guard(shard.lock());
  return shard.range_reads_zero(*arena, pointer, length);
}

void* Heap::reallocate(void* pointer, std::size_t size) {
  std::size_t old_size = usable_size(pointer);
  void* moved = allocate(size, kMinAlignment);
  if (moved == nullptr) return nullptr;  // the old block is untouched
  std::memcpy(moved, pointer, old_size < size ? old_size : size);
  free(pointer);  // zeroes the old block
  return moved;
}

Stats Heap::stats() {
  small::ShardStats small_stats;
  for (auto& shard : shards_) {
    SpinLockGuard guard(shard.lock());
    shard.add_stats(small_stats);
  }
  large::LargeStats large_stats;
  large_.add_stats(large_stats);
  Stats stats{};
  stats.locked_bytes = budget_.locked_bytes();
  stats.unlocked_bytes = budget_.unlocked_bytes();
  stats.in_use_bytes = small_stats.in_use_bytes + large_stats.in_use_bytes;
  stats.live_allocations = small_stats.live_allocations + large_stats.live_allocations;
  stats.reserved_bytes = small_stats.reserved_bytes + large_stats.reserved_bytes;
  stats.peak_locked_bytes = budget_.peak_locked_bytes();
  stats.memlock_limit = budget_.limit();
  stats.caller_locked_bytes = caller_locked_pages_.load(std::memory_order_relaxed) * os::kPageSize;
  return stats;
}

void Heap::before_fork() {
  g_heap->caller_locks_lock_.lock();
  for (auto& shard : g_heap->shards_) shard.lock().lock();
  g_heap->large_.lock_for_fork();
}

void Heap::after_fork_in_parent() {
  g_heap->large_.unlock_after_fork();
  for (auto& shard : g_heap->shards_) shard.lock().unlock();
  g_heap->caller_locks_lock_.unlock();
}

void Heap::after_fork_in_child() {
  Heap& heap = *g_heap;
  heap.generation_.fetch_add(1, std::memory_order_relaxed);
  for (auto& shard : heap.shards_) shard.forget_arenas_after_fork();
  heap.large_.mark_inherited_after_fork();
  // Locks are not inherited: the child has none of the parent's caller locks either.
  heap.caller_locks_.clear();
  heap.caller_locked_pages_.store(0, std::memory_order_relaxed);
  heap.caller_locks_lock_.reset_after_fork();
  heap.budget_.reset_after_fork();
  heap.budget_.refresh_limit();
}

}  // namespace lockbox::heap
