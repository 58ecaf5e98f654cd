// SPDX-License-Identifier: ISC
// Whether this thread is inside lockbox, for the two readers that must know:
//   - a signal handler that calls lockbox on the thread it interrupted (lockbox_free to wipe a
//     secret on SIGTERM): when the thread was inside, the interrupted call may be halfway
//     through its thread cache or hold a shard's lock, so the handler's call takes a path that
//     touches neither (heap.cpp: a small free is checked, zeroed and marked free at once, and
//     given back to the cache when the interrupted call returns; an allocation is served by the
//     large heap, whose locks no handler can interrupt);
//   - another thread that ran out of budget and empties this thread's cache: it waits until
//     this thread is outside lockbox (heap.cpp, drain_other_caches).
// The count is the thread's own (initial-exec TLS, a few bytes: the library stays loadable
// with dlopen); other threads read it through the pointer each thread cache keeps.
#pragma once

#include <atomic>
#include <cstdint>

namespace lockbox::heap {

// Slots a signal handler freed while this thread was inside lockbox: checked, zeroed and
// marked free already, they wait in `deferred` (the list lives in the slots themselves) until
// the interrupted call returns and gives them back to the thread cache.
struct DeferredSlot {
  DeferredSlot* next;
  std::size_t requested;
};

struct ThreadCache;

// All of lockbox's thread-local state, in one block: a fast path reaches every field from one
// offset, which a shared library must load from its GOT (one load per variable before).
struct ThreadState {
  // 0 outside lockbox; 1 inside; 2 or more in a handler that interrupted a call (and so on).
  std::atomic<std::uint32_t> inside{0};
  // The thread's cache lives until the thread exits (support/thread_exit.hpp: after its TLS
  // destructors, which may still free secrets); cache_gone then keeps later frees off it.
  bool cache_gone = false;
  ThreadCache* cache = nullptr;
  std::atomic<DeferredSlot*> deferred{nullptr};
};
extern constinit __attribute__((tls_model("initial-exec"))) thread_local ThreadState t_state;

// Entering and leaving. A signal handler's call enters and leaves in full before the
// interrupted code goes on, so a plain load and store (no locked instruction) keep the count
// right; the signal fences keep the compiler from moving the cache's accesses out of the span.
inline bool enter_lockbox() {
  std::uint32_t depth = t_state.inside.load(std::memory_order_relaxed);
  t_state.inside.store(depth + 1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return depth != 0;
}
// The fast paths' entry, once inside_lockbox() said no: one store.
inline void enter_lockbox_from_outside() {
  t_state.inside.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
inline void leave_lockbox() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // release: another thread that reads 0 here and then takes this thread's cache sees every
  // change this thread made to it.
  t_state.inside.store(t_state.inside.load(std::memory_order_relaxed) - 1,
                       std::memory_order_release);
}
// The fast paths' exit, paired with enter_lockbox_from_outside().
inline void leave_lockbox_to_outside() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_state.inside.store(0, std::memory_order_release);
}
inline bool inside_lockbox() { return t_state.inside.load(std::memory_order_relaxed) != 0; }

}  // namespace lockbox::heap
