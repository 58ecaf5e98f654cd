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
#include "support/random_stream.hpp"
#include "small/size_class.hpp"
#include "small/slot.hpp"
#include "support/bench_switches.hpp"
#include "support/last_error.hpp"

namespace lockbox::heap {
namespace {

alignas(Heap) unsigned char g_heap_storage[sizeof(Heap)];

// The thread's cache lives until the thread's TLS destructors run; t_cache_gone (trivially
// destructible, so still readable afterwards) keeps later frees off the dead cache.
// initial-exec: one instruction to reach them instead of a __tls_get_addr call per operation.
// That makes the library's whole TLS block static: dlopen finds room for it in the surplus glibc
// keeps for such libraries (512 bytes by default) only because the block is a few dozen bytes
// (no thread_local buffers anywhere in lockbox; the dlopen tests check it).
__attribute__((tls_model("initial-exec"))) thread_local ThreadCache* t_cache = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_cache_gone = false;

struct ThreadCacheOwner {
  ~ThreadCacheOwner();
};
thread_local ThreadCacheOwner t_cache_owner;

ThreadCacheOwner::~ThreadCacheOwner() {
  t_cache_gone = true;
  if (t_cache != nullptr) {  // a cache exists only once the heap has started
    ThreadCache* cache = t_cache;
    t_cache = nullptr;
    Heap::retire_thread_cache(cache);
  }
}

// Hands a random eligible slot of a bin that has one to the application, and counts it. The
// caller saw random bytes left in the cache's stream.
void* hand_out_cached(ThreadCache& cache, std::size_t class_index, std::size_t size,
                      report::Operation operation) {
  ThreadCache::Bin& bin = cache.bins[class_index];
  std::uint32_t pick = bench_switches::kNoRandom ? 0
                      : static_cast<std::uint32_t>(cache.random.below_buffered(bin.eligible()));
  small::CachedSlot slot = bin.take_eligible(pick);
  small::hand_out(slot, class_index, size, operation);
  cache.add_to_live_counts(1, static_cast<std::int64_t>(size));
  return slot.address;
}

}  // namespace

Heap& Heap::start() {
  // A function-local static is initialised exactly once, even when threads race to it. The
  // heap is never destroyed: other static destructors may still free secrets at exit.
  static Heap* heap = [] {
    Heap* started = new (g_heap_storage) Heap;
    started_.store(started, std::memory_order_release);
    return started;
  }();
  return *heap;
}

Heap::Heap() {
  // Guard pages, page counts and every mprotect assume the page size lockbox was built for: a
  // 16 KiB or 64 KiB page kernel gets one clear line here, not mprotect failures later.
  if (os::page_size_from_kernel() != os::kPageSize) {
    report::fatal_unsupported_page_size(os::page_size_from_kernel(), os::kPageSize);
  }
  if (sodium_init() < 0) report::fatal_os_failure("sodium_init", nullptr);
  RandomStream::rekey_process();
  small::detail::detect_wide_vectors();
  budget_.refresh_limit();
  budget_.set_policy(options::policy_from_environment());
  secretmem_pool_.set_backend(options::backend_from_environment());
  if (!registry_.initialise()) report::fatal_os_failure("mmap (arena registry)", nullptr);
  // Without these handlers a fork could copy a held lock into the child: fail closed.
  if (::pthread_atfork(&Heap::before_fork, &Heap::after_fork_in_parent,
                       &Heap::after_fork_in_child) != 0) {
    report::fatal_os_failure("pthread_atfork", nullptr);
  }
}

ThreadCache* Heap::thread_cache() {
  if (t_cache != nullptr) return t_cache;
  if (t_cache_gone) return nullptr;
  auto* cache = new ThreadCache;
  cache->shard_index = next_shard_.fetch_add(1, std::memory_order_relaxed) % kShards;
  {
    SpinLockGuard guard(caches_lock_);
    cache->next = caches_;
    if (caches_ != nullptr) caches_->prev = cache;
    caches_ = cache;
  }
  // Touching the owner registers its destructor for this thread's exit.
  (void)&t_cache_owner;
  t_cache = cache;
  return cache;
}

void Heap::retire_thread_cache(ThreadCache* cache) {
  Heap& heap = instance();
  heap.flush_all(*cache);
  SpinLockGuard guard(heap.caches_lock_);
  heap.retired_objects_.fetch_add(cache->live_objects.load(std::memory_order_relaxed),
                                  std::memory_order_relaxed);
  heap.retired_bytes_.fetch_add(cache->live_bytes.load(std::memory_order_relaxed),
                                std::memory_order_relaxed);
  if (cache->prev != nullptr) {
    cache->prev->next = cache->next;
  } else {
    heap.caches_ = cache->next;
  }
  if (cache->next != nullptr) cache->next->prev = cache->prev;
  delete cache;
}

void Heap::flush(ThreadCache::Bin& bin, std::size_t count) {
  // The oldest first, so the quarantine (the newest) is the last to go. One lock for each
  // stretch of slots from the same shard (usually the whole batch).
  small::Shard* held = nullptr;
  for (std::size_t i = 0; i < count; ++i) {
    const small::CachedSlot& slot = bin.at(bin.tail++);
    small::Shard* shard = &shards_[slot.arena->shard_index];
    if (shard != held) {
      if (held != nullptr) held->lock().unlock();
      held = shard;
      held->lock().lock();
    }
    held->return_slot(slot, budget_);
  }
  if (held != nullptr) held->lock().unlock();
  // What the flush took from the quarantine is no longer in it.
  if (static_cast<std::int32_t>(bin.tail - bin.ready.load(std::memory_order_relaxed)) > 0) {
    bin.ready.store(bin.tail, std::memory_order_relaxed);
  }
}

bool Heap::flush_all(ThreadCache& cache) {
  bool flushed = false;
  for (auto& bin : cache.bins) {
    flushed |= bin.held() != 0;
    flush(bin, bin.held());
  }
  cache.reclaim_epoch = reclaim_epoch_.load(std::memory_order_relaxed);
  return flushed;
}

bool Heap::give_back_for_budget(ThreadCache* cache) {
  // The slots a thread keeps cached or quarantined pin locked pages: this thread's go back
  // now, every other thread's at its next visit to a shard.
  reclaim_epoch_.fetch_add(1, std::memory_order_relaxed);
  return cache != nullptr && flush_all(*cache);
}

void Heap::answer_reclaim(ThreadCache& cache) {
  if (cache.reclaim_epoch != reclaim_epoch_.load(std::memory_order_relaxed)) [[unlikely]]
    flush_all(cache);
}

bool Heap::refill(ThreadCache& cache, std::size_t class_index) {
  answer_reclaim(cache);
  ThreadCache::Bin& bin = cache.bins[class_index];
  std::size_t wanted = ThreadCache::batch(class_index);
  small::CachedSlot fresh[ThreadCache::kRingSlots];
  std::size_t taken = 0;
  small::Shard& shard = shards_[cache.shard_index];
  for (int attempt = 0; attempt < 2; ++attempt) {
    {
      ReclaimContext context{shards_, cache.shard_index, &budget_};
      SpinLockGuard guard(shard.lock());
      taken = shard.take_slots(class_index, wanted, fresh,
                               generation_.load(std::memory_order_relaxed), cache.shard_index,
                               registry_, budget_,
                               pages::Reclaimer{&Heap::reclaim_from_shards, &context},
                               &secretmem_pool_);
    }
    if (taken != 0 || !give_back_for_budget(&cache)) break;
  }
  for (std::size_t i = 0; i < taken; ++i) bin.push_fresh(fresh[i]);
  return taken != 0;
}

// The fast paths: a key-sized slot from, or to, a thread cache that has one, or room for one.
// They call nothing that returns (only the fatal reports), so they save no registers and set up
// no frame; everything else goes to the general paths below, by a tail call.
void* Heap::allocate_small(std::size_t size, std::size_t class_index,
                           report::Operation operation) {
  ThreadCache* cache = t_cache;
  if (cache == nullptr || class_index >= small::kKeySizedClasses ||
      cache->bins[class_index].eligible() == 0 || cache->random.remaining() == 0) [[unlikely]]
    return allocate_small_general(size, class_index, operation);
  if (small::kSlotSizes[class_index] > 64) __builtin_unreachable();  // no loop, no call
  return hand_out_cached(*cache, class_index, size, operation);
}

void Heap::free_small(small::Arena& arena, void* pointer, report::Operation operation) {
  ThreadCache* cache = t_cache;
  std::atomic<small::SlotWord>* slot = small::slot_word_for(arena, pointer);
  if (cache == nullptr || slot == nullptr || is_inherited(arena)) [[unlikely]]
    return free_small_general(arena, pointer, operation);
  small::SlotWord word = slot->load(std::memory_order_relaxed);
  std::size_t class_index = small::slot_class(word);
  if (class_index >= small::kKeySizedClasses ||
      cache->bins[class_index].held() == ThreadCache::limit(class_index)) [[unlikely]]
    return free_small_general(arena, pointer, operation);
  if (small::kSlotSizes[class_index] > 64) __builtin_unreachable();
  small::FreedSlot freed = small::take_back(pointer, *slot, word, operation);
  cache->add_to_live_counts(-1, -static_cast<std::int64_t>(freed.requested));
  cache->bins[class_index].push_freed(static_cast<unsigned char*>(pointer), &arena,
                                      ThreadCache::quarantine(class_index));
}

void* Heap::allocate_small_general(std::size_t size, std::size_t class_index,
                                   report::Operation operation) {
  ThreadCache* cache = thread_cache();
  if (cache == nullptr) {
    // A thread in its last TLS destructors: take the shard lock for this one allocation.
    std::uint32_t index = 0;
    ReclaimContext context{shards_, index, &budget_};
    SpinLockGuard guard(shards_[index].lock());
    void* pointer = shards_[index].allocate(
        size, class_index, operation, generation_.load(std::memory_order_relaxed), index,
        registry_, budget_, pages::Reclaimer{&Heap::reclaim_from_shards, &context},
        &secretmem_pool_);
    if (pointer == nullptr) return nullptr;
    retired_objects_.fetch_add(1, std::memory_order_relaxed);
    retired_bytes_.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    return pointer;
  }
  if (cache->bins[class_index].eligible() == 0 && !refill(*cache, class_index)) return nullptr;
  if (cache->random.remaining() == 0) cache->random.refill();
  return hand_out_cached(*cache, class_index, size, operation);
}

void Heap::free_small_general(small::Arena& arena, void* pointer, report::Operation operation) {
  ThreadCache* cache = thread_cache();
  if (is_inherited(arena) || cache == nullptr) {
    small::Shard& shard = shards_[arena.shard_index];
    SpinLockGuard guard(shard.lock());
    if (is_inherited(arena)) {
      shard.free_inherited(arena, pointer, operation);
      return;
    }
    std::size_t size = shard.free(arena, pointer, budget_, operation);
    retired_objects_.fetch_sub(1, std::memory_order_relaxed);
    retired_bytes_.fetch_sub(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    return;
  }
  small::FreedSlot freed = small::take_back(arena, pointer, operation);
  cache->add_to_live_counts(-1, -static_cast<std::int64_t>(freed.requested));
  ThreadCache::Bin& bin = cache->bins[freed.class_index];
  if (bin.held() == ThreadCache::limit(freed.class_index)) [[unlikely]] {
    answer_reclaim(*cache);
    // Still full: the oldest half of the eligible slots go back to their runs. A full bin has
    // at least eligible_limit() eligible slots, so the quarantine stays whole.
    if (bin.held() == ThreadCache::limit(freed.class_index)) {
      flush(bin, ThreadCache::batch(freed.class_index));
    }
  }
  bin.push_freed(static_cast<unsigned char*>(pointer), &arena,
                 ThreadCache::quarantine(freed.class_index));
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

void* Heap::allocate(std::size_t size, std::size_t alignment, report::Operation operation) {
  if (alignment < kMinAlignment) alignment = kMinAlignment;
  std::size_t class_index =
      alignment == kMinAlignment
          ? (size <= small::kMaxSmallRequest ? small::class_for_request(size) : small::kClassCount)
          : (alignment <= os::kPageSize ? small::class_for_aligned_request(size, alignment)
                                        : small::kClassCount);
  void* pointer = class_index < small::kClassCount
                      ? allocate_small(size, class_index, operation)
                      : allocate_large(size, alignment, false);
  return pointer;
}

void* Heap::allocate_large(std::size_t size, std::size_t alignment, bool guarded) {
  for (int attempt = 0;; ++attempt) {
    ReclaimContext context{shards_, kShards, &budget_};
    void* pointer = large_.allocate(size, alignment, budget_,
                                    pages::Reclaimer{&Heap::reclaim_from_shards, &context},
                                    guarded);
    if (pointer != nullptr || attempt == 1 || !give_back_for_budget(t_cache)) return pointer;
  }
}

void Heap::free(void* pointer, report::Operation operation) {
  if (small::Arena* arena = registry_.find(pointer)) {
    free_small(*arena, pointer, operation);
    return;
  }
  std::uintptr_t mapping = 0;
  std::size_t mapping_bytes = 0;
  switch (large_.free(pointer, budget_, operation, &mapping, &mapping_bytes)) {
    case large::LargeHeap::FreeResult::kFreed:
      caller_locks_.forget_range(mapping, mapping_bytes);
      return;
    case large::LargeHeap::FreeResult::kDoubleFree:
      report::fatal_double_free(operation, pointer);
    case large::LargeHeap::FreeResult::kNotAllocated:
      report::fatal_invalid_pointer(operation, pointer);
  }
}

std::size_t Heap::usable_size(const void* pointer, report::Operation operation) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    SpinLockGuard guard(shard.lock());
    return shard.usable_size(*arena, pointer, operation);
  }
  std::size_t size = 0;
  if (!large_.usable_size(pointer, &size)) report::fatal_invalid_pointer(operation, pointer);
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

Heap::Ownership Heap::ownership(const void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    if (is_inherited(*arena)) return Ownership::kInherited;
    small::Shard& shard = shards_[arena->shard_index];
    SpinLockGuard guard(shard.lock());
    return shard.owns(*arena, pointer) ? Ownership::kLive : Ownership::kNotOwned;
  }
  return large_.ownership(pointer);
}

bool Heap::freed_range_reads_zero(const void* pointer, std::size_t length) {
  small::Arena* arena = registry_.find(pointer);
  if (arena == nullptr) return true;  // a freed large block is PROT_NONE or unmapped
  small::Shard& shard = shards_[arena->shard_index];
  SpinLockGuard guard(shard.lock());
  return shard.range_reads_zero(*arena, pointer, length);
}

void* Heap::allocate_guarded(std::size_t size) { return allocate_large(size, kMinAlignment, true); }

void* Heap::reallocate(void* pointer, std::size_t size) {
  constexpr auto kRealloc = report::Operation::kRealloc;
  std::size_t old_size = usable_size(pointer, kRealloc);
  bool guarded = large_.is_guarded(pointer);
  void* moved = guarded ? allocate_guarded(size) : allocate(size, kMinAlignment, kRealloc);
  if (moved == nullptr) return nullptr;  // the old block is untouched
  // A guarded secret moves to a new guarded secret, read-write; the old one must be readable.
  if (guarded) large_.protect(pointer, large::LargeHeap::Protection::kReadOnly);
  std::memcpy(moved, pointer, old_size < size ? old_size : size);
  free(pointer, kRealloc);  // zeroes the old block
  return moved;
}

Stats Heap::stats() {
  small::ShardStats small_stats;
  for (auto& shard : shards_) {
    SpinLockGuard guard(shard.lock());
    shard.add_stats(small_stats);
  }
  std::int64_t small_objects = retired_objects_.load(std::memory_order_relaxed);
  std::int64_t small_bytes = retired_bytes_.load(std::memory_order_relaxed);
  std::size_t quarantined_bytes = 0;
  {
    SpinLockGuard guard(caches_lock_);
    for (ThreadCache* cache = caches_; cache != nullptr; cache = cache->next) {
      small_objects += cache->live_objects.load(std::memory_order_relaxed);
      small_bytes += cache->live_bytes.load(std::memory_order_relaxed);
      for (std::size_t c = 0; c < small::kClassCount; ++c) {
        quarantined_bytes += cache->bins[c].quarantined() * small::kSlotSizes[c];
      }
    }
  }
  large::LargeStats large_stats;
  large_.add_stats(large_stats);
  Stats stats{};
  stats.locked_bytes = budget_.locked_bytes();
  stats.unlocked_bytes = budget_.unlocked_bytes();
  // Threads count what they allocate and free; one thread's frees of another's objects can make
  // a single counter negative, never the sum.
  stats.in_use_bytes = static_cast<std::size_t>(small_bytes) + large_stats.in_use_bytes;
  stats.live_allocations = static_cast<std::size_t>(small_objects) + large_stats.live_allocations;
  stats.reserved_bytes = small_stats.reserved_bytes + large_stats.reserved_bytes;
  stats.peak_locked_bytes = budget_.peak_locked_bytes();
  stats.memlock_limit = budget_.limit();
  stats.caller_locked_bytes = caller_locks_.locked_bytes();
  stats.secretmem_bytes = budget_.secretmem_bytes();
  stats.quarantined_bytes = quarantined_bytes;
  stats.quarantined_large_bytes = large_stats.quarantined_bytes;
  return stats;
}

void Heap::before_fork() {
  Heap& heap = instance();
  heap.caller_locks_.lock_for_fork();
  heap.caches_lock_.lock();
  for (auto& shard : heap.shards_) shard.lock().lock();
  heap.large_.lock_for_fork();
}

void Heap::after_fork_in_parent() {
  Heap& heap = instance();
  heap.large_.unlock_after_fork();
  for (auto& shard : heap.shards_) shard.lock().unlock();
  heap.caches_lock_.unlock();
  heap.caller_locks_.unlock_after_fork();
}

void Heap::after_fork_in_child() {
  Heap& heap = instance();
  heap.generation_.fetch_add(1, std::memory_order_relaxed);
  for (auto& shard : heap.shards_) shard.forget_arenas_after_fork();
  heap.large_.mark_inherited_after_fork();
  // Locks are not inherited: the child has none of the parent's caller locks either.
  heap.caller_locks_.reset_after_fork();
  heap.budget_.reset_after_fork();
  // The child has none of the secret arenas (MADV_DONTFORK) and must not reach them through the
  // descriptors either.
  heap.secretmem_pool_.close_after_fork();
  // Only the forking thread lives on. Its cached slots are in inherited (wiped) arenas, and
  // every count starts again from zero.
  heap.caches_ = nullptr;
  heap.retired_objects_.store(0, std::memory_order_relaxed);
  heap.retired_bytes_.store(0, std::memory_order_relaxed);
  heap.caches_lock_.reset_after_fork();
  // Every stream draws from a new key: the child's canaries and slot choices are not the
  // parent's.
  RandomStream::rekey_process();
  for (auto& shard : heap.shards_) shard.forget_random();
  heap.large_.forget_random();
  if (ThreadCache* cache = t_cache) {
    for (auto& bin : cache->bins) {
      bin.tail = 0;
      bin.ready.store(0, std::memory_order_relaxed);
      bin.head.store(0, std::memory_order_relaxed);
    }
    cache->random.forget();
    cache->live_objects.store(0, std::memory_order_relaxed);
    cache->live_bytes.store(0, std::memory_order_relaxed);
    cache->next = cache->prev = nullptr;
    heap.caches_ = cache;
  }
  heap.budget_.refresh_limit();
  // Memory locks are not inherited, mlockall(MCL_FUTURE) included: the child's pages are its own
  // to lock and unlock until it calls mlockall itself (and lockbox_set_mlockall, or lockbox
  // notices MCL_FUTURE again).
  pages::set_mlockall_active(false);
}

}  // namespace lockbox::heap
