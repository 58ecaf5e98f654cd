// SPDX-License-Identifier: ISC
// lock() runs in five steps over a plan of the range's pages: plan (what each page is, and
// whether the kernel already has the foreign ones locked), hold (arena pages count like
// objects), lock (mlock the foreign pages, under the budget and the policy), exclude from dumps,
// record. A step that fails leaves the plan saying what was done so far, and one roll_back()
// undoes exactly that. Nothing here reads /proc but kernels before 5.4, which lack MADV_COLD,
// and the explanation of a refusal where a seccomp filter refuses process_vm_readv: a lock, or
// a refusal, costs in proportion to its pages, not to the process's mappings.
#include "heap/caller_locks.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>

#include "heap/inside.hpp"
#include "os/os.hpp"
#include "report/report.hpp"
#include "support/last_error.hpp"
#include "support/metadata.hpp"

namespace lockbox::heap {

namespace {

constexpr std::uintptr_t kPageMask = os::kPageSize - 1;
using PageRange = CallerLocks::PageRange;

// 0 and the pages of [address, address + length), or EINVAL if the range wraps.
int pages_of(const void* address, std::size_t length, PageRange* range) {
  auto start = reinterpret_cast<std::uintptr_t>(address);
  std::uintptr_t end = 0;
  if (__builtin_add_overflow(start, length, &end) || end > UINTPTR_MAX - kPageMask) {
    set_last_error("the range of %zu bytes at %p wraps around the address space", length, address);
    return EINVAL;
  }
  range->first = start & ~kPageMask;
  range->count = ((end + kPageMask) & ~kPageMask) / os::kPageSize - range->first / os::kPageSize;
  return 0;
}

}  // namespace

int CallerLocks::lock(const void* address, std::size_t length) {
  if (length == 0) return 0;
  Plan plan{plan_pages_};
  if (int err = pages_of(address, length, &plan.range)) return err;
  if (int err = refuse_impossible(plan.range)) return err;
  if (inside_lockbox()) report::fatal_not_async_signal_safe("lockbox_lock");
  enter_lockbox();
  int err = lock_planned(plan);
  leave_lockbox();
  return err;
}

int CallerLocks::refuse_impossible(const PageRange& range) const {
  // Before any work in proportion to the length: a range with a hole is refused by one system
  // call, not page by page, and one larger than the machine's memory could never be locked.
  if (!os::is_mapped(range.pointer(0), range.count * os::kPageSize)) {
    set_last_error("cannot lock %zu pages at %p: no memory is mapped in part of the range",
                   range.count, range.pointer(0));
    return ENOMEM;
  }
  if (range.count > physical_pages_) {
    set_last_error("cannot lock %zu pages at %p: this machine has %zu pages of memory", range.count,
                   range.pointer(0), physical_pages_);
    return ENOMEM;
  }
  return 0;
}

int CallerLocks::lock_planned(Plan& plan) {
  MaskedLockGuard guard(lock_);
  // Room for every page first: the table's entries move when it grows, and recording the
  // lock at the end must not fail.
  if (!table_.reserve(plan.range.count) || !plan.pages.resize(plan.range.count)) {
    set_last_error("cannot lock %zu pages: no memory for lockbox's own bookkeeping",
                   plan.range.count);
    return ENOMEM;
  }
  // The plan's pages are kept from call to call (a mapping per lock would cost two system
  // calls): each starts blank.
  for (Plan::Page& step : plan.pages) step = Plan::Page{};
  int err = plan_pages(plan);
  if (err == 0) err = hold_arena_pages(plan);
  if (err == 0) err = lock_foreign_pages(plan);
  if (err == 0) err = exclude_from_dumps(plan);
  if (err != 0) {
    roll_back(plan);
    return err;
  }
  record(plan);
  return 0;
}

int CallerLocks::plan_pages(Plan& plan) {
  const PageRange& range = plan.range;
  bool any_new_foreign = false;
  for (std::size_t i = 0; i < range.count; ++i) {
    Plan::Page& step = plan.pages[i];
    if ((step.existing = table_.find(range.page(i))) != nullptr) {
      if (step.existing->count == UINT32_MAX) {
        set_last_error("the page at %p is already locked 2^32-1 times", range.pointer(i));
        return EOVERFLOW;
      }
    } else if ((step.arena = registry_.find(range.pointer(i))) != nullptr) {
      step.fresh.owner = pages::PageOwner::kArena;
    } else if (large_.contains_data_page(range.page(i))) {
      step.fresh.owner = pages::PageOwner::kLarge;
    } else {
      step.fresh.owner = pages::PageOwner::kForeign;
      any_new_foreign = true;
    }
  }
  if (!any_new_foreign) return 0;
  return os::cold_advice_supported() ? find_locked_foreign_pages(plan) : read_smaps(plan);
}

namespace {
// Calls visit(first, end) for each run [first, end) of consecutive pages of the plan that
// `wanted` picks.
template <typename Pages, typename Wanted, typename Visit>
int for_each_run(const Pages& pages, std::size_t count, Wanted wanted, Visit visit) {
  for (std::size_t first = 0; first < count;) {
    if (!wanted(pages[first])) {
      ++first;
      continue;
    }
    std::size_t end = first + 1;
    while (end < count && wanted(pages[end])) ++end;
    if (int err = visit(first, end)) return err;
    first = end;
  }
  return 0;
}
// Pages collected in address order; each maximal run of consecutive ones gets one call.
class PendingRun {
 public:
  explicit PendingRun(void (*call)(void*, std::size_t)) : call_(call) {}
  void add(std::uintptr_t page) {
    if (page != end_) flush();
    if (start_ == end_) start_ = page;
    end_ = page + os::kPageSize;
  }
  void flush() {
    if (end_ > start_) call_(reinterpret_cast<void*>(start_), end_ - start_);
    start_ = end_ = 0;
  }

