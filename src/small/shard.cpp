// Small-object allocation: find a run with room, commit the pages under the chosen slot, check
// that the slot is still zero (else someone wrote after free), stamp the canary. Free checks the
// canary, zeroes the whole slot and drops the page references; a page is unlocked only when no
// live object overlaps it and the shard's reserve of empty locked pages is full.
#include "small/shard.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>

#include "report/report.hpp"
#include "small/canary.hpp"
#include "support/sanitizers.hpp"
#include "support/last_error.hpp"

namespace lockbox::small {
namespace {

bool all_zero(const unsigned char* bytes, std::size_t length) {
  // Slots are 16-byte aligned and a multiple of 16 long.
  std::uint64_t any = 0;
  for (std::size_t i = 0; i < length; i += 16) {
    std::uint64_t a, b;
    std::memcpy(&a, bytes + i, 8);
    std::memcpy(&b, bytes + i + 8, 8);
    any |= a | b;
  }
  return any == 0;
}

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

Run* Shard::create_run(std::size_t class_index, std::uint64_t generation,
                       std::uint32_t my_index, ArenaRegistry& registry, budget::Budget& budget) {
  std::size_t pages = run_pages(class_index);
  Arena* arena = arenas_;
  std::size_t first = 0;
  for (; arena != nullptr; arena = arena->next_in_shard) {
    if (arena->unowned_pages < pages) continue;
    std::size_t free_in_row = 0;
    for (std::size_t page = kFirstDataPage; page < kEndDataPage; ++page) {
      free_in_row = arena->page_run[page] == kNoRun ? free_in_row + 1 : 0;
      if (free_in_row == pages) {
        first = page + 1 - pages;
        break;
      }
    }
    if (free_in_row == pages) break;
  }
  if (arena == nullptr) {
    arena = create_arena(generation, my_index);
    if (arena == nullptr) return nullptr;
    if (!registry.insert(arena)) {
      // The registry is full: the arena is unusable. Its mappings are left to the process
      // (a handful of KiB), which keeps this rare path simple.
      return nullptr;
    }
    // Under mlockall(MCL_FUTURE) a munlock of ours would undo the application's lock.
    if (arena->locked_by_application) budget.set_application_locks_all(true);
    arena->next_in_shard = arenas_;
    arenas_ = arena;
    reserved_bytes_ += kArenaBytes;
    first = kFirstDataPage;
  }
  for (std::size_t page = first; page < first + pages; ++page) {
    arena->page_run[page] = static_cast<std::uint16_t>(first);
  }
  arena->unowned_pages -= static_cast<std::uint32_t>(pages);
  Run& run = arena->runs[first];
  run.arena = arena;
  run.first_page = static_cast<std::uint16_t>(first);
  run.class_index = static_cast<std::uint8_t>(class_index);
  run.live = 0;
  run.used.clear_all();
  // Until a slot is handed out, any access to it is a bug ASan should name.
  sanitizers::poison(arena->page_address(first), pages * os::kPageSize);
  link(run);
  return &run;
}

void Shard::dissolve_run(Run& run) {
  unlink(run);
  Arena& arena = *run.arena;
  std::size_t pages = run_pages(run.class_index);
  for (std::size_t page = run.first_page; page < run.first_page + pages; ++page) {
    arena.page_run[page] = kNoRun;
  }
  arena.unowned_pages += static_cast<std::uint32_t>(pages);
}

bool Shard::acquire_page(Arena& arena, std::size_t page, budget::Budget& budget,
                         pages::Reclaimer reclaimer) {
  if (arena.page_refcount[page] == 0) {
    if (arena.page_state[page] == PageState::kReserved) {
      switch (pages::commit(budget, arena.page_address(page), os::kPageSize, reclaimer)) {
        case pages::CommitResult::kLocked:
          arena.page_state[page] = PageState::kLocked;
          break;
        case pages::CommitResult::kUnlocked:
          arena.page_state[page] = PageState::kUnlocked;
          break;
        case pages::CommitResult::kFailed:
          return false;
      }
    } else {
      --empty_committed_pages_;  // taken back out of the reserve
    }
  }
  ++arena.page_refcount[page];
  return true;
}

int Shard::hold_committed_page(Arena& arena, std::size_t page) {
  if (page < kFirstDataPage || page >= kEndDataPage ||
      arena.page_state[page] == PageState::kReserved) {
    return EACCES;  // a guard page or a page with nothing on it: PROT_NONE
  }
  // Leave room for the objects that may still land on the page (at most 256).
  if (arena.page_refcount[page] >= UINT16_MAX - kMaxRunSlots) return EOVERFLOW;
  if (arena.page_refcount[page]++ == 0) --empty_committed_pages_;
  return 0;
}

void Shard::release_page(Arena& arena, std::size_t page, budget::Budget& budget) {
  if (--arena.page_refcount[page] != 0) return;
  if (arena.page_state[page] == PageState::kLocked && empty_committed_pages_ < kReservePages) {
    ++empty_committed_pages_;
    return;
  }
  pages::release(budget, arena.page_address(page), os::kPageSize,
                 arena.page_state[page] == PageState::kLocked);
  arena.page_state[page] = PageState::kReserved;
}

bool Shard::release_empty_pages(budget::Budget& budget) {
  bool released = false;
  for (Arena* arena = arenas_; arena != nullptr; arena = arena->next_in_shard) {
    for (std::size_t page = kFirstDataPage; page < kEndDataPage; ++page) {
      if (arena->page_refcount[page] != 0 || arena->page_state[page] == PageState::kReserved) {
        continue;
      }
      pages::release(budget, arena->page_address(page), os::kPageSize,
                     arena->page_state[page] == PageState::kLocked);
      arena->page_state[page] = PageState::kReserved;
      released = true;
    }
  }
  empty_committed_pages_ = 0;
  return released;
}

void* Shard::allocate(std::size_t size, std::size_t class_index, std::uint64_t generation,
                      std::uint32_t my_index, ArenaRegistry& registry, budget::Budget& budget,
                      pages::Reclaimer reclaimer) {
  Run* run = runs_with_room_[class_index];
  if (run == nullptr) {
    run = create_run(class_index, generation, my_index, registry, budget);
    if (run == nullptr) return nullptr;
  }
  std::size_t slot = run->used.first_clear(run_slots(class_index));
  PageSpan span = pages_of_slot(*run, slot);
  for (std::size_t page = span.first; page <= span.last; ++page) {
    if (!acquire_page(*run->arena, page, budget, reclaimer)) {
      for (std::size_t undo = span.first; undo < page; ++undo) {
        release_page(*run->arena, undo, budget);
      }
      if (run->live == 0) dissolve_run(*run);
      return nullptr;
    }
  }
  unsigned char* address = slot_address(*run, slot);
  std::size_t slot_size = kSlotSizes[class_index];
  sanitizers::unpoison(address, slot_size);
  if (!all_zero(address, slot_size)) report::fatal_write_after_free(address);
  run->used.set(slot);
  run->requested[slot] = static_cast<std::uint16_t>(size);
  if (++run->live == run_slots(class_index)) unlink(*run);
  write_canary(address, size, slot_size);
  sanitizers::poison(address + size, slot_size - size);
  ++live_allocations_;
  in_use_bytes_ += size;
  return address;
}

SlotRef Shard::locate(Arena& arena, const void* pointer) {
  std::size_t page = arena.page_index(pointer);
  if (page < kFirstDataPage || page >= kEndDataPage || arena.page_run[page] == kNoRun) {
    return {nullptr, 0, nullptr};
  }
  Run& run = arena.runs[arena.page_run[page]];
  auto offset = static_cast<std::size_t>(static_cast<const unsigned char*>(pointer) -
                                         arena.page_address(run.first_page));
  std::size_t slot_size = kSlotSizes[run.class_index];
  if (offset % slot_size != 0) return {nullptr, 0, nullptr};
  std::size_t slot = offset / slot_size;
  return {&run, slot, slot_address(run, slot)};
}

SlotRef Shard::locate_live(Arena& arena, const void* pointer) {
  SlotRef ref = locate(arena, pointer);
  if (ref.run == nullptr) report::fatal_invalid_pointer(pointer);
  if (!ref.run->used.test(ref.slot)) report::fatal_double_free(pointer);
  return ref;
}

void Shard::free(Arena& arena, void* pointer, budget::Budget& budget) {
  SlotRef ref = locate_live(arena, pointer);
  Run& run = *ref.run;
  std::size_t size = run.requested[ref.slot];
  std::size_t slot_size = kSlotSizes[run.class_index];
  sanitizers::unpoison(ref.address, slot_size);
  if (!canary_intact(ref.address, size, slot_size)) report::fatal_canary_broken(pointer);
  sodium_memzero(ref.address, slot_size);
  sanitizers::poison(ref.address, slot_size);
  run.used.clear(ref.slot);
  bool was_full = run.live == run_slots(run.class_index);
  --run.live;
  PageSpan span = pages_of_slot(run, ref.slot);
  for (std::size_t page = span.first; page <= span.last; ++page) release_page(arena, page, budget);
  if (was_full) link(run);
  // An empty run gives its pages back to the arena unless it is the class's only run with
  // room: keeping one avoids rebuilding a run on every alloc/free pair.
  if (run.live == 0 && (runs_with_room_[run.class_index] != &run || run.next != nullptr)) {
    dissolve_run(run);
  }
  --live_allocations_;
  in_use_bytes_ -= size;
}

void Shard::free_inherited(Arena& arena, void* pointer) {
  SlotRef ref = locate_live(arena, pointer);
  ref.run->used.clear(ref.slot);
  --ref.run->live;
}

std::size_t Shard::usable_size(Arena& arena, const void* pointer) {
  SlotRef ref = locate(arena, pointer);
  if (ref.run == nullptr || !ref.run->used.test(ref.slot)) report::fatal_invalid_pointer(pointer);
  return ref.run->requested[ref.slot];
}

bool Shard::owns(Arena& arena, const void* pointer) {
  SlotRef ref = locate(arena, pointer);
  return ref.run != nullptr && ref.run->used.test(ref.slot);
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
  stats.live_allocations += live_allocations_;
  stats.in_use_bytes += in_use_bytes_;
  stats.reserved_bytes += reserved_bytes_;
}

void Shard::forget_arenas_after_fork() {
  lock_.reset_after_fork();
  for (auto& head : runs_with_room_) head = nullptr;
  arenas_ = nullptr;
  live_allocations_ = 0;
  in_use_bytes_ = 0;
  reserved_bytes_ = 0;
  empty_committed_pages_ = 0;
}

}  // namespace lockbox::small
