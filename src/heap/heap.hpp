// SPDX-License-Identifier: ISC
// The front door: lazy thread-safe start-up, the choice between small and large, thread caches
// and the shard each thread refills from, fork handling, and the lock order. A thread holding
// one of these locks takes only locks further down the list:
//   1. sealed/'s rekey lock, then a box's mutex (sealed boxes call into the heap holding them)
//   2. the thread-cache list's lock (held, by a thread that ran out of budget, while it waits
//      for each other thread to leave lockbox: no thread inside lockbox waits for this lock,
//      and no thread waits for it while it holds a lock that a thread inside lockbox may wait
//      for, so it comes before all of those)
//   3. the caller-lock table's lock
//   4. a shard's lock (stats and fork take every shard's, in index order; a reclaim that holds
//      one only try_locks the others)
//   5. the large heap's lock
//   6. innermost, never held together: the secretmem pool's lock (mapping a new arena's file),
//      the arena registry's insert lock (publishing a new arena) and the zero-byte objects'
//      lock (malloc(0), which takes no other)
// Fork takes 1 (sealed/'s handler runs first), then 2 to 5 and the zero-byte objects' lock, and
// releases them in the parent; the child starts every lock afresh. Fork also waits for a start
// of the heap in progress, and holds back a start until it is over (heap.cpp).
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "budget/budget.hpp"
#include "heap/caller_locks.hpp"
#include "heap/inside.hpp"
#include "large/large_heap.hpp"
#include "heap/thread_cache.hpp"
#include "heap/zero_size_objects.hpp"
#include "pages/secretmem_pool.hpp"
#include "report/report.hpp"
#include "small/arena_registry.hpp"
#include "small/shard.hpp"
#include "support/request_limit.hpp"

namespace lockbox::heap {

struct Stats {
  std::size_t locked_bytes;
  std::size_t unlocked_bytes;
  std::size_t in_use_bytes;
  std::size_t live_allocations;
  std::size_t reserved_bytes;
  std::size_t peak_locked_bytes;
  std::size_t memlock_limit;
  std::size_t caller_locked_bytes;
  std::size_t secretmem_bytes;
  std::size_t quarantined_bytes;
  std::size_t quarantined_large_bytes;
  std::size_t cached_large_bytes;
};

class Heap {
 public:
  static constexpr std::size_t kShards = 4;
  static constexpr std::size_t kMinAlignment = 16;

  // Once, when the library is loaded (heap.cpp).
  static void register_fork_handlers();

  // The heap, started on first use by whichever thread gets there first.
  static Heap& instance() {
    if (Heap* heap = started_.load(std::memory_order_acquire)) [[likely]]
      return *heap;
    return start();
  }

  // Every allocation below gives nullptr when memory or the budget runs out, with last_error
  // set; api/ says ENOMEM. (errno is set in one layer only: api/.)
  // malloc's path: default alignment, and small requests straight to the thread cache.
  // `operation` is the public call, for the fatal line if the slot handed out was written
  // after it was freed.
  void* allocate(std::size_t size, report::Operation operation) {
    // 1 to the limit: size 0 wraps round to the general path, with no test of its own here.
    if (size - 1 < small_request_limit()) [[likely]] {
      std::size_t class_index = small::class_for_request(size);
      return operation == report::Operation::kMalloc
                 ? allocate_small<true>(size, class_index, operation)
                 : allocate_small<false>(size, class_index, operation);
    }
    return allocate(size, kMinAlignment, operation);
  }

  // The largest request a slot serves (size_class.hpp says why it depends on the backend).
  std::size_t small_request_limit() const {
    return secretmem_pool_.serves_arenas() ? small::kMaxSecretmemSmallRequest
                                           : small::kMaxSmallRequest;
  }

  // nullptr with last_error set when out of memory or budget (api/ turns that into ENOMEM).
  // alignment: a power of two.
  void* allocate(std::size_t size, std::size_t alignment, report::Operation operation);
  void free(void* pointer, report::Operation operation);
  void* reallocate(void* pointer, std::size_t size);
  // A secret on its own locked pages between guard pages (lockbox_guarded_alloc).
  void* allocate_guarded(std::size_t size);
  int protect(void* pointer, large::LargeHeap::Protection protection) {
    return large_.protect(pointer, protection);
  }
  std::size_t usable_size(const void* pointer, report::Operation operation);
  bool owns(const void* pointer);
  // Whose is `pointer`: a live allocation of this process, one a forked child inherited from
  // its parent (whose memory is wiped or absent: it must not be read), or neither.
  using Ownership = large::LargeHeap::Ownership;
  Ownership ownership(const void* pointer);
  Stats stats();
  // Test hook: is `pointer` inside memory lockbox manages for secrets (an arena or the data
  // pages of a large block)?
  bool is_lockbox_memory(const void* pointer) {
    return registry_.find(pointer) != nullptr ||
           large_.contains_data_page(reinterpret_cast<std::uintptr_t>(pointer) &
                                     ~(std::uintptr_t{os::kPageSize} - 1));
  }
  // Test hook for freed memory: true if the range reads zero or was given back to the kernel.
  bool freed_range_reads_zero(const void* pointer, std::size_t length);
  budget::Budget& budget() { return budget_; }
  // lockbox_set_policy. A switch to STRICT while pages BEST_EFFORT could not lock are committed
  // empties every thread cache and shard quarantine first: their slots may lie on those pages,
  // and a cached slot is handed out with no look at its page. Back in their runs, a slot is
  // handed out only once its page is locked (Shard::acquire_page).
  void set_policy(budget::Policy policy);
  pages::SecretmemPool& secretmem_pool() { return secretmem_pool_; }

