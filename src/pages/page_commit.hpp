// The life of a secret page at the kernel's level: commit (read-write, then a checked mlock)
// and release (munlock, discard, PROT_NONE). Small runs and large blocks both go through here,
// so there is one place where the budget, the policy and the syscalls meet.
#pragma once

#include <cstddef>

#include "budget/budget.hpp"

namespace lockbox::pages {

enum class CommitResult { kLocked, kUnlocked, kFailed };

// Frees locked-but-empty pages when the budget is short; returns true if it released any.
struct Reclaimer {
  bool (*reclaim)(void* context);
  void* context;
};

// Makes [addr, addr+bytes) read-write and locks it. Over budget: asks `reclaimer` for room,
// then applies the policy: kFailed (STRICT; the range is PROT_NONE again and the reason is in
// last_error) or kUnlocked (BEST_EFFORT; counted in unlocked bytes, warned once).
CommitResult commit(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer);

// Returns committed pages to the reserved state; their contents must already be zero.
void release(budget::Budget& budget, void* addr, std::size_t bytes, bool locked);

}  // namespace lockbox::pages
