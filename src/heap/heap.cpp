// SPDX-License-Identifier: ISC
// Dispatch between the small and the large heap, start-up and fork. A forked child keeps the
// parent's arenas mapped (wiped by MADV_WIPEONFORK) only so that its frees of inherited pointers
// are recognised; it allocates from fresh arenas and its stats start from zero.
#include "heap/heap.hpp"

#include <pthread.h>
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "heap/inside.hpp"
#include "heap/options.hpp"
#include "report/report.hpp"
#include "support/random_stream.hpp"
#include "small/size_class.hpp"
#include "small/slot.hpp"
#include "support/bench_switches.hpp"
#include "support/last_error.hpp"
#include "support/metadata.hpp"
#include "support/sanitizers.hpp"
#include "support/thread_exit.hpp"

namespace lockbox::heap {

constinit __attribute__((tls_model("initial-exec"))) thread_local ThreadState t_state;

namespace {

alignas(Heap) unsigned char g_heap_storage[sizeof(Heap)];

// initial-exec TLS (t_state, inside.hpp): one load to reach it instead of a __tls_get_addr call
// per operation. That makes the library's whole TLS block static: dlopen finds room for it in
// the surplus glibc keeps for such libraries (512 bytes by default) only because the block is a
// few dozen bytes (no thread_local buffers anywhere in lockbox; the dlopen tests check it).

void retire_this_threads_cache() {
  t_state.cache_gone = true;
  if (t_state.cache != nullptr) {
    ThreadCache* cache = t_state.cache;
    t_state.cache = nullptr;
    Heap::retire_thread_cache(cache);
  }
}

// Hands a random eligible slot of a bin that has one to the application, and counts it. The
// caller saw random bytes left in the cache's stream.
// Inlined: the fast path leaves lockbox after it, so it cannot be a tail call any more.
__attribute__((always_inline)) inline void* hand_out_cached(ThreadCache& cache,
                                                            std::size_t class_index,
                                                            std::size_t size,
                                                            report::Operation operation) {
  ThreadCache::Bin& bin = cache.bins[class_index];
  std::uint32_t pick = bench_switches::kNoRandom ? 0
                      : static_cast<std::uint32_t>(cache.random.below_buffered(bin.eligible()));
  small::CachedSlot slot = bin.take_eligible(pick);
  small::hand_out(slot, class_index, size, operation);
  cache.add_to_live_counts(1, static_cast<std::int64_t>(size));
  return slot.address;
}

// Where the start is, against fork. A fork copies only the forking thread: a child that
// inherited a start in progress would wait for it for ever. So fork waits for a start in
// progress to finish, and no start begins while a fork is in progress.
enum StartState : std::uint32_t { kNotStarted, kStarting, kForking, kStarted };
constinit std::atomic<std::uint32_t> g_start_state{kNotStarted};

// When the library is loaded, before anything can start the heap: registered at the end of
// the start, as they were, the handlers missed a fork in the middle of the start.
__attribute__((constructor)) void register_fork_handlers_on_load() {
  Heap::register_fork_handlers();
}

}  // namespace

void Heap::register_fork_handlers() {
  // Without these handlers a fork could copy a held lock into the child: fail closed.
  if (::pthread_atfork(&Heap::before_fork, &Heap::after_fork_in_parent,
                       &Heap::after_fork_in_child) != 0) {
    report::fatal_os_failure("pthread_atfork", nullptr);
  }
}

Heap& Heap::start() {
  // Exactly once, even when threads race to it; not a function-local static, whose guard a
  // signal handler that calls lockbox on the starting thread would wait on for ever. The thread
  // that starts the heap does it with signals blocked; the others wait for it. The heap is never
  // destroyed: other static destructors may still free secrets at exit.
  // Signals are blocked before the claim, not after: a handler that ran between the two (the
  // first call to block them may stop in the dynamic linker to resolve the symbol) would wait
  // below for the start its own thread had claimed and would never finish (signal_reentry
  // startup hung in about one run in eight).
  // Cancellation is off for the same reason: sodium_init reads getrandom, a cancellation point,
  // and a thread cancelled there would leave every other waiting below for ever.
  for (;;) {
    os::SignalMask saved;
    os::block_signals(&saved);
    std::uint32_t state = kNotStarted;
    if (g_start_state.compare_exchange_strong(state, kStarting, std::memory_order_acq_rel)) {
      {
        os::CancellationOff no_cancellation;
        started_.store(new (g_heap_storage) Heap, std::memory_order_release);
      }
      g_start_state.store(kStarted, std::memory_order_release);
    }
    os::restore_signals(saved);
    // Another thread is starting the heap, or forking before anyone has: wait, and claim the
    // start again once such a fork is over.
    for (;;) {
      if (Heap* heap = started_.load(std::memory_order_acquire)) return *heap;
      if (g_start_state.load(std::memory_order_acquire) == kNotStarted) break;
      os::yield_cpu();
    }
  }
}

Heap::Heap() {
  // Guard pages, page counts and every mprotect assume the page size lockbox was built for: a
  // 16 KiB or 64 KiB page kernel gets one clear line here, not mprotect failures later.
  if (os::page_size_from_kernel() != os::kPageSize) {
    report::fatal_unsupported_page_size(os::page_size_from_kernel(), os::kPageSize);
  }
  if (sodium_init() < 0) report::fatal_os_failure("sodium_init", nullptr);
  sanitizers::detect_memcheck();
  RandomStream::rekey_process();
  small::detail::detect_wide_vectors();
  budget_.refresh_limit();
  budget_.set_policy(options::policy_from_environment());
  secretmem_pool_.set_backend(options::backend_from_environment());
  if (!registry_.initialise()) report::fatal_os_failure("mmap (arena registry)", nullptr);
  // Without membarrier (a seccomp filter may refuse it) other threads' caches are emptied only
  // when those threads next visit a shard, as the reclaim epoch asks.
  process_barrier_ = os::register_process_barrier();
  // Without it a thread's exit would leave its cache's slots pinned: fail closed.
  if (!thread_exit::install(&retire_this_threads_cache, &release_last_error_message)) {
    report::fatal_os_failure("pthread_key_create", nullptr);
  }
}

ThreadCache* Heap::thread_cache() {
  if (t_state.cache != nullptr) return t_state.cache;
  if (t_state.cache_gone) return nullptr;
  // On lockbox's own memory: the C library's malloc may be what a signal handler interrupted.
  void* memory = metadata::map(sizeof(ThreadCache));
  if (memory == nullptr) return nullptr;  // served from the shards, as at thread exit
  auto* cache = new (memory) ThreadCache;
  cache->shard_index = next_shard_.fetch_add(1, std::memory_order_relaxed) % kShards;
  cache->inside = &t_state.inside;
  {
    MaskedLockGuard guard(caches_lock_);
    cache->next = caches_;
    if (caches_ != nullptr) caches_->prev = cache;
    caches_ = cache;
  }
  thread_exit::arm();
  t_state.cache = cache;
  return cache;
}

void Heap::retire_thread_cache(ThreadCache* cache) {
  Heap& heap = instance();
  enter_lockbox();
  heap.wait_while_drained(*cache);
  heap.flush_all(*cache);
  leave_lockbox();
  MaskedLockGuard guard(heap.caches_lock_);
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
  cache->~ThreadCache();
  metadata::unmap(cache, sizeof(ThreadCache));
}

void Heap::flush(ThreadCache& cache, std::size_t class_index, std::size_t count) {
  ThreadCache::Bin& bin = cache.bins[class_index];
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
  cache.count_cached(class_index, -static_cast<std::int64_t>(count));
}

bool Heap::flush_all(ThreadCache& cache) {
  bool flushed = false;
  // The bins above the key sizes hold cached_bytes between them: with none, only the key-sized
  // bins are read. A drain reads every other thread's cache, and each bin is a line of its
  // own: with 400 threads at the limit, reading 44 bins of each was a third of the time.
  std::size_t classes = cache.cached_bytes == 0 ? small::kKeySizedClasses : small::kClassCount;
  for (std::size_t c = 0; c < classes; ++c) {
    std::uint32_t held = cache.bins[c].held();
    if (held == 0) continue;
    flushed = true;
    flush(cache, c, held);
  }
  cache.reclaim_epoch = reclaim_epoch_.load(std::memory_order_relaxed);
  return flushed;
}

void Heap::set_policy(budget::Policy policy) {
  budget_.set_policy(policy);
  // From a handler that interrupted lockbox the caches are not this call's to touch.
  if (policy != budget::Policy::kStrict || budget_.unlocked_bytes() == 0 || inside_lockbox()) {
    return;
  }
  enter_lockbox();
  give_back_for_budget(t_state.cache);
  leave_and_give_back_deferred(false);
}

bool Heap::give_back_for_budget(ThreadCache* cache) {
  // The slots a thread keeps cached or quarantined pin locked pages: this thread's go back
  // now, and so do every other thread's (drain_other_caches); without membarrier, theirs go
  // back at their next visit to a shard, when they see the epoch move.
  reclaim_epoch_.fetch_add(1, std::memory_order_relaxed);
  // Another thread may be emptying this cache (it saw the thread outside lockbox before this
  // call entered): two flushes of one bin at once move its tail past its head. The large
  // blocks' path and set_policy come here with no other look at the request.
  if (cache != nullptr) wait_while_drained(*cache);
  bool gave_back = cache != nullptr && flush_all(*cache);
  // The shards' quarantines of slots above 8 KiB as well: no shard is held here, so none is in
  // the middle of an operation whose runs the returned slots could change.
  for (auto& shard : shards_) {
    FutexLockGuard guard(shard.lock());
    gave_back |= shard.empty_quarantine(budget_);
  }
  // Outside lockbox while it waits for the others: two threads that run out of budget at once
  // must not each wait for the other to leave.
  leave_lockbox();
  gave_back |= drain_other_caches(cache);
  enter_lockbox();
  if (cache != nullptr) wait_while_drained(*cache);
  return gave_back;
}

bool Heap::drain_other_caches(const ThreadCache* own) {
  if (!process_barrier_) return false;
  std::uint64_t begun_before = drains_begun_.load(std::memory_order_acquire);
  MaskedLockGuard guard(caches_lock_);
  // A drain that began after this thread ran out (it took the list after the reading above) has
  // emptied every other cache since, this thread's own included: the caller tries again with
  // what it gave back. Without this, every thread that ran out drained in turn, each waiting for
  // the list and then for every other thread (with a thousand threads at the limit, minutes).
  if (drains_begun_.load(std::memory_order_relaxed) != begun_before) return true;
  drains_begun_.fetch_add(1, std::memory_order_relaxed);
  bool any_other = false;
  for (ThreadCache* cache = caches_; cache != nullptr; cache = cache->next) {
    if (cache == own) continue;
    cache->drain_requested.store(kRequested, std::memory_order_relaxed);
    any_other = true;
  }
  if (!any_other) return false;
  // Dekker's handshake with each owner, whose side is a plain store (inside = 1) and a plain
  // load (drain_requested): the barrier runs a full fence on every thread of the process, so
  // either the owner's store is visible below, or its next load sees the request and it waits.
  bool barrier = os::process_barrier() == 0;
  bool gave_back = false;
  for (ThreadCache* cache = caches_; cache != nullptr; cache = cache->next) {
    if (cache == own) continue;
    if (barrier) {
      // The owner finishes the call it is in (a short one: it waits for nothing this thread
      // holds), then stays out until the request is withdrawn.
      wait_until_zero(*cache->inside);
      gave_back |= flush_all(*cache);
    }
    clear_request(cache->drain_requested);
  }
  return gave_back;
}

void Heap::wait_while_drained(ThreadCache& cache) {
  while (cache.drain_requested.load(std::memory_order_acquire) != 0) [[unlikely]] {
    leave_lockbox();
    sleep_until_cleared(cache.drain_requested);  // drain_other_caches wakes it
    enter_lockbox();
  }
}

void Heap::leave_and_give_back_deferred(bool was_inside) {
  leave_lockbox();
  if (!was_inside && t_state.deferred.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
    give_back_deferred();
}

void Heap::give_back_deferred() {
  enter_lockbox();
  ThreadCache* cache = t_state.cache;
  if (cache != nullptr) wait_while_drained(*cache);
  // A handler may free more while this runs: take the list again until it stays empty.
  while (DeferredSlot* slot = t_state.deferred.exchange(nullptr, std::memory_order_acquire)) {
    while (slot != nullptr) {
      DeferredSlot* next = slot->next;
      std::size_t requested = slot->requested;
      auto* pointer = reinterpret_cast<unsigned char*>(slot);
      std::memset(pointer, 0, sizeof(DeferredSlot));
      small::Arena* arena = registry_.find(pointer);
      std::size_t class_index = small::slot_class(
          small::slot_word_for(*arena, pointer)->load(std::memory_order_relaxed));
      sanitizers::poison(pointer, small::kSlotSizes[class_index]);
      keep_freed_slot(cache, *arena, pointer, {class_index, requested});
      slot = next;
    }
  }
  leave_lockbox();
}

void Heap::free_small_in_handler(small::Arena& arena, void* pointer,
                                 report::Operation operation) {
  if (is_inherited(arena)) {
    // The child never allocates from its parent's arenas: marking the slot free is the whole
    // of it (a second free is still a double free).
    small::retire_inherited_slot(arena, pointer, operation);
    return;
  }
  // Checked, zeroed and marked cached now, so the secret is gone when the handler returns;
  // the slot itself waits for the interrupted call to return.
  small::FreedSlot freed = small::take_back(arena, pointer, operation);
  auto* slot = static_cast<DeferredSlot*>(pointer);
  sanitizers::unpoison(slot, sizeof(DeferredSlot));
  slot->requested = freed.requested;
  DeferredSlot* head = t_state.deferred.load(std::memory_order_relaxed);
  do {
    slot->next = head;
  } while (!t_state.deferred.compare_exchange_weak(head, slot, std::memory_order_release,
                                                   std::memory_order_relaxed));
}

void Heap::answer_reclaim(ThreadCache& cache) {
  if (cache.reclaim_epoch != reclaim_epoch_.load(std::memory_order_relaxed)) [[unlikely]]
    flush_all(cache);
}

bool Heap::refill(ThreadCache& cache, std::size_t class_index) {
  answer_reclaim(cache);
  ThreadCache::Bin& bin = cache.bins[class_index];
  std::size_t wanted = ThreadCache::batch(class_index);
  // Close to the limit, the cache takes only what its share allows.
  if (close_to_limit()) {
    std::size_t room = cache.room_for(class_index, cache_share());
    if (room < wanted) wanted = room > 0 ? room : 1;
  }
  small::CachedSlot fresh[ThreadCache::kRingSlots];
  std::size_t taken = take_from_shard(cache.shard_index, class_index, wanted, fresh);
  // Other threads may take what the hand-over freed before this one gets to it: try again while
  // each hand-over gives something back, a few times.
  for (int attempt = 0; taken == 0 && attempt < kBudgetRetries && give_back_for_budget(&cache);
       ++attempt) {
    taken = take_from_shard(cache.shard_index, class_index, wanted, fresh);
  }
  // Still nothing: the budget is spent, but another shard may have free slots of this class
  // on pages it holds locked already. Without this, every shard in use would need its own
  // locked pages for every class, and the limit a program needs would grow with its threads.
  for (std::uint32_t step = 1; taken == 0 && step < kShards; ++step) {
    taken = take_from_shard((cache.shard_index + step) % kShards, class_index, wanted, fresh);
  }
  for (std::size_t i = 0; i < taken; ++i) bin.push_fresh(fresh[i]);
  cache.count_cached(class_index, static_cast<std::int64_t>(taken));
  return taken != 0;
}

std::size_t Heap::take_from_shard(std::uint32_t index, std::size_t class_index,
                                  std::size_t wanted, small::CachedSlot* out) {
  ReclaimContext context{shards_, index, &budget_, &large_, true};
  small::Shard& shard = shards_[index];
  FutexLockGuard guard(shard.lock());
  return shard.take_slots(class_index, wanted, out, generation_.load(std::memory_order_relaxed),
                          index, registry_, budget_,
                          pages::Reclaimer{&Heap::reclaim_from_shards, &context},
                          &secretmem_pool_);
}

// The fast paths: a key-sized slot from, or to, a thread cache that has one, or room for one.
// They take no lock and call nothing that returns (only the fatal reports); everything else
// goes to the general paths below, by a tail call. Slots above the key sizes, to 8 KiB, have
// fast paths of their own (allocate_cached, free_cached), which may call the scan and memset.
// Each enters lockbox (inside.hpp) before it reads its cache: a thread that runs out of budget
// may be emptying it, and a signal handler that calls lockbox while the thread is inside must
// not touch it. Either case goes to the general paths.

// The body both allocation fast paths share: a slot from this thread's bin, or the general
// path. Key-sized slots are checked and zeroed in line (no loop, no call); the cached classes
// above them count the bytes their bins hold.
template <bool kKeySized>
__attribute__((always_inline)) inline void* Heap::allocate_from_cache(
    ThreadCache* cache, std::size_t size, std::size_t class_index, report::Operation operation) {
  if (cache == nullptr || inside_lockbox()) [[unlikely]]
    return allocate_small_general(size, class_index, operation);
  enter_lockbox_from_outside();
  if (cache->drain_requested.load(std::memory_order_acquire) != 0 ||
      cache->bins[class_index].eligible() == 0 || cache->random.remaining() == 0) [[unlikely]] {
    leave_lockbox_to_outside();
    return allocate_small_general(size, class_index, operation);
  }
  if constexpr (kKeySized) {
    if (small::kSlotSizes[class_index] > 64) __builtin_unreachable();  // no loop, no call
  } else {
    cache->count_cached(class_index, -1);
  }
  void* pointer = hand_out_cached(*cache, class_index, size, operation);
  leave_lockbox_to_outside();
  if (t_state.deferred.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
    return give_back_deferred_then(pointer);
  return pointer;
}

// The body both free fast paths share, once the caller saw a live thread cache, an arena of this
// process, this thread outside lockbox and the slot's word (`word`, read with acquire).
template <bool kKeySized>
__attribute__((always_inline)) inline void Heap::free_to_cache(
    ThreadCache* cache, small::Arena& arena, void* pointer, std::atomic<small::SlotWord>& slot,
    small::SlotWord word, std::size_t class_index, report::Operation operation) {
  if constexpr (kKeySized) {
    if (small::kSlotSizes[class_index] > 64) __builtin_unreachable();
  }
  // Checked, zeroed and marked cached before the cache is entered: from the atomic step on the
  // slot is this thread's alone, and none of the checks reads the cache. So the cache's state
  // is not held in registers across the checks (one fewer reason for the key path to save
  // registers on entry), and a bin that cannot take the slot costs no second look at it.
  small::FreedSlot freed = small::take_back(pointer, slot, word, operation);
  enter_lockbox_from_outside();
  ThreadCache::Bin& bin = cache->bins[class_index];
  // A full bin, or (above the key sizes) a cache at its share of the budget: the general path
  // flushes or shrinks.
  bool over_share = !kKeySized && cache->cached_bytes + small::kSlotSizes[class_index] >
                                      cache_share();
  if (cache->drain_requested.load(std::memory_order_acquire) != 0 ||
      bin.held() == ThreadCache::limit(class_index) || over_share) [[unlikely]] {
    leave_lockbox_to_outside();
    return keep_taken_back_slot(arena, pointer, freed);
  }
  cache->add_to_live_counts(-1, -static_cast<std::int64_t>(freed.requested));
  bin.push_freed(static_cast<unsigned char*>(pointer), &arena,
                 ThreadCache::quarantine(class_index));
  if constexpr (!kKeySized) cache->count_cached(class_index, 1);
  leave_lockbox_to_outside();
  if (t_state.deferred.load(std::memory_order_relaxed) != nullptr) [[unlikely]]
    give_back_deferred();
}

template <bool kFromMalloc>
void* Heap::allocate_small(std::size_t size, std::size_t class_index,
                           report::Operation operation) {
  if constexpr (kFromMalloc) operation = report::Operation::kMalloc;  // a constant
  if (class_index >= small::kKeySizedClasses)
    return allocate_cached<kFromMalloc>(size, class_index, operation);
  return allocate_from_cache<true>(t_state.cache, size, class_index, operation);
}

// Both are called from heap.hpp's inline allocate().
template void* Heap::allocate_small<true>(std::size_t, std::size_t, report::Operation);
template void* Heap::allocate_small<false>(std::size_t, std::size_t, report::Operation);

template <bool kFromFree>
void Heap::free_small(small::Arena& arena, void* pointer, report::Operation operation) {
  if constexpr (kFromFree) operation = report::Operation::kFree;  // a constant, not a register
  ThreadCache* cache = t_state.cache;
  std::atomic<small::SlotWord>* slot = small::slot_word_for(arena, pointer);
  if (cache == nullptr || slot == nullptr || is_inherited(arena) || inside_lockbox()) [[unlikely]]
    return free_small_general(arena, pointer, operation);
  // The slot's word is the object's, not the cache's: it may be read before entering. Acquire:
  // take_back checks the canary hand_out wrote before its release, from another thread perhaps.
  small::SlotWord word = slot->load(std::memory_order_acquire);
  std::size_t class_index = small::slot_class(word);
  if (class_index >= small::kKeySizedClasses) {
    return free_cached<kFromFree>(arena, pointer, *slot, word, operation);
  }
  free_to_cache<true>(cache, arena, pointer, *slot, word, class_index, operation);
}

// Not inlined into the key paths, whose frames and saved registers would grow with them.
template <bool kFromMalloc>
__attribute__((noinline)) void* Heap::allocate_cached(std::size_t size, std::size_t class_index,
                                                      report::Operation operation) {
  if constexpr (kFromMalloc) operation = report::Operation::kMalloc;
  if (small::Shard::quarantines(class_index)) [[unlikely]]
    return allocate_small_general(size, class_index, operation);
  return allocate_from_cache<false>(t_state.cache, size, class_index, operation);
}

template <bool kFromFree>
__attribute__((noinline)) void Heap::free_cached(small::Arena& arena, void* pointer,
                                                 std::atomic<small::SlotWord>& slot,
                                                 small::SlotWord word,
                                                 report::Operation operation) {
  if constexpr (kFromFree) operation = report::Operation::kFree;
  std::size_t class_index = small::slot_class(word);
  if (small::Shard::quarantines(class_index)) return free_small_general(arena, pointer, operation);
  free_to_cache<false>(t_state.cache, arena, pointer, slot, word, class_index, operation);
}

__attribute__((noinline)) void* Heap::give_back_deferred_then(void* pointer) {
  give_back_deferred();
  return pointer;
}

void* Heap::allocate_small_general(std::size_t size, std::size_t class_index,
                                   report::Operation operation) {
  // In a handler that interrupted this thread inside lockbox: a block of its own, from the
  // large heap, whose locks no handler interrupts.
  if (inside_lockbox()) return allocate_large(size, kMinAlignment, false, true);
  enter_lockbox();
  void* pointer = allocate_small_entered(size, class_index, operation);
  leave_and_give_back_deferred(false);
  return pointer;
}

void* Heap::allocate_small_entered(std::size_t size, std::size_t class_index,
                                   report::Operation operation) {
  ThreadCache* cache = thread_cache();
  if (cache == nullptr) {
    // A thread in its last TLS destructors, or no memory for a cache: take the shard lock for
    // this one allocation.
    std::uint32_t index = 0;
    ReclaimContext context{shards_, index, &budget_, &large_, true};
    FutexLockGuard guard(shards_[index].lock());
    void* pointer = shards_[index].allocate(
        size, class_index, operation, generation_.load(std::memory_order_relaxed), index,
        registry_, budget_, pages::Reclaimer{&Heap::reclaim_from_shards, &context},
        &secretmem_pool_);
    if (pointer == nullptr) return nullptr;
    retired_objects_.fetch_add(1, std::memory_order_relaxed);
    retired_bytes_.fetch_add(static_cast<std::int64_t>(size), std::memory_order_relaxed);
    return pointer;
  }
  wait_while_drained(*cache);
  if (cache->bins[class_index].eligible() == 0 && !refill(*cache, class_index)) return nullptr;
  if (cache->random.remaining() == 0) cache->random.refill();
  cache->count_cached(class_index, -1);
  return hand_out_cached(*cache, class_index, size, operation);
}

void Heap::free_small_general(small::Arena& arena, void* pointer, report::Operation operation) {
  if (inside_lockbox()) return free_small_in_handler(arena, pointer, operation);
  // Checked and zeroed outside, as on the fast path (free_to_cache says why that is safe).
  if (!is_inherited(arena))
    return keep_taken_back_slot(arena, pointer, small::take_back(arena, pointer, operation));
  enter_lockbox();
  ThreadCache* cache = thread_cache();
  if (cache != nullptr) wait_while_drained(*cache);
  small::Shard& shard = shards_[arena.shard_index];
  {
    FutexLockGuard guard(shard.lock());
    shard.free_inherited(arena, pointer, operation);
  }
  leave_and_give_back_deferred(false);
}

__attribute__((noinline)) void Heap::keep_taken_back_slot(small::Arena& arena, void* pointer,
                                                         small::FreedSlot freed) {
  enter_lockbox();
  ThreadCache* cache = thread_cache();
  if (cache != nullptr) wait_while_drained(*cache);
  keep_freed_slot(cache, arena, pointer, freed);
  leave_and_give_back_deferred(false);
}

void Heap::count_freed_object(ThreadCache* cache, std::size_t requested) {
  if (cache != nullptr) {
    cache->add_to_live_counts(-1, -static_cast<std::int64_t>(requested));
  } else {
    retired_objects_.fetch_sub(1, std::memory_order_relaxed);
    retired_bytes_.fetch_sub(static_cast<std::int64_t>(requested), std::memory_order_relaxed);
  }
}

void Heap::keep_freed_slot(ThreadCache* cache, small::Arena& arena, void* pointer,
                           small::FreedSlot freed) {
  if (small::Shard::quarantines(freed.class_index)) {
    // The big classes wait in their shard's quarantine (shard.hpp says why), whatever thread
    // frees them.
    small::Shard& shard = shards_[arena.shard_index];
    {
      FutexLockGuard guard(shard.lock());
      shard.quarantine_slot({static_cast<unsigned char*>(pointer), &arena}, freed.class_index,
                            budget_);
    }
    count_freed_object(cache, freed.requested);
    if (cache != nullptr) answer_reclaim(*cache);
    return;
  }
  if (cache == nullptr) {
    // No cache (a thread in its last TLS destructors): the slot goes straight back to its run.
    small::Shard& shard = shards_[arena.shard_index];
    FutexLockGuard guard(shard.lock());
    shard.return_slot({static_cast<unsigned char*>(pointer), &arena}, budget_);
    count_freed_object(cache, freed.requested);
    return;
  }
  count_freed_object(cache, freed.requested);
  ThreadCache::Bin& bin = cache->bins[freed.class_index];
  if (bin.held() == ThreadCache::limit(freed.class_index)) [[unlikely]] {
    answer_reclaim(*cache);
    // Still full: the oldest half of the eligible slots go back to their runs. A full bin has
    // at least eligible_limit() eligible slots, so the quarantine stays whole.
    if (bin.held() == ThreadCache::limit(freed.class_index)) {
      flush(*cache, freed.class_index, ThreadCache::batch(freed.class_index));
    }
  }
  bin.push_freed(static_cast<unsigned char*>(pointer), &arena,
                 ThreadCache::quarantine(freed.class_index));
  cache->count_cached(freed.class_index, 1);
  if (cache->cached_bytes > cache_share() && close_to_limit()) [[unlikely]]
    shrink_to_share(*cache);
}

bool Heap::close_to_limit() const {
  // BEST_EFFORT never fails an allocation for the limit: its caches stay whole.
  return budget_.policy() == budget::Policy::kStrict && !budget_.has_room(cache_share());
}

std::size_t Heap::cache_share() const {
  std::size_t limit = budget_.limit();
  return limit == SIZE_MAX ? SIZE_MAX : limit / kCacheShareOfLimit;
}

void Heap::shrink_to_share(ThreadCache& cache) {
  // The biggest slots first, the oldest of each (the quarantine last), down to half the share
  // so that the next frees do not come straight back here.
  std::size_t target = cache_share() / 2;
  for (std::size_t c = small::kClassCount; c-- > small::kKeySizedClasses;) {
    if (cache.cached_bytes <= target) break;
    std::size_t over = (cache.cached_bytes - target + small::kSlotSizes[c] - 1) /
                       small::kSlotSizes[c];
    std::size_t held = cache.bins[c].held();
    flush(cache, c, over < held ? over : held);
  }
}

bool Heap::reclaim_from_shards(void* context) {
  auto* reclaim = static_cast<ReclaimContext*>(context);
  // Freed large blocks kept for reuse go first: they serve no live object.
  if (reclaim->large->release_cache(*reclaim->budget)) return true;
  bool spare_busy_reserves =
      reclaim->may_stay_unlocked && reclaim->budget->policy() == budget::Policy::kBestEffort;
  std::uint64_t now_ms = spare_busy_reserves ? os::coarse_milliseconds() : 0;
  std::uint64_t delay_ms = small::Shard::kTrimDelayMs;
  std::uint64_t recent_ms = now_ms > delay_ms ? now_ms - delay_ms : 0;
  auto spared = [&](const small::Shard& shard) {
    return spare_busy_reserves && shard.drew_on_reserve_since(recent_ms);
  };
  bool released = false;
  for (std::size_t i = 0; i < kShards; ++i) {
    small::Shard& shard = reclaim->shards[i];
    if (i == reclaim->held) {
      // In the middle of this shard's take_slots: its pages only, not its quarantine (whose
      // slots would go back to runs that take_slots may be using); give_back_for_budget
      // empties that one once no shard is held.
      if (!spared(shard)) released |= shard.release_empty_pages(*reclaim->budget);
    } else if (shard.lock().try_lock()) {
      // try_lock only: waiting here while holding our own shard could deadlock.
      if (!spared(shard)) {
        released |= shard.empty_quarantine(*reclaim->budget);
        released |= shard.release_empty_pages(*reclaim->budget);
      }
      shard.lock().unlock();
    }
  }
  return released;
}

void* Heap::allocate(std::size_t size, std::size_t alignment, report::Operation operation) {
  if (alignment < kMinAlignment) alignment = kMinAlignment;
  if (size == 0 && alignment <= ZeroSizeObjects::kMaxAlignment) {
    if (void* object = zero_size_.allocate(alignment)) return object;
    // Every address of the range is live (or it could not be reserved): an ordinary slot.
  }
  std::size_t class_index =
      size > small_request_limit() ? small::kClassCount
      : alignment == kMinAlignment   ? small::class_for_request(size)
      : alignment <= os::kPageSize   ? small::class_for_aligned_request(size, alignment)
                                     : small::kClassCount;
  // An alignment can need a bigger slot than the size: not beyond the backend's biggest.
  if (class_index < small::kClassCount &&
      small::kSlotSizes[class_index] > small_request_limit() + small::kMinCanaryBytes) {
    class_index = small::kClassCount;
  }
  if (class_index < small::kClassCount) {
    // In a handler that interrupted lockbox, a small request becomes a large block: with the
    // alignment asked for (allocate_small's own handler path knows only the default one).
    if (inside_lockbox()) return allocate_large(size, alignment, false, true);
    return allocate_small<false>(size, class_index, operation);
  }
  bool was_inside = enter_lockbox();
  void* pointer = allocate_large(size, alignment, false, was_inside);
  leave_and_give_back_deferred(was_inside);
  return pointer;
}

void* Heap::allocate_large(std::size_t size, std::size_t alignment, bool guarded,
                           bool in_handler) {
  for (int attempt = 0;; ++attempt) {
    ReclaimContext context{shards_, kShards, &budget_, &large_, true};
    void* pointer = large_.allocate(size, alignment, budget_,
                                    pages::Reclaimer{&Heap::reclaim_from_shards, &context},
                                    guarded);
    // A handler must not touch the caches the interrupted call may be changing.
    if (pointer != nullptr || attempt == kBudgetRetries || in_handler ||
        !give_back_for_budget(t_state.cache)) {
      return pointer;
    }
  }
}

void Heap::free(void* pointer, report::Operation operation) {
  if (small::Arena* arena = registry_.find(pointer)) [[likely]]
    return operation == report::Operation::kFree ? free_small<true>(*arena, pointer, operation)
                                                 : free_small<false>(*arena, pointer, operation);
  free_not_small(pointer, operation);
}

__attribute__((noinline)) void Heap::free_not_small(void* pointer, report::Operation operation) {
  if (zero_size_.contains(pointer)) {
    switch (zero_size_.free(pointer)) {
      case ZeroSizeObjects::FreeResult::kFreed:
        return;
      case ZeroSizeObjects::FreeResult::kDoubleFree:
        report::fatal_double_free(operation, pointer);
      case ZeroSizeObjects::FreeResult::kNotAllocated:
        report::fatal_invalid_pointer(operation, pointer);
    }
  }
  // The large heap's and the caller-lock table's locks are masked: a handler may take them.
  bool was_inside = enter_lockbox();
  std::uintptr_t mapping = 0;
  std::size_t mapping_bytes = 0;
  switch (large_.free(pointer, budget_, operation, &mapping, &mapping_bytes)) {
    case large::LargeHeap::FreeResult::kFreed:
      caller_locks_.forget_range(mapping, mapping_bytes);
      break;
    case large::LargeHeap::FreeResult::kDoubleFree:
      report::fatal_double_free(operation, pointer);
    case large::LargeHeap::FreeResult::kNotAllocated:
      report::fatal_invalid_pointer(operation, pointer);
  }
  leave_and_give_back_deferred(was_inside);
}

std::size_t Heap::usable_size(const void* pointer, report::Operation operation) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    return read_slot(shard, [&] { return shard.usable_size(*arena, pointer, operation); });
  }
  if (zero_size_.contains(pointer)) {
    if (!zero_size_.is_live(pointer)) report::fatal_invalid_pointer(operation, pointer);
    return 0;
  }
  std::size_t size = 0;
  if (!large_.usable_size(pointer, &size)) report::fatal_invalid_pointer(operation, pointer);
  return size;
}

bool Heap::owns(const void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    small::Shard& shard = shards_[arena->shard_index];
    return read_slot(shard, [&] { return shard.owns(*arena, pointer); });
  }
  if (zero_size_.contains(pointer)) return zero_size_.is_live(pointer);
  std::size_t size = 0;
  return large_.usable_size(pointer, &size);
}

