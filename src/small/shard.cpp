// SPDX-License-Identifier: ISC
// Runs and pages of a shard: slots are taken from runs with room (committing and locking the
// pages under them first) and given back (dropping the page references); a page is unlocked
// only when no object overlaps it and the shard's reserve of empty locked pages is full.
#include "small/shard.hpp"

#include <cerrno>
#include <cstring>

#include "os/os.hpp"

#include "report/report.hpp"
#include "support/sanitizers.hpp"
#include "support/last_error.hpp"

namespace lockbox::small {
namespace {

struct PageSpan {
  std::size_t first;
  std::size_t last;  // inclusive
};

PageSpan pages_of_slot(const Run& run, std::size_t slot) {
  std::size_t slot_size = kSlotSizes[run.class_index];
  std::size_t offset = slot * slot_size;
  return {run.first_page + offset / os::kPageSize,
          run.first_page + (offset + slot_size - 1) / os::kPageSize};
}

unsigned char* slot_address(const Run& run, std::size_t slot) {
  return run.arena->page_address(run.first_page) + slot * kSlotSizes[run.class_index];
}

// The run and index of the slot at `address` (which starts a slot of a run: the caller knows).
struct SlotPlace {
  Run& run;
  std::size_t slot;
};
SlotPlace locate(Arena& arena, const unsigned char* address) {
  Run& run = arena.runs[arena.page_run[arena.page_index(address)]];
  auto offset = static_cast<std::size_t>(address - arena.page_address(run.first_page));
  return {run, slot_index(offset, run.class_index)};
}

// Every slot of a run, as its words say: free slots of its class, or (dissolved) none.
void set_slot_words(Run& run, SlotState state) {
  for (std::size_t slot = 0; slot < run_slots(run.class_index); ++slot) {
    run.arena->slot_word_at(slot_address(run, slot))
        .store(state == kNoSlot ? SlotWord{0} : slot_word(state, run.class_index),
               std::memory_order_relaxed);
  }
}

}  // namespace

void Shard::link(Run& run) {
  Run*& head = runs_with_room_[run.class_index];
  run.prev = nullptr;
  run.next = head;
  if (head != nullptr) head->prev = &run;
  head = &run;
  run.listed = true;
}

void Shard::unlink(Run& run) {
  if (run.prev != nullptr) {
    run.prev->next = run.next;
  } else {
    runs_with_room_[run.class_index] = run.next;
  }
  if (run.next != nullptr) run.next->prev = run.prev;
  run.next = run.prev = nullptr;
  run.listed = false;
}

Run* Shard::create_run(std::size_t class_index, std::uint64_t generation, std::uint32_t my_index,
                       ArenaRegistry& registry, budget::Budget& budget, pages::Reclaimer reclaimer,
                       pages::SecretmemPool* pool) {
  std::size_t pages = run_pages(class_index);
  RunPlace place = place_for_run(pages);
  if (place.arena == nullptr) {
    Arena* arena = create_arena(generation, my_index, budget, pool, reclaimer);
    if (arena == nullptr) {
      // No budget for another arena. The empty runs every class keeps (so that a free/alloc
      // pair does not rebuild one) may hold the room: in a memfd_secret arena, whose pages are
      // charged whether used or not, nothing else can give it back.
      if (!dissolve_empty_runs()) return nullptr;
      place = place_for_run(pages);
      if (place.arena == nullptr) return nullptr;
    } else {
      if (!registry.insert(arena)) {
        // The registry is full: the arena is unusable. Its mappings are left to the process
        // (a handful of KiB), which keeps this rare path simple.
        return nullptr;
      }
      // Under mlockall(MCL_FUTURE) a munlock of ours would undo the application's lock.
      if (arena->locked_by_application) pages::set_mlockall_active(true);
      arena->next_in_shard = arenas_;
      arenas_ = arena;
      reserved_bytes_ += kArenaBytes;
      place = {arena, kFirstDataPage};
    }
  }
  Arena* arena = place.arena;
  std::size_t first = place.first;
  for (std::size_t page = first; page < first + pages; ++page) {
    arena->set_page_run(page, static_cast<std::uint16_t>(first));
  }
  Run& run = arena->runs[first];
  run.arena = arena;
  run.first_page = static_cast<std::uint16_t>(first);
  run.class_index = static_cast<std::uint8_t>(class_index);
  run.live = 0;
  run.used.clear_all();
  set_slot_words(run, kSlotFree);
  // Until a slot is handed out, any access to it is a bug ASan should name.
  sanitizers::poison(arena->page_address(first), pages * os::kPageSize);
  link(run);
  return &run;
}

Shard::RunPlace Shard::place_for_run(std::size_t pages) {
  // First choice: unowned pages that are still committed (empty pages in the reserve), so a
  // new run costs no syscall; else the first unowned pages that fit.
  RunPlace place{nullptr, 0};
  for (Arena* candidate = arenas_; candidate != nullptr; candidate = candidate->next_in_shard) {
    const auto& unowned = candidate->unowned_pages_map;
    if (unowned.none()) continue;  // full: most arenas of a grown shard
    std::size_t committed = unowned.first_run_also_in(candidate->committed_pages_map, pages);
    if (committed != unowned.kNone) return {candidate, committed};
    if (place.arena == nullptr) {
      std::size_t first = unowned.first_run_also_in(unowned, pages);
      if (first != unowned.kNone) place = {candidate, first};
    }
  }
  return place;
}

bool Shard::dissolve_empty_runs() {
  bool dissolved = false;
  for (std::size_t c = 0; c < kClassCount; ++c) {
    Run* run = runs_with_room_[c];
    while (run != nullptr) {
      Run* next = run->next;
      if (run->live == 0) {
        dissolve_run(*run);
        dissolved = true;
      }
      run = next;
    }
  }
  return dissolved;
}

void Shard::dissolve_run(Run& run) {
  unlink(run);
  set_slot_words(run, kNoSlot);
  Arena& arena = *run.arena;
  std::size_t pages = run_pages(run.class_index);
  for (std::size_t page = run.first_page; page < run.first_page + pages; ++page) {
    arena.set_page_run(page, kNoRun);
  }
}

bool Shard::acquire_page(Arena& arena, std::size_t page, budget::Budget& budget,
                         pages::Reclaimer reclaimer) {
  if (arena.page_refcount[page] == 0) {
    if (arena.page_state[page] == PageState::kReserved && arena.secretmem) {
      // Secret memory is locked and charged already: the page only needs to be accessible.
      if (int err = os::protect_read_write(arena.page_address(page), os::kPageSize)) {
        set_last_error("cannot commit a memfd_secret page: mprotect failed (%s)",
                       std::strerror(err));
        return false;
      }
      arena.set_page_state(page, PageState::kLocked);
    } else if (arena.page_state[page] == PageState::kReserved) {
      // The run's next pages will be wanted soon (its slots are handed out at random): commit
      // them with this one, one call of each kind for all, while the budget has room for them.
      std::size_t count = reserved_run_pages_from(arena, page);
      // Past the budget, BEST_EFFORT commits them together just the same, unlocked: one call
      // for the run, not one for each of its pages.
      bool past_budget =
          budget.policy() == budget::Policy::kBestEffort && !budget.has_room(os::kPageSize);
      if (count > 1 && !budget.has_room(count * os::kPageSize) && !past_budget) count = 1;
      pages::CommitResult result =
          pages::commit(budget, arena.page_address(page), count * os::kPageSize, reclaimer);
      if (result == pages::CommitResult::kFailed && count > 1) {
        count = 1;
        result = pages::commit(budget, arena.page_address(page), os::kPageSize, reclaimer);
      }
      if (result == pages::CommitResult::kFailed) return false;
      PageState state =
          result == pages::CommitResult::kLocked ? PageState::kLocked : PageState::kUnlocked;
      for (std::size_t i = 0; i < count; ++i) arena.set_page_state(page + i, state);
      committed_pages_ += count;
      // The pages after the one wanted wait, empty, for the run's next slots: in the reserve,
      // or kept unlocked.
      if (state == PageState::kLocked) {
        empty_committed_pages_ += count - 1;
      } else {
        empty_unlocked_pages_ += count - 1;
      }
    } else if (arena.page_state[page] == PageState::kUnlocked) {
      if (!reuse_unlocked_page(arena, page, budget, reclaimer)) return false;
    } else if (!arena.secretmem) {
      note_page_left_reserve();
    }
  } else if (arena.page_state[page] == PageState::kUnlocked &&
             !lock_unlocked_page_if_due(arena, page, budget, reclaimer)) {
    // In use, and unlocked since BEST_EFFORT committed it: STRICT, set since, puts no more
    // slots on it unless it can be locked now.
    return false;
  }
  ++arena.page_refcount[page];
  return true;
}

bool Shard::lock_unlocked_page_if_due(Arena& arena, std::size_t page, budget::Budget& budget,
                                      pages::Reclaimer reclaimer) {
  // Locked if the budget has room now. BEST_EFFORT without room keeps it unlocked without a
  // look at the kernel's limit (that look is what a commit past the budget costs); STRICT,
  // which may have been set since the page was committed, locks it or fails.
  bool strict = budget.policy() == budget::Policy::kStrict;
  if (!strict && !budget.has_room(os::kPageSize)) return true;
  return lock_unlocked_page(arena, page, budget, reclaimer) || !strict;
}

bool Shard::reuse_unlocked_page(Arena& arena, std::size_t page, budget::Budget& budget,
                                pages::Reclaimer reclaimer) {
  note_unlocked_page_left();
  if (lock_unlocked_page_if_due(arena, page, budget, reclaimer)) return true;
  ++empty_unlocked_pages_;  // still empty, still kept
  return false;
}

bool Shard::lock_unlocked_page(Arena& arena, std::size_t page, budget::Budget& budget,
                               pages::Reclaimer reclaimer) {
  if (pages::charge_and_lock(budget, arena.page_address(page), os::kPageSize, reclaimer) != 0) {
    return false;
  }
  budget.release_unlocked(os::kPageSize);
  arena.set_page_state(page, PageState::kLocked);
  return true;
}

std::size_t Shard::reserved_run_pages_from(const Arena& arena, std::size_t page) const {
  std::size_t first = arena.page_run[page];
  if (first == kNoRun) return 1;
  std::size_t end = first + run_pages(arena.runs[first].class_index);
  std::size_t count = 1;
  while (page + count < end && arena.page_state[page + count] == PageState::kReserved) ++count;
  return count;
}

int Shard::hold_committed_page(Arena& arena, std::size_t page, budget::Budget& budget,
                               pages::Reclaimer reclaimer) {
  if (page < kFirstDataPage || page >= kEndDataPage ||
      arena.page_state[page] == PageState::kReserved) {
    return EACCES;  // a guard page or a page with nothing on it: PROT_NONE
  }
  // An empty page here is in the reserve, or kept unlocked (counted apart).
  bool empty_unlocked = arena.page_refcount[page] == 0 && !arena.secretmem &&
                        arena.page_state[page] == PageState::kUnlocked;
  if (arena.page_state[page] == PageState::kUnlocked &&
      !lock_unlocked_page(arena, page, budget, reclaimer) &&
      budget.policy() == budget::Policy::kStrict) {
    return ENOMEM;
  }
  // Leave room for the objects that may still land on the page (at most 256).
  if (arena.page_refcount[page] >= UINT16_MAX - kMaxRunSlots) return EOVERFLOW;
  if (arena.page_refcount[page]++ == 0 && !arena.secretmem) {
    if (empty_unlocked) {
      note_unlocked_page_left();
    } else {
      note_page_left_reserve();
    }
  }
  return 0;
}

std::size_t Shard::reserve_limit() const {
  std::size_t proportional = committed_pages_ * 3 / 4;
  return proportional > kMinReservePages ? proportional : kMinReservePages;
}

void Shard::release_page(Arena& arena, std::size_t page, budget::Budget& budget) {
  if (--arena.page_refcount[page] != 0) return;
  // Secret memory cannot be discarded page by page (no MADV_DONTNEED): an empty page stays
  // committed, zero and locked, and costs nothing more than the arena already does.
  if (arena.secretmem) return;
  if (arena.page_state[page] == PageState::kLocked) {
    // Empty locked pages wait in the reserve, so that a workload that shrinks and grows around
    // one size makes no syscalls; only a reserve that stays over its limit is trimmed.
    if (++empty_committed_pages_ > reserve_limit()) {
      trim_if_over_for_long(budget, PageState::kLocked);
    }
    return;
  }
  // A page BEST_EFFORT could not lock waits for the next run too, trimmed as the reserve is.
  if (++empty_unlocked_pages_ > reserve_limit()) {
    trim_if_over_for_long(budget, PageState::kUnlocked);
  }
}

bool Shard::trim_empty_pages(budget::Budget& budget, std::size_t target, PageState kind) {
  bool locked = kind == PageState::kLocked;
  std::size_t& empty = locked ? empty_committed_pages_ : empty_unlocked_pages_;
  if (empty <= target) return false;
  // One look at whether mlockall is active covers the whole sweep.
  bool mlockall = pages::detect_mlockall();
  std::size_t released = 0;
  for (Arena* arena = arenas_; arena != nullptr && empty > target;
       arena = arena->next_in_shard) {
    if (arena->secretmem) continue;
    auto releasable = [&](std::size_t page) {
      return arena->page_refcount[page] == 0 && arena->page_state[page] == kind;
    };
    for (std::size_t page = kFirstDataPage; page < kEndDataPage && empty > target;) {
      if (!releasable(page)) {
        ++page;
        continue;
      }
      // Consecutive empty pages go back in one call of each kind, not one per page.
      std::size_t end = page + 1;
      while (end < kEndDataPage && releasable(end) && empty - (end - page) > target) ++end;
      // Out of mappings (vm.max_map_count): the rest stay, counted (and locked, if they were),
      // until a later trim finds room.
      if (!pages::release(budget, arena->page_address(page), (end - page) * os::kPageSize,
                          locked, mlockall)) {
        return released != 0;
      }
      for (; page < end; ++page) {
        arena->set_page_state(page, PageState::kReserved);
        --empty;
        --committed_pages_;
        ++released;
      }
    }
  }
  if (empty <= reserve_limit()) (locked ? over_limit_since_ms_ : unlocked_over_limit_since_ms_) = 0;
  // True only if something went back: a reclaimer that keeps answering true would be asked
  // forever.
  return released != 0;
}

void Shard::trim_if_over_for_long(budget::Budget& budget, PageState kind) {
  bool locked = kind == PageState::kLocked;
  std::size_t empty = locked ? empty_committed_pages_ : empty_unlocked_pages_;
  // The delay is for a budget with room to spare: where the reserve could not be locked again
  // on top of what is locked now (an ordinary user near RLIMIT_MEMLOCK, which the application's
  // own mlock shares; a limit lowered by a privilege drop), it goes back at once, as it always
  // did (down to half its limit, again at each page past it). Unlocked pages hold no budget:
  // they always wait.
  if (locked && !budget.has_room(empty * os::kPageSize)) {
    trim_empty_pages(budget, reserve_limit() / 2, kind);
    return;
  }
  std::uint64_t& since = locked ? over_limit_since_ms_ : unlocked_over_limit_since_ms_;
  std::uint64_t now = os::coarse_milliseconds();
  if (since == 0) {
    since = now;
    return;
  }
  if (now - since < kTrimDelayMs) return;
  // Three eighths of what stays committed: with `live` pages in use and `keep` left empty,
  // keep = 3/8 (live + keep) gives keep = 3/5 live.
  std::size_t live = committed_pages_ - empty_committed_pages_ - empty_unlocked_pages_;
  std::size_t keep = live * 3 / 5;
  trim_empty_pages(budget, keep > kMinReservePages ? keep : kMinReservePages, kind);
}

bool Shard::release_empty_pages(budget::Budget& budget) {
  return trim_empty_pages(budget, 0, PageState::kLocked);
}

void Shard::quarantine_slot(const CachedSlot& slot, std::size_t class_index,
                            budget::Budget& budget) {
  Quarantine& waiting = quarantine_[class_index - kFirstQuarantinedClass];
  if (waiting.count == kQuarantineLength) {
    // The oldest has waited its kQuarantineLength frees: back to its run, and the newest
    // takes its place.
    CachedSlot& oldest = waiting.slots[waiting.oldest];
    return_slot(oldest, budget);
    oldest = slot;
    waiting.oldest = (waiting.oldest + 1) % kQuarantineLength;
    return;
  }
  waiting.slots[(waiting.oldest + waiting.count) % kQuarantineLength] = slot;
  ++waiting.count;
  quarantined_bytes_ += kSlotSizes[class_index];
}

bool Shard::empty_quarantine(budget::Budget& budget) {
  bool any = false;
  for (std::size_t q = 0; q < kClassCount - kFirstQuarantinedClass; ++q) {
    Quarantine& waiting = quarantine_[q];
    for (; waiting.count > 0; --waiting.count) {
      return_slot(waiting.slots[waiting.oldest], budget);
      waiting.slots[waiting.oldest] = {};
      waiting.oldest = (waiting.oldest + 1) % kQuarantineLength;
      quarantined_bytes_ -= kSlotSizes[kFirstQuarantinedClass + q];
      any = true;
    }
  }
  return any;
}

bool Shard::hold_slot_pages(Run& run, std::size_t slot, budget::Budget& budget,
                            pages::Reclaimer reclaimer) {
  PageSpan span = pages_of_slot(run, slot);
  for (std::size_t page = span.first; page <= span.last; ++page) {
    if (!acquire_page(*run.arena, page, budget, reclaimer)) {
      for (std::size_t undo = span.first; undo < page; ++undo)
        release_page(*run.arena, undo, budget);
      return false;
    }
  }
  return true;
}

Shard::SlotPlace Shard::find_slot_on_held_pages(std::size_t class_index, bool locked_only) {
  std::size_t slots = run_slots(class_index);
  auto usable = [locked_only](PageState state) {
    return locked_only ? state == PageState::kLocked : state != PageState::kReserved;
  };
  for (Run* run = runs_with_room_[class_index]; run != nullptr; run = run->next) {
    for (std::size_t slot = 0; slot < slots; ++slot) {
      if (run->used.test(slot)) continue;
      PageSpan span = pages_of_slot(*run, slot);
      if (usable(run->arena->page_state[span.first]) &&
          usable(run->arena->page_state[span.last])) {
        return {run, slot};
      }
    }
  }
  return {nullptr, 0};
}

std::size_t Shard::take_slots(std::size_t class_index, std::size_t wanted, CachedSlot* out,
                              std::uint64_t generation, std::uint32_t my_index,
                              ArenaRegistry& registry, budget::Budget& budget,
                              pages::Reclaimer reclaimer, pages::SecretmemPool* pool) {
  std::size_t taken = 0;
  bool dissolved_empty_runs = false;
  while (taken < wanted) {
    Run* run = runs_with_room_[class_index];
    if (run == nullptr) {
      run = create_run(class_index, generation, my_index, registry, budget, reclaimer, pool);
      if (run == nullptr) break;
    }
    std::size_t slots = run_slots(class_index);
    std::size_t slot = run->used.clear_from(random_.below(slots), slots);
    // With no budget left, a random pick would land on an uncommitted page and make the
    // reclaimer give pages back only to take them again: use the pages held already.
    SlotPlace place{run, slot};
    // Under STRICT, a page BEST_EFFORT left unlocked is held only once it is locked, which
    // takes budget too: only locked pages cost nothing.
    bool locked_only = budget.policy() == budget::Policy::kStrict;
    if (!run->arena->secretmem && !budget.has_room(os::kPageSize)) {
      SlotPlace held = find_slot_on_held_pages(class_index, locked_only);
      if (held.run != nullptr) place = held;
    }
    if (!hold_slot_pages(*place.run, place.slot, budget, reclaimer)) {
      // Out of budget. A free slot on pages already committed costs nothing: take one if any
      // run of the class has it (the random pick may have landed on an uncommitted page).
      SlotPlace found = find_slot_on_held_pages(class_index, locked_only);
      if (found.run == nullptr || !hold_slot_pages(*found.run, found.slot, budget, reclaimer)) {
        if (run->live == 0) dissolve_run(*run);
        // Committed pages may sit in the empty runs other classes keep (memfd_secret pages
        // are charged whether used or not): once, give them up and try again.
        if (!dissolved_empty_runs && dissolve_empty_runs()) {
          dissolved_empty_runs = true;
          continue;
        }
        break;
      }
      place = found;
    }
    if (run->live == 0 && place.run != run) dissolve_run(*run);
    run = place.run;
    slot = place.slot;
    run->used.set(slot);
    Arena& arena = *run->arena;
    unsigned char* address = slot_address(*run, slot);
    arena.slot_word_at(address).store(
        slot_word(kSlotCached, class_index, 0, slot_canary_bits(random_.next32())),
        std::memory_order_relaxed);
    if (++run->live == run_slots(class_index)) unlink(*run);
    out[taken++] = {address, &arena};
  }
  return taken;
}

void Shard::return_slot(const CachedSlot& cached, budget::Budget& budget) {
  auto [run, slot] = locate(*cached.arena, cached.address);
  cached.arena->slot_word_at(cached.address)
      .store(slot_word(kSlotFree, run.class_index), std::memory_order_relaxed);
  run.used.clear(slot);
  bool was_full = run.live == run_slots(run.class_index);
  --run.live;
  PageSpan span = pages_of_slot(run, slot);
  for (std::size_t page = span.first; page <= span.last; ++page) {
    release_page(*run.arena, page, budget);
  }
  if (was_full) link(run);
  // An empty run gives its pages back to the arena unless it is the class's only run with
  // room: keeping one avoids rebuilding a run on every alloc/free pair.
  if (run.live == 0 && (runs_with_room_[run.class_index] != &run || run.next != nullptr)) {
    dissolve_run(run);
  }
}

void* Shard::allocate(std::size_t size, std::size_t class_index, report::Operation operation,
                      std::uint64_t generation, std::uint32_t my_index, ArenaRegistry& registry,
                      budget::Budget& budget, pages::Reclaimer reclaimer,
                      pages::SecretmemPool* pool) {
  CachedSlot slot;
  if (take_slots(class_index, 1, &slot, generation, my_index, registry, budget, reclaimer, pool) ==
      0) {
    return nullptr;
  }
  hand_out(slot, class_index, size, operation);
  return slot.address;
}

std::size_t Shard::free(Arena& arena, void* pointer, budget::Budget& budget,
                        report::Operation operation) {
  FreedSlot freed = take_back(arena, pointer, operation);
  return_slot({static_cast<unsigned char*>(pointer), &arena}, budget);
  return freed.requested;
}

void Shard::free_inherited(Arena& arena, void* pointer, report::Operation operation) {
  std::atomic<SlotWord>* word = slot_word_for(arena, pointer);
  if (word == nullptr) report::fatal_invalid_pointer(operation, pointer);
  SlotWord seen = word->load(std::memory_order_relaxed);
  if (slot_state(seen) != kSlotLive) report_not_live(operation, pointer, seen);
  auto [run, slot] = locate(arena, static_cast<unsigned char*>(pointer));
  word->store(slot_word(kSlotFree, run.class_index), std::memory_order_relaxed);
  sanitizers::released(pointer);
  run.used.clear(slot);
  --run.live;
}

std::size_t Shard::usable_size(Arena& arena, const void* pointer, report::Operation operation) {
  std::atomic<SlotWord>* word = slot_word_for(arena, pointer);
  SlotWord seen = word == nullptr ? SlotWord{0} : word->load(std::memory_order_acquire);
  if (slot_state(seen) != kSlotLive) report::fatal_invalid_pointer(operation, pointer);
  return slot_requested(seen);
}

bool Shard::owns(Arena& arena, const void* pointer) {
  std::atomic<SlotWord>* word = slot_word_for(arena, pointer);
  return word != nullptr && slot_state(word->load(std::memory_order_acquire)) == kSlotLive;
}

bool Shard::range_reads_zero(Arena& arena, const void* pointer, std::size_t length) {
  const auto* bytes = static_cast<const unsigned char*>(pointer);
  const unsigned char* end = bytes + length;
  bool zero = true;
  while (bytes < end && zero) {
    // One page at a time: pages given back to the kernel are PROT_NONE and count as zero.
    const unsigned char* page_end = arena.page_address(arena.page_index(bytes) + 1);
    std::size_t span = static_cast<std::size_t>((page_end < end ? page_end : end) - bytes);
    if (arena.page_state[arena.page_index(bytes)] != PageState::kReserved) {
      // Freed memory is poisoned under ASan; this hook may look at it, the application may not.
      sanitizers::unpoison(bytes, span);
      for (std::size_t i = 0; i < span; ++i) zero &= bytes[i] == 0;
      sanitizers::poison(bytes, span);
    }
    bytes += span;
  }
  return zero;
}

void Shard::add_stats(ShardStats& stats) const {
  stats.reserved_bytes += reserved_bytes_;
  stats.quarantined_bytes += quarantined_bytes_;
}

void Shard::forget_arenas_after_fork() {
  lock_.reset_after_fork();
  // A memfd_secret arena's data pages are not in the child at all (MADV_DONTFORK): the range is
  // a hole that the kernel would hand to the child's next mapping, inside an arena the registry
  // still names. Fill it with a read-only mapping of zeros: the registry stays true, the
  // inherited pointers read zero as an anonymous arena's do (realloc copies zeros), and the
  // child's own blocks go elsewhere. If the kernel refuses, the hole stays (nothing better to do
  // in a fork handler); the registry lookup of a child's block can then go wrong, as before.
  for (Arena* arena = arenas_; arena != nullptr; arena = arena->next_in_shard) {
    if (arena->secretmem) {
      (void)os::map_zero_placeholder(arena->base + kFirstDataPage * os::kPageSize,
                                     (kEndDataPage - kFirstDataPage) * os::kPageSize);
    }
  }
  for (auto& head : runs_with_room_) head = nullptr;
  // The quarantined slots are the parent's, in wiped arenas: they stay cached there (a free of
  // one in the child is a double free) and are never handed out.
  for (auto& waiting : quarantine_) waiting = Quarantine{};
  quarantined_bytes_ = 0;
  arenas_ = nullptr;
  reserved_bytes_ = 0;
  empty_committed_pages_ = 0;
  empty_unlocked_pages_ = 0;
  committed_pages_ = 0;
  over_limit_since_ms_ = 0;
  unlocked_over_limit_since_ms_ = 0;
  reserve_drawn_ms_ = 0;
}

}  // namespace lockbox::small
