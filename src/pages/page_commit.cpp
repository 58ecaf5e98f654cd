// SPDX-License-Identifier: ISC
// Commit and release of secret pages: the budget is charged before mlock and refunded if the
// kernel refuses, so the budget never disagrees with VmLck.
#include "pages/page_commit.hpp"

#include <atomic>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "os/os.hpp"
#include "report/report.hpp"
#include "support/last_error.hpp"

namespace lockbox::pages {
namespace {

void warn_unlocked_once(budget::Budget& budget) {
  if (!budget.first_unlocked_fallback()) return;
  char line[256];
  int length = std::snprintf(
      line, sizeof line,
      "lockbox: warning: cannot lock more memory (RLIMIT_MEMLOCK %zu bytes, %zu locked); "
      "LOCKBOX_POLICY=best-effort continues with unlocked pages\n",
      budget.limit(), budget.locked_bytes());
  if (length > 0) os::write_stderr(line, static_cast<std::size_t>(length));
}

}  // namespace

bool charge(budget::Budget& budget, std::size_t bytes, Reclaimer reclaimer) {
  if (budget.try_charge_locked(bytes)) return true;
  // Empty pages kept locked for reuse are the first thing to give up.
  while (reclaimer.reclaim != nullptr && reclaimer.reclaim(reclaimer.context)) {
    if (budget.try_charge_locked(bytes)) return true;
  }
  // The limit may have been raised with setrlimit() since lockbox last looked. BEST_EFFORT
  // looks once per clock tick at most: past the budget it fails a charge for every page it
  // commits, and an unlocked page is locked once it is reused with room in the budget.
  if (budget.policy() == budget::Policy::kBestEffort && !budget.limit_reading_due()) return false;
  budget.refresh_limit();
  return budget.try_charge_locked(bytes);
}

void explain_over_budget(budget::Budget& budget, std::size_t bytes) {
  set_last_error(
      "cannot lock %zu more bytes: RLIMIT_MEMLOCK is %zu bytes and lockbox already "
      "holds %zu bytes locked; free secrets, raise the limit (ulimit -l, prlimit "
      "--memlock, LimitMEMLOCK= in systemd), or set LOCKBOX_POLICY=best-effort",
      bytes, budget.limit(), budget.locked_bytes());
}

void explain_lock_refused(budget::Budget& budget, std::size_t bytes, int error) {
  set_last_error(
      "cannot lock %zu bytes: mlock failed (%s); memory the application locks "
      "itself counts against the same RLIMIT_MEMLOCK (%zu bytes)",
      bytes, std::strerror(error), budget.limit());
}

void note_unlocked_fallback(budget::Budget& budget, std::size_t bytes) {
  budget.add_unlocked(bytes);
  warn_unlocked_once(budget);
}

namespace {

// charge_and_lock once `bytes` are charged: the charge is refunded if the kernel refuses.
int lock_charged(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer) {
  for (int attempt = 0;; ++attempt) {
    int error = os::lock(addr, bytes);
    if (error == 0) return 0;
    budget.release_locked(bytes);
    if (attempt == 1 || !budget.refresh_limit()) {
      explain_lock_refused(budget, bytes, error);
      return error;
    }
    if (!charge(budget, bytes, reclaimer)) {
      explain_over_budget(budget, bytes);
      return ENOMEM;
    }
  }
}

}  // namespace

int charge_and_lock(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer) {
  if (!charge(budget, bytes, reclaimer)) {
    explain_over_budget(budget, bytes);
    return ENOMEM;
  }
  return lock_charged(budget, addr, bytes, reclaimer);
}

CommitResult commit(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer) {
  // The charge comes first: under STRICT an allocation the budget refuses leaves the range as
  // it was. Made read-write first, as it was, every refusal at the limit cost two mprotects
  // (there and back) and a TLB shootdown.
  bool charged = charge(budget, bytes, reclaimer);
  if (!charged) {
    explain_over_budget(budget, bytes);
    if (budget.policy() == budget::Policy::kStrict) return CommitResult::kFailed;
  }
  if (int err = os::protect_read_write(addr, bytes)) {
    if (charged) budget.release_locked(bytes);
    set_last_error(
        "cannot commit %zu bytes: mprotect failed (%s); vm.max_map_count may be "
        "exhausted",
        bytes, std::strerror(err));
    return CommitResult::kFailed;
  }
  if (charged && lock_charged(budget, addr, bytes, reclaimer) == 0) return CommitResult::kLocked;
  if (budget.policy() == budget::Policy::kBestEffort) {
    note_unlocked_fallback(budget, bytes);
    return CommitResult::kUnlocked;
  }
  if (os::protect_none(addr, bytes) != 0) report::fatal_os_failure("mprotect", addr);
  return CommitResult::kFailed;
}

namespace {
std::atomic<bool> g_mlockall_active{false};
}  // namespace

bool mlockall_active() { return g_mlockall_active.load(std::memory_order_relaxed); }

void set_mlockall_active(bool yes) {
  g_mlockall_active.store(yes, std::memory_order_relaxed);
}

bool detect_mlockall() {
  if (mlockall_active()) return true;
  // mlockall(MCL_CURRENT) locks every mapping the process has, this empty page of lockbox's
  // among them; under MCL_FUTURE it was born locked if it came after. (MCL_FUTURE alone, later,
  // locks only newer mappings: arena.cpp asks each new arena.) One system call, whatever the
  // process looks like.
  static std::atomic<void*> probe{nullptr};
  void* page = probe.load(std::memory_order_acquire);
  if (page == nullptr) {
    void* fresh = nullptr;
    if (os::reserve(os::kPageSize, &fresh) != 0) return false;
    if (!probe.compare_exchange_strong(page, fresh, std::memory_order_acq_rel)) {
      os::unmap(fresh, os::kPageSize);  // another thread's probe won
    } else {
      page = fresh;
    }
  }
  if (!os::empty_range_is_locked(page, os::kPageSize)) return false;
  set_mlockall_active(true);
  return true;
}

bool release(budget::Budget& budget, void* addr, std::size_t bytes, bool locked,
             bool mlockall_active) {
  if (locked && !mlockall_active) {
    int err = os::unlock(addr, bytes);
    // At vm.max_map_count the kernel cannot split a locked mapping to unlock pages inside it:
    // they stay as they are (locked, zero, counted) for the caller to keep.
    if (err == ENOMEM) return false;
    if (err != 0) report::fatal_os_failure("munlock", addr);
  }
  // The contents are already zero: discarding only gives the memory back, so a refusal (the
  // kernel refuses MADV_DONTNEED on pages someone else locked) costs memory, not secrecy.
  if (!mlockall_active) os::advise_discard(addr, bytes);
  if (int err = os::protect_none(addr, bytes)) {
    if (err != ENOMEM) report::fatal_os_failure("mprotect", addr);
    // The same shortage (a page under the application's mlockall is still part of a larger
    // mapping). Put back what this call undid, so that the pages are exactly as they were.
    if (locked && !mlockall_active && os::lock(addr, bytes) != 0) {
      report::fatal_os_failure("mlock", addr);
    }
    return false;
  }
  if (locked) {
    budget.release_locked(bytes);
  } else {
    budget.release_unlocked(bytes);
  }
  return true;
}

}  // namespace lockbox::pages