Heap::Ownership Heap::ownership(const void* pointer) {
  if (small::Arena* arena = registry_.find(pointer)) {
    if (is_inherited(*arena)) return Ownership::kInherited;
    small::Shard& shard = shards_[arena->shard_index];
    bool live = read_slot(shard, [&] { return shard.owns(*arena, pointer); });
    return live ? Ownership::kLive : Ownership::kNotOwned;
  }
  if (zero_size_.contains(pointer)) {
    return zero_size_.is_live(pointer) ? Ownership::kLive : Ownership::kNotOwned;
  }
  return large_.ownership(pointer);
}

bool Heap::freed_range_reads_zero(const void* pointer, std::size_t length) {
  small::Arena* arena = registry_.find(pointer);
  if (arena == nullptr) return true;  // a freed large block is PROT_NONE or unmapped
  small::Shard& shard = shards_[arena->shard_index];
  FutexLockGuard guard(shard.lock());
  return shard.range_reads_zero(*arena, pointer, length);
}

void* Heap::allocate_guarded(std::size_t size) {
  // The secret ends exactly at its trailing guard page, so that any overflow faults at once, a
  // NUL byte included (a canary's first byte is zero, so a NUL in the slack would go unseen;
  // libsodium's sodium_utils2 writes exactly that). Its alignment is the largest power of two
  // that divides its size, up to 16: all that an object or array of that size can need, since a
  // type's size is a multiple of its alignment.
  std::size_t natural = size & (~size + 1);  // the lowest set bit; 0 when size is 0
  std::size_t alignment = natural == 0 || natural > kMinAlignment ? kMinAlignment : natural;
  bool was_inside = enter_lockbox();
  void* secret = allocate_large(size, alignment, true, was_inside);
  leave_and_give_back_deferred(was_inside);
  return secret;
}

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
  if (inside_lockbox()) report::fatal_not_async_signal_safe("lockbox_get_stats");
  small::ShardStats small_stats;
  enter_lockbox();
  for (auto& shard : shards_) {
    FutexLockGuard guard(shard.lock());
    shard.add_stats(small_stats);
  }
  // Outside again for the list of caches: a thread that empties caches holds that lock while
  // it waits for every other thread to be outside.
  leave_and_give_back_deferred(false);
  std::int64_t small_objects = retired_objects_.load(std::memory_order_relaxed);
  std::int64_t small_bytes = retired_bytes_.load(std::memory_order_relaxed);
  std::size_t quarantined_bytes = small_stats.quarantined_bytes;
  {
    MaskedLockGuard guard(caches_lock_);
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
  stats.live_allocations = static_cast<std::size_t>(small_objects) +
                           large_stats.live_allocations + zero_size_.live_objects();
  stats.reserved_bytes =
      small_stats.reserved_bytes + large_stats.reserved_bytes + zero_size_.reserved_bytes();
  stats.peak_locked_bytes = budget_.peak_locked_bytes();
  stats.memlock_limit = budget_.limit();
  stats.caller_locked_bytes = caller_locks_.locked_bytes();
  stats.secretmem_bytes = budget_.secretmem_bytes();
  stats.quarantined_bytes = quarantined_bytes;
  stats.quarantined_large_bytes = large_stats.quarantined_bytes;
  stats.cached_large_bytes = large_stats.cached_bytes;
  return stats;
}

