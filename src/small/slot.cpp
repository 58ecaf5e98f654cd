// Slot hand-out and take-back: the checks every small allocation and free pass through.
#include "small/slot.hpp"

#include <cstring>

#include "report/report.hpp"
#include "small/canary.hpp"
#include "support/sanitizers.hpp"
#include "support/secure_zero.hpp"

namespace lockbox::small {
namespace {

bool all_zero(const unsigned char* bytes, std::size_t length) {
  // Slots are 16-byte aligned and a multiple of 16 long. Eight independent words per step keep
  // the loads in flight (and let the compiler use vector registers): this check reads every
  // slot handed out, so its speed is the allocator's.
  std::uint64_t any = 0;
  std::size_t i = 0;
  for (; i + 64 <= length; i += 64) {
    std::uint64_t w[8];
    std::memcpy(w, bytes + i, 64);
    any |= (w[0] | w[1]) | (w[2] | w[3]) | (w[4] | w[5]) | (w[6] | w[7]);
  }
  for (; i < length; i += 16) {
    std::uint64_t w[2];
    std::memcpy(w, bytes + i, 16);
    any |= w[0] | w[1];
  }
  return any == 0;
}

// The canary covers the first 64 bytes after the object (a linear overflow must cross them);
// the rest of a large slack stays zero, and is zeroed again on free with the whole slot.
std::size_t canary_end(std::size_t size, std::size_t slot_size) {
  return slot_size - size > kMaxCanaryBytes ? size + kMaxCanaryBytes : slot_size;
}

}  // namespace

SlotRef find_slot(Arena& arena, const void* pointer) {
  std::size_t page = arena.page_index(pointer);
  if (page < kFirstDataPage || page >= kEndDataPage || arena.page_run[page] == kNoRun) {
    return {nullptr, 0, nullptr};
  }
  Run& run = arena.runs[arena.page_run[page]];
  unsigned char* run_start = arena.page_address(run.first_page);
  auto offset = static_cast<std::size_t>(static_cast<const unsigned char*>(pointer) - run_start);
  std::size_t slot = slot_index(offset, run.class_index);
  if (slot * kSlotSizes[run.class_index] != offset) return {nullptr, 0, nullptr};
  return {&run, slot, run_start + offset};
}

void hand_out(const SlotRef& ref, std::size_t size) {
  std::size_t slot_size = kSlotSizes[ref.run->class_index];
  sanitizers::unpoison(ref.address, slot_size);
  if (!all_zero(ref.address, slot_size)) report::fatal_write_after_free(ref.address);
  ref.run->requested[ref.slot] = static_cast<std::uint16_t>(size);
  write_canary(ref.address, size, canary_end(size, slot_size));
  sanitizers::poison(ref.address + size, slot_size - size);
  ref.run->state[ref.slot].store(kSlotLive, std::memory_order_release);
}

std::size_t take_back(Arena& arena, void* pointer, SlotRef* out) {
  SlotRef ref = find_slot(arena, pointer);
  if (ref.run == nullptr) report::fatal_invalid_pointer(pointer);
  // One atomic step: of two threads freeing the same pointer at once, only one wins.
  std::uint8_t expected = kSlotLive;
  if (!ref.run->state[ref.slot].compare_exchange_strong(expected, kSlotCached,
                                                        std::memory_order_acq_rel)) {
    if (expected == kSlotFree || expected == kSlotCached) report::fatal_double_free(pointer);
    report::fatal_invalid_pointer(pointer);
  }
  std::size_t size = ref.run->requested[ref.slot];
  std::size_t slot_size = kSlotSizes[ref.run->class_index];
  sanitizers::unpoison(ref.address, slot_size);
  if (!canary_intact(ref.address, size, canary_end(size, slot_size))) {
    report::fatal_canary_broken(pointer);
  }
  secure_zero(ref.address, slot_size);
  sanitizers::poison(ref.address, slot_size);
  *out = ref;
  return size;
}

bool on_locked_pages(const SlotRef& ref) {
  const Arena& arena = *ref.run->arena;
  std::size_t slot_size = kSlotSizes[ref.run->class_index];
  return arena.page_state[arena.page_index(ref.address)] == PageState::kLocked &&
         arena.page_state[arena.page_index(ref.address + slot_size - 1)] == PageState::kLocked;
}

}  // namespace lockbox::small
