// SPDX-License-Identifier: ISC
// lock() runs in five steps over a plan of the range's pages: plan (what each page is, and what
// the kernel says about the foreign ones), hold (arena pages count like objects), lock (mlock
// the foreign pages, under the budget and the policy), exclude from dumps, record. A step that
// fails leaves the plan saying what was done so far, and one roll_back() undoes exactly that.
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

struct CallerLocks::PageRange {
  std::uintptr_t first;
  std::size_t count;

  std::uintptr_t page(std::size_t i) const { return first + i * os::kPageSize; }
  void* pointer(std::size_t i) const { return reinterpret_cast<void*>(page(i)); }
};

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

// What one lock() does to each page, and how far it got.
struct CallerLocks::Plan {
  struct Page {
    pages::CallerLock* existing = nullptr;  // already locked by a caller: only counted
    pages::CallerLock fresh;
    small::Arena* arena = nullptr;
    bool needs_mlock = false;
    bool needs_dont_dump = false;
  };
  PageRange range;
  metadata::Array<Page> pages;
  std::size_t held = 0;         // pages[0, held) had their arena page held (where one is)
  std::size_t to_lock = 0;      // bytes of foreign pages to mlock
  bool locked = false;          // they are mlocked and charged as locked
  bool unlocked = false;        // BEST_EFFORT: they are counted as unlocked instead
  std::size_t dont_dumped = 0;  // pages[0, dont_dumped) had MADV_DONTDUMP set (where needed)
};

int CallerLocks::lock(const void* address, std::size_t length) {
  if (length == 0) return 0;
  Plan plan;
  if (int err = pages_of(address, length, &plan.range)) return err;
  if (int err = refuse_impossible(plan.range)) return err;
  if (inside_lockbox()) report::fatal_not_async_signal_safe("lockbox_lock");
  enter_lockbox();
  int err = lock_planned(plan);
  leave_lockbox();
  return err;
}

int CallerLocks::refuse_impossible(const PageRange& range) {
  // Before any work in proportion to the length: a range with a hole is refused by one system
  // call, not page by page, and one larger than the machine's memory could never be locked.
  if (!os::is_mapped(range.pointer(0), range.count * os::kPageSize)) {
    set_last_error("cannot lock %zu pages at %p: no memory is mapped in part of the range",
                   range.count, range.pointer(0));
    return ENOMEM;
  }
  std::size_t physical_pages = os::physical_memory_bytes() / os::kPageSize;
  if (range.count > physical_pages) {
    set_last_error("cannot lock %zu pages at %p: this machine has %zu pages of memory",
                   range.count, range.pointer(0), physical_pages);
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
    if (!kernel[i].mapped) {
      set_last_error("cannot lock %p: no memory is mapped there", range.pointer(i));
      return ENOMEM;
    }
    if (!kernel[i].accessible) {
      set_last_error("cannot lock %p: the page is PROT_NONE", range.pointer(i));
      return EACCES;
    }
    // Already locked by the kernel's account: the application's own lock, which lockbox must
    // neither count against its budget nor ever undo.
    step.needs_mlock = !kernel[i].locked && !pages::mlockall_active();
    step.needs_dont_dump = !kernel[i].dont_dump;
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
    if (attempt == 1 || !budget_.refresh_limit()) {
      pages::explain_lock_refused(budget_, plan.to_lock, err);
      return fall_back_unlocked(plan);
    }
  }
}

// mlocks every page of the plan that needs it; on a refusal, unlocks those it locked.
int CallerLocks::mlock_foreign_pages(const Plan& plan) {
  for (std::size_t i = 0; i < plan.range.count; ++i) {
    if (!plan.pages[i].needs_mlock) continue;
    if (int err = os::lock(plan.range.pointer(i), os::kPageSize)) {
      for (std::size_t j = 0; j < i; ++j) {
        if (plan.pages[j].needs_mlock) os::unlock(plan.range.pointer(j), os::kPageSize);
      }
      return err;
    }
  }
  return 0;
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
  for (; plan.dont_dumped < plan.range.count; ++plan.dont_dumped) {
    if (!plan.pages[plan.dont_dumped].needs_dont_dump) continue;
    void* page = plan.range.pointer(plan.dont_dumped);
    // Special mappings (VM_PFNMAP and the like) refuse.
    if (int err = os::advise_dont_dump(page, os::kPageSize)) {
      set_last_error("cannot exclude %p from core dumps: madvise failed (%s)", page,
                     std::strerror(err));
      return err;
    }
  }
  return 0;
}

void CallerLocks::roll_back(const Plan& plan) {
  for (std::size_t i = 0; i < plan.dont_dumped; ++i) {
    if (plan.pages[i].needs_dont_dump) os::advise_do_dump(plan.range.pointer(i), os::kPageSize);
  }
  if (plan.locked) {
    for (std::size_t i = 0; i < plan.range.count; ++i) {
      if (plan.pages[i].needs_mlock) os::unlock(plan.range.pointer(i), os::kPageSize);
    }
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
    step.fresh.dont_dump_by_us = step.needs_dont_dump;
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
  for (std::size_t i = 0; i < range.count; ++i) {
    pages::CallerLock& lock = *table_.find(range.page(i));
    if (--lock.count != 0) continue;
    void* page = range.pointer(i);
    switch (lock.owner) {
      case pages::PageOwner::kForeign:
        if (lock.locked_by_us) {
          // An unmapped page cannot be unlocked any more; the budget is freed all the same.
          if (!pages::mlockall_active()) os::unlock(page, os::kPageSize);
          budget_.release_locked(os::kPageSize);
        }
        if (lock.unlocked_best_effort) budget_.release_unlocked(os::kPageSize);
        if (lock.dont_dump_by_us) os::advise_do_dump(page, os::kPageSize);
        break;
      case pages::PageOwner::kArena:
        if (small::Arena* arena = registry_.find(page)) release_arena_page(*arena, range.page(i));
        break;
      case pages::PageOwner::kLarge:
        break;  // the block keeps its own lock until it is freed
    }
    table_.erase(range.page(i));
  }
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
  SpinLockGuard guard(shard.lock());
  // Wiped memory of the parent process.
  if (arena.generation != generation_.load(std::memory_order_relaxed)) return EACCES;
  return shard.hold_committed_page(arena, arena.page_index(reinterpret_cast<void*>(page)),
                                   budget_, reclaimer_);
}

void CallerLocks::release_arena_page(small::Arena& arena, std::uintptr_t page) {
  small::Shard& shard = shards_[arena.shard_index];
  SpinLockGuard guard(shard.lock());
  shard.release_page(arena, arena.page_index(reinterpret_cast<void*>(page)), budget_);
}

}  // namespace lockbox::heap