void Heap::before_fork() {
  // A start in progress on another thread finishes first, and none begins until the fork is
  // over: a heap that was never started has nothing to lock.
  std::uint32_t state = kNotStarted;
  while (!g_start_state.compare_exchange_weak(state, kForking, std::memory_order_acq_rel)) {
    if (state == kStarted) break;
    os::yield_cpu();  // another thread is starting the heap, or forking before anyone has
    state = kNotStarted;
  }
  if (state != kStarted) return;
  Heap& heap = instance();
  // No handler may run between here and the child's reset: it could find a lock held.
  os::block_signals(&heap.fork_signal_mask_);
  // The list of caches first (heap.hpp, the lock order): a thread that holds it waits for the
  // others to leave lockbox, and one of them may be inside lockbox_lock, waiting for the
  // caller-lock table's lock that this thread would otherwise hold.
  heap.caches_lock_.lock();
  heap.caller_locks_.lock_for_fork();
  for (auto& shard : heap.shards_) shard.lock().lock();
  heap.large_.lock_for_fork();
  heap.zero_size_.lock_for_fork();
}

// True (and the start is open again) if the fork happened before the heap was started.
bool Heap::forked_before_start() {
  if (g_start_state.load(std::memory_order_relaxed) != kForking) return false;
  g_start_state.store(kNotStarted, std::memory_order_release);
  return true;
}

