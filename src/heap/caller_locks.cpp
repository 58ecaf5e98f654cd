// lockbox_lock / lockbox_unlock: nested locks on any memory, counted per page. A page of a
// lockbox arena is held through the arena's own refcount (so objects and caller locks nest with
// each other); a foreign page is mlocked and excluded from dumps on its first lock and released
// on its last unlock, unless the kernel already had it locked (the application's own mlock or
// mlockall), in which case lockbox never touches the kernel's lock at all.
#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "heap/heap.hpp"
#include "os/os.hpp"
#include "support/last_error.hpp"

namespace lockbox::heap {
namespace {

constexpr std::uintptr_t kPageMask = os::kPageSize - 1;

struct PageRange {
  std::uintptr_t first;
  std::size_t count;
};

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

std::uintptr_t page_at(const PageRange& range, std::size_t i) {
  return range.first + i * os::kPageSize;
}

void* page_pointer(const PageRange& range, std::size_t i) {
  return reinterpret_cast<void*>(page_at(range, i));
}

// What one lockbox_lock() call did, so that a failure half-way can undo it exactly.
struct LockPlan {
  struct Page {
    pages::CallerLock* existing = nullptr;
    pages::CallerLock fresh;
    small::Arena* arena = nullptr;
    bool needs_mlock = false;
    bool needs_dont_dump = false;
  };
  std::vector<Page> pages;
};

}  // namespace

int Heap::hold_arena_page(small::Arena& arena, std::uintptr_t page) {
  small::Shard& shard = shards_[arena.shard_index];
  SpinLockGuard guard(shard.lock());
  if (is_inherited(arena)) return EACCES;  // wiped memory of the parent process
  return shard.hold_committed_page(arena, arena.page_index(reinterpret_cast<void*>(page)));
}

void Heap::release_arena_page(small::Arena& arena, std::uintptr_t page) {
  small::Shard& shard = shards_[arena.shard_index];
  SpinLockGuard guard(shard.lock());
  shard.release_page(arena, arena.page_index(reinterpret_cast<void*>(page)), budget_);
}

int Heap::lock_range(const void* address, std::size_t length) {
  if (length == 0) return 0;
  PageRange range;
  if (int err = pages_of(address, length, &range)) return err;
  SpinLockGuard guard(caller_locks_lock_);

  // 1. Plan: what each page is, and what the kernel says about the foreign ones.
  LockPlan plan;
  plan.pages.resize(range.count);
  bool any_new_foreign = false;
  for (std::size_t i = 0; i < range.count; ++i) {
    std::uintptr_t page = page_at(range, i);
    LockPlan::Page& step = plan.pages[i];
    step.existing = caller_locks_.find(page);
    if (step.existing != nullptr) {
      if (step.existing->count == UINT32_MAX) {
        set_last_error("the page at %p is already locked 2^32-1 times",
                       reinterpret_cast<void*>(page));
        return EOVERFLOW;
      }
      continue;
    }
    if ((step.arena = registry_.find(reinterpret_cast<void*>(page))) != nullptr) {
      step.fresh.owner = pages::PageOwner::kArena;
    } else if (large_.contains_data_page(page)) {
      step.fresh.owner = pages::PageOwner::kLarge;
    } else {
      step.fresh.owner = pages::PageOwner::kForeign;
      any_new_foreign = true;
    }
  }
  if (any_new_foreign) {
    std::vector<os::PageInfo> kernel(range.count);
    if (int err =
            os::describe_pages(reinterpret_cast<void*>(range.first), range.count, kernel.data())) {
      set_last_error("cannot read /proc/self/smaps: %s", std::strerror(err));
      return err;
    }
    for (std::size_t i = 0; i < range.count; ++i) {
      LockPlan::Page& step = plan.pages[i];
      if (step.existing != nullptr || step.fresh.owner != pages::PageOwner::kForeign) continue;
      void* page = page_pointer(range, i);
      if (!kernel[i].mapped) {
        set_last_error("cannot lock %p: no memory is mapped there", page);
        return ENOMEM;
      }
      if (!kernel[i].accessible) {
        set_last_error("cannot lock %p: the page is PROT_NONE", page);
        return EACCES;
      }
      // Already locked by the kernel's account: the application's own lock, which lockbox
      // must neither count against its budget nor ever undo.
      step.needs_mlock = !kernel[i].locked && !budget_.application_locks_all();
      step.needs_dont_dump = !kernel[i].dont_dump;
    }
  }

  // 2. Hold arena pages: they count in the arena's refcount like an object would.
  std::size_t held = 0;
  auto undo_holds = [&] {
    for (std::size_t i = 0; i < held; ++i) {
      if (plan.pages[i].arena != nullptr && plan.pages[i].existing == nullptr) {
        release_arena_page(*plan.pages[i].arena, page_at(range, i));
      }
    }
  };
  for (; held < range.count; ++held) {
    LockPlan::Page& step = plan.pages[held];
    if (step.existing != nullptr || step.arena == nullptr) continue;
    if (int err = hold_arena_page(*step.arena, page_at(range, held))) {
      set_last_error("cannot lock %p: it is a lockbox page with nothing allocated on it (%s)",
                     page_pointer(range, held), std::strerror(err));
      undo_holds();
      return err;
    }
  }

  // 3. mlock foreign pages, under the budget and the policy.
  std::size_t to_lock = 0;
  for (const auto& step : plan.pages) to_lock += step.needs_mlock ? os::kPageSize : 0;
  bool unlocked = false;
  if (to_lock != 0) {
    ReclaimContext context{shards_, kShards, &budget_};
    if (!pages::charge(budget_, to_lock, pages::Reclaimer{&Heap::reclaim_from_shards, &context})) {
      pages::explain_over_budget(budget_, to_lock);
      unlocked = true;
    } else {
      std::size_t done = 0;
      int err = 0;
      for (; done < range.count && err == 0; ++done) {
        if (plan.pages[done].needs_mlock) {
          err = os::lock(page_pointer(range, done), os::kPageSize);
        }
      }
      if (err != 0) {
        for (std::size_t i = 0; i + 1 < done; ++i) {
          if (plan.pages[i].needs_mlock) os::unlock(page_pointer(range, i), os::kPageSize);
        }
        budget_.release_locked(to_lock);
        pages::explain_lock_refused(budget_, to_lock, err);
        unlocked = true;
      }
    }
    if (unlocked && budget_.policy() == budget::Policy::kStrict) {
      undo_holds();
      return ENOMEM;
    }
    if (unlocked) pages::note_unlocked_fallback(budget_, to_lock);
  }

  // 4. Keep them out of core dumps. One advice per call, each checked.
  for (std::size_t i = 0; i < range.count; ++i) {
    LockPlan::Page& step = plan.pages[i];
    if (!step.needs_dont_dump) continue;
    if (int err = os::advise_dont_dump(page_pointer(range, i), os::kPageSize)) {
      // Special mappings (VM_PFNMAP and the like) refuse; undo everything this call did.
      for (std::size_t j = 0; j < i; ++j) {
        if (plan.pages[j].needs_dont_dump)
          os::advise_do_dump(page_pointer(range, j), os::kPageSize);
      }
      for (std::size_t j = 0; j < range.count && !unlocked; ++j) {
        if (plan.pages[j].needs_mlock) os::unlock(page_pointer(range, j), os::kPageSize);
      }
      if (unlocked) {
        budget_.release_unlocked(to_lock);
      } else {
        budget_.release_locked(to_lock);
      }
      undo_holds();
      set_last_error("cannot exclude %p from core dumps: madvise failed (%s)",
                     page_pointer(range, i), std::strerror(err));
      return err;
    }
  }

  // 5. Record.
  for (std::size_t i = 0; i < range.count; ++i) {
    LockPlan::Page& step = plan.pages[i];
    if (step.existing != nullptr) {
      ++step.existing->count;
      continue;
    }
    step.fresh.count = 1;
    step.fresh.locked_by_us = step.needs_mlock && !unlocked;
    step.fresh.unlocked_best_effort = step.needs_mlock && unlocked;
    step.fresh.dont_dump_by_us = step.needs_dont_dump;
    caller_locks_.insert(page_at(range, i), step.fresh);
  }
  caller_locked_pages_.store(caller_locks_.page_count(), std::memory_order_relaxed);
  return 0;
}

int Heap::unlock_range(void* address, std::size_t length, bool zero) {
  if (length == 0) return 0;
  PageRange range;
  if (int err = pages_of(address, length, &range)) return err;
  SpinLockGuard guard(caller_locks_lock_);
  for (std::size_t i = 0; i < range.count; ++i) {
    if (caller_locks_.find(page_at(range, i)) == nullptr) {
      set_last_error(
          "cannot unlock %p: the page was not locked with lockbox_lock (nothing was "
          "changed)",
          page_pointer(range, i));
      return EINVAL;
    }
  }
  // Zero while the memory is still locked.
  if (zero) sodium_memzero(address, length);
  for (std::size_t i = 0; i < range.count; ++i) {
    std::uintptr_t page = page_at(range, i);
    pages::CallerLock& lock = *caller_locks_.find(page);
    if (--lock.count != 0) continue;
    auto* page_pointer = reinterpret_cast<void*>(page);
    switch (lock.owner) {
      case pages::PageOwner::kForeign:
        if (lock.locked_by_us) {
          // An unmapped page cannot be unlocked any more; the budget is freed all the same.
          if (!budget_.application_locks_all()) os::unlock(page_pointer, os::kPageSize);
          budget_.release_locked(os::kPageSize);
        }
        if (lock.unlocked_best_effort) budget_.release_unlocked(os::kPageSize);
        if (lock.dont_dump_by_us) os::advise_do_dump(page_pointer, os::kPageSize);
        break;
      case pages::PageOwner::kArena:
        if (small::Arena* arena = registry_.find(page_pointer)) release_arena_page(*arena, page);
        break;
      case pages::PageOwner::kLarge:
        break;  // the block keeps its own lock until it is freed
    }
    caller_locks_.erase(page);
  }
  caller_locked_pages_.store(caller_locks_.page_count(), std::memory_order_relaxed);
  return 0;
}

std::size_t Heap::caller_lock_count(std::uintptr_t page) {
  SpinLockGuard guard(caller_locks_lock_);
  const pages::CallerLock* lock = caller_locks_.find(page);
  return lock == nullptr ? 0 : lock->count;
}

void Heap::forget_caller_locks(std::uintptr_t start, std::size_t bytes) {
  if (caller_locked_pages_.load(std::memory_order_relaxed) == 0) return;
  SpinLockGuard guard(caller_locks_lock_);
  caller_locks_.forget_range(start, bytes);
  caller_locked_pages_.store(caller_locks_.page_count(), std::memory_order_relaxed);
}

}  // namespace lockbox::heap
