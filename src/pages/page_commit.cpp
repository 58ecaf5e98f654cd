// Commit and release of secret pages: the budget is charged before mlock and refunded if the
// kernel refuses, so the budget never disagrees with VmLck.
#include "pages/page_commit.hpp"

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

bool charge(budget::Budget& budget, std::size_t bytes, Reclaimer reclaimer) {
  if (budget.try_charge_locked(bytes)) return true;
  // Empty pages kept locked for reuse are the first thing to give up.
  while (reclaimer.reclaim != nullptr && reclaimer.reclaim(reclaimer.context)) {
    if (budget.try_charge_locked(bytes)) return true;
  }
  // The limit may have been raised with setrlimit() since lockbox last looked.
  budget.refresh_limit();
  return budget.try_charge_locked(bytes);
}

}  // namespace

CommitResult commit(budget::Budget& budget, void* addr, std::size_t bytes, Reclaimer reclaimer) {
  if (int err = os::protect_read_write(addr, bytes)) {
    set_last_error("cannot commit %zu bytes: mprotect failed (%s); vm.max_map_count may be "
                   "exhausted",
                   bytes, std::strerror(err));
    return CommitResult::kFailed;
  }
  int lock_error = 0;
  if (charge(budget, bytes, reclaimer)) {
    lock_error = os::lock(addr, bytes);
    if (lock_error == 0) return CommitResult::kLocked;
    budget.release_locked(bytes);
    set_last_error("cannot lock %zu bytes: mlock failed (%s); memory the application locks "
                   "itself counts against the same RLIMIT_MEMLOCK (%zu bytes)",
                   bytes, std::strerror(lock_error), budget.limit());
  } else {
    set_last_error("cannot lock %zu more bytes: RLIMIT_MEMLOCK is %zu bytes and lockbox already "
                   "holds %zu bytes locked; free secrets, raise the limit (ulimit -l, prlimit "
                   "--memlock, LimitMEMLOCK= in systemd), or set LOCKBOX_POLICY=best-effort",
                   bytes, budget.limit(), budget.locked_bytes());
  }
  if (budget.policy() == budget::Policy::kBestEffort) {
    budget.add_unlocked(bytes);
    warn_unlocked_once(budget);
    return CommitResult::kUnlocked;
  }
  if (os::protect_none(addr, bytes) != 0) report::fatal_os_failure("mprotect", addr);
  return CommitResult::kFailed;
}

void release(budget::Budget& budget, void* addr, std::size_t bytes, bool locked) {
  if (locked) {
    if (os::unlock(addr, bytes) != 0) report::fatal_os_failure("munlock", addr);
    budget.release_locked(bytes);
  } else {
    budget.release_unlocked(bytes);
  }
  if (os::advise_discard(addr, bytes) != 0) report::fatal_os_failure("madvise", addr);
  if (os::protect_none(addr, bytes) != 0) report::fatal_os_failure("mprotect", addr);
}

}  // namespace lockbox::pages