 private:
  void (*call_)(void*, std::size_t);
  std::uintptr_t start_ = 0;
  std::uintptr_t end_ = 0;
};

}  // namespace

int CallerLocks::find_locked_foreign_pages(Plan& plan) {
  const PageRange& range = plan.range;
  auto new_foreign = [](const Plan::Page& step) {
    return step.existing == nullptr && step.fresh.owner == pages::PageOwner::kForeign;
  };
  // One MADV_COLD per run of new foreign pages; only a run the kernel refuses (some page of it
  // is locked) is asked again, page by page.
  return for_each_run(
      plan.pages, range.count, new_foreign, [&](std::size_t first, std::size_t end) {
        int err = os::advise_cold(range.pointer(first), (end - first) * os::kPageSize);
        if (err == ENOMEM) {
          set_last_error("cannot lock %zu pages at %p: no memory is mapped in part of the range",
                         end - first, range.pointer(first));
          return ENOMEM;
        }
        if (err != 0 && err != EINVAL) {
          set_last_error("cannot lock %p: madvise failed (%s)", range.pointer(first),
                         std::strerror(err));
          return err;
        }
        for (std::size_t i = first; i < end; ++i) {
          Plan::Page& step = plan.pages[i];
          bool already_locked =
              err == EINVAL &&
              (end - first == 1 || os::advise_cold(range.pointer(i), os::kPageSize) != 0);
          step.needs_mlock = !already_locked && !pages::mlockall_active();
          step.needs_dont_dump = true;
          step.restore_dump = !already_locked;
        }
        return 0;
      });
}

int CallerLocks::read_smaps(Plan& plan) {
  const PageRange& range = plan.range;
  metadata::Array<os::PageInfo> kernel;
  if (!kernel.resize(range.count)) {
    set_last_error("cannot lock %zu pages: no memory for lockbox's own bookkeeping", range.count);
    return ENOMEM;
  }
  if (int err = os::describe_pages(range.pointer(0), range.count, kernel.begin())) {
    set_last_error("cannot read /proc/self/smaps: %s", std::strerror(err));
    return err;
  }
  for (std::size_t i = 0; i < range.count; ++i) {
    Plan::Page& step = plan.pages[i];
    if (step.existing != nullptr || step.fresh.owner != pages::PageOwner::kForeign) continue;
    if (int err = explain_unlockable(kernel[i], range.pointer(i))) return err;
    // Already locked by the kernel's account: the application's own lock, which lockbox must
    // neither count against its budget nor ever undo.
    step.needs_mlock = !kernel[i].locked && !pages::mlockall_active();
    step.needs_dont_dump = !kernel[i].dont_dump;
    step.restore_dump = step.needs_dont_dump;
  }
  return 0;
}

int CallerLocks::explain_unlockable(const os::PageInfo& kernel, void* page) {
  if (!kernel.mapped) {
    set_last_error("cannot lock %p: no memory is mapped there", page);
    return ENOMEM;
  }
  if (!kernel.accessible) {
    set_last_error("cannot lock %p: the page is PROT_NONE", page);
    return EACCES;
  }
  return 0;
}

int CallerLocks::explain_refused_mlock(const Plan& plan) {
  // The kernel refuses mlock on a PROT_NONE page with the ENOMEM it gives for the limit: a page
  // of the refused runs this process cannot read tells which. The probe costs in proportion to
  // the pages; smaps, in proportion to the process's mappings, only where it is refused.
  const PageRange& range = plan.range;
  constexpr int kProbeRefused = -1;  // not an errno value
  auto needs_mlock = [](const Plan::Page& step) { return step.needs_mlock; };
  int explained = for_each_run(
      plan.pages, range.count, needs_mlock, [&](std::size_t first, std::size_t end) {
        std::size_t unreadable = 0;
        if (os::first_unreadable_page(range.pointer(first), end - first, &unreadable) != 0) {
          return kProbeRefused;
        }
        if (unreadable == end - first) return 0;
        void* page = range.pointer(first + unreadable);
        os::PageInfo kernel;
        kernel.mapped = os::is_mapped(page, os::kPageSize);
        return explain_unlockable(kernel, page);
      });
  if (explained != kProbeRefused) return explained;
  metadata::Array<os::PageInfo> kernel;
  if (!kernel.resize(range.count) ||
      os::describe_pages(range.pointer(0), range.count, kernel.begin()) != 0) {
    return 0;  // cannot tell: the refusal is explained as the budget's
  }
  for (std::size_t i = 0; i < range.count; ++i) {
    if (!plan.pages[i].needs_mlock) continue;
    if (int err = explain_unlockable(kernel[i], range.pointer(i))) return err;
  }
  return 0;
}

int CallerLocks::hold_arena_pages(Plan& plan) {
  for (; plan.held < plan.range.count; ++plan.held) {
    Plan::Page& step = plan.pages[plan.held];
    if (step.existing != nullptr) continue;
    if (step.fresh.owner == pages::PageOwner::kLarge) {
      // A block BEST_EFFORT left unlocked is locked now, or (STRICT) the lock fails.
      if (int err = large_.lock_if_unlocked(plan.range.page(plan.held), budget_, reclaimer_)) {
        return err;
      }
    }
    if (step.arena == nullptr) continue;
    if (int err = hold_arena_page(*step.arena, plan.range.page(plan.held))) {
      // ENOMEM: the page was left unlocked and cannot be locked now (last_error says why).
      if (err != ENOMEM) {
        set_last_error("cannot lock %p: it is a lockbox page with nothing allocated on it (%s)",
                       plan.range.pointer(plan.held), std::strerror(err));
      }
      return err;
    }
  }
  return 0;
}

int CallerLocks::lock_foreign_pages(Plan& plan) {
  for (const Plan::Page& step : plan.pages) plan.to_lock += step.needs_mlock ? os::kPageSize : 0;
  if (plan.to_lock == 0) return 0;
  // As pages::charge_and_lock: a refusal the budget did not expect means the limit or the
  // capability changed (a privilege drop); read them again and, if they moved, try once more.
  for (int attempt = 0;; ++attempt) {
    if (!pages::charge(budget_, plan.to_lock, reclaimer_)) {
      pages::explain_over_budget(budget_, plan.to_lock);
      return fall_back_unlocked(plan);
    }
    int err = mlock_foreign_pages(plan);
    if (err == 0) {
      plan.locked = true;
      return 0;
    }
    budget_.release_locked(plan.to_lock);
    if (int unlockable = explain_refused_mlock(plan)) return unlockable;
    if (attempt == 1 || !budget_.refresh_limit()) {
      pages::explain_lock_refused(budget_, plan.to_lock, err);
      return fall_back_unlocked(plan);
    }
  }
}

// mlocks every run of pages of the plan that needs it; on a refusal, unlocks them all again,
// the refused run included: a failed mlock may have marked part of its range locked (it does so
// on a PROT_NONE page, and charges it).
int CallerLocks::mlock_foreign_pages(const Plan& plan) {
  auto needs_mlock = [](const Plan::Page& step) { return step.needs_mlock; };
  std::size_t done = 0;  // pages[0, done) hold every run tried
  int err = for_each_run(
      plan.pages, plan.range.count, needs_mlock, [&](std::size_t first, std::size_t end) {
        done = end;
        return os::lock(plan.range.pointer(first), (end - first) * os::kPageSize);
      });
  if (err != 0) munlock_runs(plan, done);
  return err;
}

void CallerLocks::munlock_runs(const Plan& plan, std::size_t end) {
  auto needs_mlock = [](const Plan::Page& step) { return step.needs_mlock; };
  for_each_run(plan.pages, end, needs_mlock, [&](std::size_t first, std::size_t run_end) {
    os::unlock(plan.range.pointer(first), (run_end - first) * os::kPageSize);
    return 0;
  });
}

// The foreign pages could not be locked (last_error says why): STRICT fails, BEST_EFFORT goes
// on with them unlocked, counted and warned about once.
int CallerLocks::fall_back_unlocked(Plan& plan) {
  if (budget_.policy() == budget::Policy::kStrict) return ENOMEM;
  pages::note_unlocked_fallback(budget_, plan.to_lock);
  plan.unlocked = true;
  return 0;
}

int CallerLocks::exclude_from_dumps(Plan& plan) {
  auto needs_dont_dump = [](const Plan::Page& step) { return step.needs_dont_dump; };
  return for_each_run(plan.pages, plan.range.count, needs_dont_dump,
                      [&](std::size_t first, std::size_t end) {
                        // A refusal may come after part of the run changed: roll_back() gives
                        // the whole run back.
                        plan.dont_dumped = end;
                        void* start = plan.range.pointer(first);
                        // Special mappings (VM_PFNMAP and the like) refuse.
                        if (int err = os::advise_dont_dump(start, (end - first) * os::kPageSize)) {
                          set_last_error("cannot exclude %p from core dumps: madvise failed (%s)",
                                         start, std::strerror(err));
                          return err;
                        }
                        return 0;
                      });
}

void CallerLocks::roll_back(const Plan& plan) {
  auto gives_dump_back = [](const Plan::Page& step) {
    return step.needs_dont_dump && step.restore_dump;
  };
  for_each_run(plan.pages, plan.dont_dumped, gives_dump_back,
               [&](std::size_t first, std::size_t end) {
                 os::advise_do_dump(plan.range.pointer(first), (end - first) * os::kPageSize);
                 return 0;
               });
  if (plan.locked) {
    munlock_runs(plan, plan.range.count);
    budget_.release_locked(plan.to_lock);
  }
  if (plan.unlocked) budget_.release_unlocked(plan.to_lock);
  for (std::size_t i = 0; i < plan.held; ++i) {
    const Plan::Page& step = plan.pages[i];
    if (step.arena != nullptr && step.existing == nullptr) {
      release_arena_page(*step.arena, plan.range.page(i));
    }
  }
}

void CallerLocks::record(Plan& plan) {
  for (std::size_t i = 0; i < plan.range.count; ++i) {
    Plan::Page& step = plan.pages[i];
    if (step.existing != nullptr) {
      ++step.existing->count;
      continue;
    }
    step.fresh.count = 1;
    step.fresh.locked_by_us = step.needs_mlock && plan.locked;
    step.fresh.unlocked_best_effort = step.needs_mlock && plan.unlocked;
    step.fresh.dont_dump_by_us = step.needs_dont_dump && step.restore_dump;
    table_.insert(plan.range.page(i), step.fresh);
  }
  locked_pages_.store(table_.page_count(), std::memory_order_relaxed);
}

int CallerLocks::unlock(void* address, std::size_t length, bool zero) {
  if (length == 0) return 0;
  PageRange range;
  if (int err = pages_of(address, length, &range)) return err;
  if (inside_lockbox()) report::fatal_not_async_signal_safe("lockbox_unlock");
  enter_lockbox();
  int err = unlock_range(range, address, length, zero);
  leave_lockbox();
  return err;
}

int CallerLocks::unlock_range(const PageRange& range, void* address, std::size_t length,
                              bool zero) {
  MaskedLockGuard guard(lock_);
  for (std::size_t i = 0; i < range.count; ++i) {
    if (table_.find(range.page(i)) == nullptr) {
      set_last_error(
          "cannot unlock %p: the page was not locked with lockbox_lock (nothing was changed)",
          range.pointer(i));
      return EINVAL;
    }
  }
  // Zero while the memory is still locked.
  if (zero) sodium_memzero(address, length);
  // Asked once, and only if a page of ours is to be unlocked: under mlockall, a munlock would
  // undo the application's own lock.
  int mlockall = -1;
  // Consecutive pages that need the same call get one call (an unmapped page cannot be
  // unlocked any more; its budget is freed all the same).
  PendingRun to_unlock{[](void* start, std::size_t bytes) { os::unlock(start, bytes); }};
  PendingRun to_dump{[](void* start, std::size_t bytes) { os::advise_do_dump(start, bytes); }};
  for (std::size_t i = 0; i < range.count; ++i) {
    pages::CallerLock& lock = *table_.find(range.page(i));
    if (--lock.count != 0) continue;
    void* page = range.pointer(i);
    switch (lock.owner) {
      case pages::PageOwner::kForeign:
        if (lock.locked_by_us) {
          if (mlockall < 0) mlockall = pages::detect_mlockall() ? 1 : 0;
          if (mlockall == 0) to_unlock.add(range.page(i));
          budget_.release_locked(os::kPageSize);
        }
        if (lock.unlocked_best_effort) budget_.release_unlocked(os::kPageSize);
        if (lock.dont_dump_by_us) to_dump.add(range.page(i));
        break;
      case pages::PageOwner::kArena:
        if (small::Arena* arena = registry_.find(page)) release_arena_page(*arena, range.page(i));
        break;
      case pages::PageOwner::kLarge:
        break;  // the block keeps its own lock until it is freed
    }
    table_.erase(range.page(i));
  }
  to_unlock.flush();
  to_dump.flush();
  locked_pages_.store(table_.page_count(), std::memory_order_relaxed);
  return 0;
}

std::size_t CallerLocks::count(std::uintptr_t page) {
  MaskedLockGuard guard(lock_);
  const pages::CallerLock* lock = table_.find(page);
  return lock == nullptr ? 0 : lock->count;
}

void CallerLocks::forget_range(std::uintptr_t start, std::size_t bytes) {
  if (locked_pages_.load(std::memory_order_relaxed) == 0) return;
  MaskedLockGuard guard(lock_);
  table_.forget_range(start, bytes);
  locked_pages_.store(table_.page_count(), std::memory_order_relaxed);
}

void CallerLocks::reset_after_fork() {
  table_.clear();
  locked_pages_.store(0, std::memory_order_relaxed);
  lock_.reset_after_fork();
}

int CallerLocks::hold_arena_page(small::Arena& arena, std::uintptr_t page) {
  small::Shard& shard = shards_[arena.shard_index];
  FutexLockGuard guard(shard.lock());
  // Wiped memory of the parent process.
  if (arena.generation != generation_.load(std::memory_order_relaxed)) return EACCES;
  return shard.hold_committed_page(arena, arena.page_index(reinterpret_cast<void*>(page)), budget_,
                                   reclaimer_);
}

void CallerLocks::release_arena_page(small::Arena& arena, std::uintptr_t page) {
  small::Shard& shard = shards_[arena.shard_index];
  FutexLockGuard guard(shard.lock());
  shard.release_page(arena, arena.page_index(reinterpret_cast<void*>(page)), budget_);
}

}  // namespace lockbox::heap