  // lockbox_lock / lockbox_unlock.
  CallerLocks& caller_locks() { return caller_locks_; }
  // A thread is exiting: its cached slots go back to the shards, its counts to the totals.
  static void retire_thread_cache(ThreadCache* cache);


 private:
  Heap();
  static Heap& start();
  // nullptr with last_error set on failure.
  // kFromMalloc: lockbox_malloc's call, whose operation is known (the fast path then keeps it
  // in no register).
  template <bool kFromMalloc>
  void* allocate_small(std::size_t size, std::size_t class_index, report::Operation operation);
  void* allocate_small_general(std::size_t size, std::size_t class_index,
                               report::Operation operation);
  void* allocate_small_entered(std::size_t size, std::size_t class_index,
                               report::Operation operation);
  // kFromFree: lockbox_free's call, whose operation is known (the fast path then keeps it in no
  // register).
  template <bool kFromFree>
  void free_small(small::Arena& arena, void* pointer, report::Operation operation);
  // A free of anything but a small slot: a zero-size object or a large block (or a fatal
  // report). Out of line, so that a small free saves no registers for it.
  void free_not_small(void* pointer, report::Operation operation);
  // The fast paths of the classes above the key sizes that thread caches quarantine (to 8 KiB):
  // those of the key sizes, plus the cached bytes the budget's share counts. Functions of their
  // own: their slots are scanned and zeroed by calls, which the key paths' frames do without.
  template <bool kFromMalloc>
  void* allocate_cached(std::size_t size, std::size_t class_index, report::Operation operation);
  template <bool kFromFree>
  void free_cached(small::Arena& arena, void* pointer, std::atomic<small::SlotWord>& slot,
                   small::SlotWord word, report::Operation operation);
  // What the two kinds of fast path share (heap.cpp).
  template <bool kKeySized>
  void* allocate_from_cache(ThreadCache* cache, std::size_t size, std::size_t class_index,
                            report::Operation operation);
  template <bool kKeySized>
  void free_to_cache(ThreadCache* cache, small::Arena& arena, void* pointer,
                     std::atomic<small::SlotWord>& slot, small::SlotWord word,
                     std::size_t class_index, report::Operation operation);
  void free_small_general(small::Arena& arena, void* pointer, report::Operation operation);
  // A signal handler's free on a thread that was inside lockbox: the slot is checked and
  // zeroed now and waits in t_state.deferred for the interrupted call to return.
  void free_small_in_handler(small::Arena& arena, void* pointer, report::Operation operation);
  // A fast path's slot, checked, zeroed and marked cached, that its bin cannot take now (full,
  // over the budget's share, or being drained): keep_freed_slot, inside lockbox.
  void keep_taken_back_slot(small::Arena& arena, void* pointer, small::FreedSlot freed);
  // A freed slot (checked and zeroed) joins this thread's cache, or its run when there is none.
  void keep_freed_slot(ThreadCache* cache, small::Arena& arena, void* pointer,
                       small::FreedSlot freed);
  // One object of `requested` bytes fewer: in the thread's own counts, or in the retired
  // totals when the thread has no cache.
  void count_freed_object(ThreadCache* cache, std::size_t requested);
  // `read` of a slot's word, under its shard's lock; without the lock in a handler that
  // interrupted lockbox, which cannot take it (a live slot's word needs none).
  template <typename Read>
  auto read_slot(small::Shard& shard, Read read) {
    if (inside_lockbox()) return read();
    enter_lockbox();
    auto result = [&] {
      FutexLockGuard guard(shard.lock());
      return read();
    }();
    leave_and_give_back_deferred(false);
    return result;
  }
  // Leaves lockbox; the outermost call then gives back what handlers freed meanwhile.
  void leave_and_give_back_deferred(bool was_inside);
  void give_back_deferred();
  void* give_back_deferred_then(void* pointer);
  // A large block or guarded secret; over budget, this thread's cache is emptied, and every
  // other thread's, and it tries once more (not in a handler: it may not touch the caches).
  void* allocate_large(std::size_t size, std::size_t alignment, bool guarded, bool in_handler);
  // This thread's cache, created on first use; nullptr once the thread is being torn down.
  ThreadCache* thread_cache();
  bool refill(ThreadCache& cache, std::size_t class_index);
  // Up to `wanted` slots of the class from shard `index`, under its lock; how many.
  std::size_t take_from_shard(std::uint32_t index, std::size_t class_index, std::size_t wanted,
                              small::CachedSlot* out);
  // Gives the oldest `count` slots of a bin back to their shards.
  void flush(ThreadCache& cache, std::size_t class_index, std::size_t count);
  // The bytes of slots above the key sizes that one thread's cache may hold while the budget
  // has less than that left: a share of RLIMIT_MEMLOCK, so that close to a small limit many
  // threads' caches cannot hold it all between them (README, "RLIMIT_MEMLOCK and threads").
  // Without a limit, no bound beyond the bins' own.
  static constexpr std::size_t kCacheShareOfLimit = 16;
  // How many times an allocation that ran out of budget empties the caches and tries again
  // (with many threads, others may take the room between the hand-over and the retry).
  static constexpr int kBudgetRetries = 4;
  std::size_t cache_share() const;
  // STRICT, with less than a cache's share of the budget left.
  bool close_to_limit() const;
  void shrink_to_share(ThreadCache& cache);
  // Every slot of the cache, quarantined or not; true if there was any.
  bool flush_all(ThreadCache& cache);
  // Out of budget: empties `cache` (may be null) and every other thread's cache; true if
  // anything went back, so that trying again may succeed. Called inside lockbox, never from a
  // handler.
  bool give_back_for_budget(ThreadCache* cache);
  // Empties every cache but `own`, each once its thread is outside lockbox. False without
  // membarrier (then the reclaim epoch asks the threads instead).
  bool drain_other_caches(const ThreadCache* own);
  // Inside lockbox: while another thread is emptying `cache`, step outside and wait.
  void wait_while_drained(ThreadCache& cache);
  // Another thread ran out of budget since this cache last looked: empty it.
  void answer_reclaim(ThreadCache& cache);
  bool is_inherited(const small::Arena& arena) const {
    return arena.generation != generation_.load(std::memory_order_relaxed);
  }
  struct ReclaimContext {
    small::Shard* shards;
    std::size_t held;  // the shard whose lock the caller holds, or kShards for none
    budget::Budget* budget;
    large::LargeHeap* large;
    // The caller's memory may stay unlocked under BEST_EFFORT (an allocation's pages; not a
    // caller lock, which must be the kernel's lock or fail).
    bool may_stay_unlocked;
  };
  // The reclaimer: the large blocks' cache first, then the shards' empty pages. Under
  // BEST_EFFORT, for memory that may stay unlocked, it leaves alone the empty pages of a shard
  // that drew on them within the trim delay: giving them up would only trade one locked page
  // for another, and that shard would trade it back the same way (five system calls and a TLB
  // shootdown each time: the churn of many threads past the budget).
  static bool reclaim_from_shards(void* context);


