// SPDX-License-Identifier: ISC
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

// Charges `bytes` of locked memory, reclaiming and re-reading the limit if needed.
bool charge(budget::Budget& budget, std::size_t bytes, Reclaimer reclaimer);
// The readable reasons (last_error) for the two ways locking fails.
void explain_over_budget(budget::Budget& budget, std::size_t bytes);
void explain_lock_refused(budget::Budget& budget, std::size_t bytes, int error);
// BEST_EFFORT: counts `bytes` as unlocked and warns on stderr the first time.
void note_unlocked_fallback(budget::Budget& budget, std::size_t bytes);

// Charges `bytes` and mlocks [addr, addr + bytes). When the kernel refuses what the budget
// allowed, the limit or the capability changed under lockbox (a daemon that started as root
// and dropped to a user, a setrlimit): they are read again and, if they moved, room is made and
// the lock tried once more, so lockbox then behaves as if it had started that way. 0, or the
// reason in last_error and an errno value (the budget is left as it was).
int charge_and_lock(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer);

// Makes [addr, addr+bytes) read-write and locks it. Over budget: asks `reclaimer` for room,
// then applies the policy: kFailed (STRICT; the range stays PROT_NONE, untouched when the
// budget refused, and the reason is in last_error) or kUnlocked (BEST_EFFORT; counted in
// unlocked bytes, warned once).
CommitResult commit(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer);

// Does the application lock all its memory itself (mlockall with MCL_FUTURE, or
// lockbox_set_mlockall(1))? Then lockbox must never munlock: one munlock of its own would undo
// the application's lock. mlockall is a fact of the whole process, so this is one flag for it.
bool mlockall_active();
void set_mlockall_active(bool yes);
// mlockall_active(), or one system call asking whether an empty page lockbox keeps for the
// purpose is locked (mlockall locked it); a positive answer is kept. No /proc, no scan.
bool detect_mlockall();

// Returns committed pages to the reserved state; their contents must already be zero. Never
// munlocks when `mlockall_active` (the caller asked once for a batch). False when the kernel
// has no room for the mapping the change needs (vm.max_map_count): the pages are then exactly
// as they were, still committed and counted, and the caller keeps them and tries again later.
// A free must never fail for a resource shortage.
[[nodiscard]] bool release(budget::Budget& budget, void* addr, std::size_t bytes, bool locked,
                           bool mlockall_active);

}  // namespace lockbox::pages