void Heap::after_fork_in_parent() {
  if (forked_before_start()) return;
  Heap& heap = instance();
  heap.zero_size_.unlock_after_fork();
  heap.large_.unlock_after_fork();
  for (auto& shard : heap.shards_) shard.lock().unlock();
  heap.caller_locks_.unlock_after_fork();
  heap.caches_lock_.unlock();
  os::restore_signals(heap.fork_signal_mask_);
}

void Heap::after_fork_in_child() {
  if (forked_before_start()) return;
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
  heap.zero_size_.reset_after_fork();
  // Every stream draws from a new key: the child's canaries and slot choices are not the
  // parent's.
  RandomStream::rekey_process();
  for (auto& shard : heap.shards_) shard.forget_random();
  heap.large_.forget_random();
  if (ThreadCache* cache = t_state.cache) {
    for (auto& bin : cache->bins) {
      bin.tail = 0;
      bin.ready.store(0, std::memory_order_relaxed);
      bin.head.store(0, std::memory_order_relaxed);
    }
    cache->random.forget();
    cache->cached_bytes = 0;
    cache->drain_requested.store(0, std::memory_order_relaxed);
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
  // membarrier's registration belongs to the parent's address space.
  heap.process_barrier_ = os::register_process_barrier();
  os::restore_signals(heap.fork_signal_mask_);
}

}  // namespace lockbox::heap