  static void before_fork();
  static void after_fork_in_parent();
  static void after_fork_in_child();
  static bool forked_before_start();

  static inline std::atomic<Heap*> started_{nullptr};
  budget::Budget budget_;
  small::ArenaRegistry registry_;
  small::Shard shards_[kShards];
  large::LargeHeap large_;
  pages::SecretmemPool secretmem_pool_;
  std::atomic<std::uint64_t> generation_{1};
  // Moved by a thread that ran out of budget; every cache empties itself when it sees it move.
  std::atomic<std::uint64_t> reclaim_epoch_{0};
  std::atomic<std::uint32_t> next_shard_{0};
  MaskedFutexLock caches_lock_;
  // Drains of other threads' caches begun (under caches_lock_): a thread that waited for the list
  // while another drain began has had every cache emptied after its own request.
  std::atomic<std::uint64_t> drains_begun_{0};
  ZeroSizeObjects zero_size_;
  bool process_barrier_ = false;  // membarrier is there: drain_other_caches can work
  os::SignalMask fork_signal_mask_;
  ThreadCache* caches_ = nullptr;
  // Objects and bytes counted by threads that have exited (or had no cache).
  std::atomic<std::int64_t> retired_objects_{0};
  std::atomic<std::int64_t> retired_bytes_{0};
  // Last: the members above are the allocation paths', kept together.
  // Room for caller locks comes from every shard, none of whose locks the caller holds.
  ReclaimContext unheld_reclaim_{shards_, kShards, &budget_, &large_, false};
  CallerLocks caller_locks_{registry_, shards_, large_, budget_, generation_,
                            pages::Reclaimer{&Heap::reclaim_from_shards, &unheld_reclaim_}};
};

}  // namespace lockbox::heap
