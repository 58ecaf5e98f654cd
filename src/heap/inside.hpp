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

// 0 outside lockbox; 1 inside; 2 or more in a handler that interrupted a call (and so on).
extern constinit __attribute__((tls_model("initial-exec"))) thread_local
    std::atomic<std::uint32_t> t_inside;

// Slots a signal handler freed while this thread was inside lockbox: checked, zeroed and
// marked free already, they wait here (the list lives in the slots themselves) until the
// interrupted call returns and gives them back to the thread cache.
struct DeferredSlot {
  DeferredSlot* next;
  std::size_t requested;
};
extern constinit __attribute__((tls_model("initial-exec"))) thread_local
    std::atomic<DeferredSlot*> t_deferred;

// Entering and leaving. A signal handler's call enters and leaves in full before the
// interrupted code goes on, so a plain load and store (no locked instruction) keep the count
// right; the signal fences keep the compiler from moving the cache's accesses out of the span.
inline bool enter_lockbox() {
  std::uint32_t depth = t_inside.load(std::memory_order_relaxed);
  t_inside.store(depth + 1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
  return depth != 0;
}
// The fast paths' entry, once inside_lockbox() said no: one store.
inline void enter_lockbox_from_outside() {
  t_inside.store(1, std::memory_order_relaxed);
  std::atomic_signal_fence(std::memory_order_seq_cst);
}
inline void leave_lockbox() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  // release: another thread that reads 0 here and then takes this thread's cache sees every
  // change this thread made to it.
  t_inside.store(t_inside.load(std::memory_order_relaxed) - 1, std::memory_order_release);
}
// The fast paths' exit, paired with enter_lockbox_from_outside().
inline void leave_lockbox_to_outside() {
  std::atomic_signal_fence(std::memory_order_seq_cst);
  t_inside.store(0, std::memory_order_release);
}
inline bool inside_lockbox() { return t_inside.load(std::memory_order_relaxed) != 0; }

}  // namespace lockbox::heap
