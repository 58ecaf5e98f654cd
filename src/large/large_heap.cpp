// SPDX-License-Identifier: ISC
// Large blocks are rare and big: one mapping each keeps the guard pages exact. A freed block is
// zeroed and made PROT_NONE; its range waits in the quarantine and is unmapped when newer blocks
// push it out. Its pages either stay with it, locked (the cache, while it has room), or go back
// to the kernel at once (munlock, discard).
#include "large/large_heap.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>

#include "os/os.hpp"
#include "report/report.hpp"
#include "support/canary.hpp"
#include "support/last_error.hpp"
#include "support/request_limit.hpp"
#include "support/sanitizers.hpp"

namespace lockbox::large {
namespace {

constexpr std::size_t kPage = os::kPageSize;
using canary::FirstByte;

// Where the leading canary of the object at `pointer` lies, as offsets from `data` (the first
// data page): as many of the 16 bytes before the object as the data pages hold. Fewer than 16
// means the rest is the leading guard page, which faults.
struct LeadingSpan {
  std::size_t from, to;
};
LeadingSpan leading_span(const unsigned char* data, const unsigned char* pointer) {
  auto to = static_cast<std::size_t>(pointer - data);
  std::size_t length = to < LargeHeap::kLeadingCanaryBytes ? to : LargeHeap::kLeadingCanaryBytes;
  return {to - length, to};
}

}  // namespace

std::size_t LargeHeap::mapping_bytes(const Block& block) { return (block.data_pages + 2) * kPage; }

void* LargeHeap::allocate(std::size_t size, std::size_t alignment, budget::Budget& budget,
                          pages::Reclaimer reclaimer, bool guarded) {
  // Beyond a page of alignment, the aligned start may sit up to alignment - page bytes in.
  std::size_t padding = alignment > kPage ? alignment - kPage : 0;
  if (size > kMaxRequest || padding > kMaxRequest - size) {
    set_last_error("cannot allocate %zu bytes with alignment %zu: too large", size, alignment);
    return nullptr;
  }
  std::size_t data_pages = (size + padding + kPage - 1) / kPage;
  if (data_pages == 0) data_pages = 1;
  Block block{};
  block.data_pages = data_pages;
  block.size = size;
  block.locked = true;
  block.guarded = guarded;
  block.protection = Protection::kReadWrite;
  QuarantinedBlock cached{};
  bool reused = false;
  if (alignment <= kPage) {
    shape_for(block, alignment);
    MaskedLockGuard guard(lock_);
    reused = take_cached(block, &cached);
  }
  if (reused && !reopen_cached(block, cached, budget)) reused = false;
  if (!reused && !reserve(block)) return nullptr;
  void* mapping = block.mapping;
  unsigned char* pointer = place(block, alignment);
  std::uintptr_t key = table_key(pointer);
  unsigned char* data = committed_start(block);
  unsigned char* end = data + committed_bytes(block);
  if (!reused) {
    switch (pages::commit(budget, data, committed_bytes(block), reclaimer)) {
      case pages::CommitResult::kLocked:
        // Every page is resident now (mlock faulted them in) and stays so. Lock-on-fault only
        // spares the cache's reopen (and lockbox_protect) a walk over every page; where the
        // kernel refuses it, the pages are as locked as before and only that walk remains.
        os::mark_lock_on_fault(data, committed_bytes(block));
        break;
      case pages::CommitResult::kUnlocked:
        block.locked = false;
        break;
      case pages::CommitResult::kFailed:
        os::unmap(mapping, mapping_bytes(block));
        return nullptr;
    }
  }
  {
    MaskedLockGuard guard(lock_);
    block.canary = random_.next64();
    canary::write_span(pointer, size, static_cast<std::size_t>(end - pointer), block.canary,
                       FirstByte::kZero);
    LeadingSpan lead = leading_span(data, pointer);
    canary::write_span(data, lead.from, lead.to, block.canary, FirstByte::kRandom);
    if (blocks_.insert(key, block)) {
      block_count_.fetch_add(1, std::memory_order_relaxed);
      sanitizers::poison(pointer + size, static_cast<std::size_t>(end - pointer) - size);
      sanitizers::poison(data + lead.from, lead.to - lead.from);
      sanitizers::allocated(pointer, size);
      ++stats_.live_allocations;
      stats_.in_use_bytes += size;
      stats_.reserved_bytes += mapping_bytes(block);
      return pointer;
    }
  }
  // No memory for the table's entry: the block goes back as it came. As in free(), a refusal
  // on its own mapping is a state lockbox cannot explain.
  if (!pages::release(budget, data, committed_bytes(block), block.locked,
                      pages::mlockall_active())) {
    report::fatal_os_failure("munlock or mprotect", data);
  }
  os::unmap(mapping, mapping_bytes(block));
  set_last_error("cannot allocate %zu bytes: no memory for lockbox's own bookkeeping", size);
  return nullptr;
}

bool LargeHeap::reserve(Block& block) {
  void* mapping = nullptr;
  if (int err = os::reserve(mapping_bytes(block), &mapping)) {
    set_last_error("cannot reserve %zu bytes for a large block: mmap failed (%s)",
                   mapping_bytes(block), std::strerror(err));
    return false;
  }
  if (int err = os::advise_secret_mapping(mapping, mapping_bytes(block), false)) {
    os::unmap(mapping, mapping_bytes(block));
    set_last_error("cannot prepare a large block: madvise failed (%s)", std::strerror(err));
    return false;
  }
  block.mapping = static_cast<unsigned char*>(mapping);
  return true;
}

unsigned char* LargeHeap::place(Block& block, std::size_t alignment) {
  // The object ends as close to the trailing guard as its alignment allows. Only the pages it
  // and its leading canary touch are committed: a 16 MiB alignment costs address space, not
  // 16 MiB of locked memory.
  unsigned char* data_start = block.mapping + kPage;
  unsigned char* data_end = data_start + block.data_pages * kPage;
  auto start =
      reinterpret_cast<std::uintptr_t>(data_end - block.size) & ~(std::uintptr_t{alignment} - 1);
  auto* pointer = reinterpret_cast<unsigned char*>(start);
  set_committed_span(block, static_cast<std::size_t>(pointer - data_start));
  return pointer;
}

void LargeHeap::set_committed_span(Block& block, std::size_t before_object) {
  block.padding_pages =
      before_object > kLeadingCanaryBytes ? (before_object - kLeadingCanaryBytes) / kPage : 0;
  std::size_t through_object = before_object + (block.size == 0 ? 1 : block.size);
  block.committed_pages = (through_object + kPage - 1) / kPage - block.padding_pages;
}

void LargeHeap::check_and_wipe(void* pointer, const Block& block, report::Operation operation) {
  unsigned char* data = committed_start(block);
  std::size_t data_bytes = committed_bytes(block);
  // A guarded secret is freed whatever its protection (libsodium #215 forgot this).
  if (block.protection != Protection::kReadWrite && os::protect_read_write(data, data_bytes) != 0) {
    report::fatal_os_failure("mprotect", data);
  }
  auto* bytes = static_cast<unsigned char*>(pointer);
  std::size_t tail = static_cast<std::size_t>(data + data_bytes - bytes);
  LeadingSpan lead = leading_span(data, bytes);
  sanitizers::released(pointer);
  sanitizers::unpoison(data, data_bytes);
  if (!canary::span_intact(bytes, block.size, tail, block.canary, FirstByte::kZero)) {
    report::fatal_canary_broken(operation, pointer);
  }
  if (!canary::span_intact(data, lead.from, lead.to, block.canary, FirstByte::kRandom)) {
    report::fatal_underflow(operation, pointer);
  }
  if (block.locked) {
    sodium_memzero(data, data_bytes);  // every page is resident: mlock faulted them in
  } else {
    zero_resident_pages(data, data_bytes);
  }
}

// An unlocked block (BEST_EFFORT) may be mostly untouched: zeroing it whole would fault in every
// page (a 1 GiB block with one page written would grow the process by 1 GiB). Only pages that
// are resident can hold data; the others read as zero, or sit in swap, beyond reach of any
// zeroing (the reason BEST_EFFORT warns).
void LargeHeap::zero_resident_pages(unsigned char* data, std::size_t bytes) {
  constexpr std::size_t kBatch = 1024;  // pages per mincore call
  unsigned char resident[kBatch];
  for (std::size_t done = 0; done < bytes; done += kBatch * kPage) {
    std::size_t pages = (bytes - done) / kPage < kBatch ? (bytes - done) / kPage : kBatch;
    if (os::resident_pages(data + done, pages, resident) != 0) {
      sodium_memzero(data + done, pages * kPage);  // cannot tell: zero them all
      continue;
    }
    for (std::size_t i = 0; i < pages; ++i) {
      if (resident[i] & 1) sodium_memzero(data + done + i * kPage, kPage);
    }
  }
}

LargeHeap::FreeResult LargeHeap::free(void* pointer, budget::Budget& budget,
                                      report::Operation operation, std::uintptr_t* mapping,
                                      std::size_t* mapping_size) {
  std::uintptr_t key = table_key(pointer);
  Block block;
  {
    MaskedLockGuard guard(lock_);
    Block* found = blocks_.find(key);
    if (found == nullptr) {
      return in_quarantine(key) ? FreeResult::kDoubleFree : FreeResult::kNotAllocated;
    }
    // Of two threads freeing one block at once, the second sees this and reports it.
    if (found->freeing) return FreeResult::kDoubleFree;
    found->freeing = true;
    block = *found;
  }
  QuarantinedBlock evicted[kQuarantineBlocks];
  std::size_t evicted_count = 0;
  bool kept = false;
  if (block.inherited) {
    // A forked child's copy of its parent's block (wiped by the kernel, or absent): it only
    // goes away, as before the quarantine existed. Its poisoning (inherited with the
    // sanitizer's shadow) must go too: the kernel may map the child's next block there.
    sanitizers::released(pointer);
    sanitizers::returned_to_kernel(block.mapping, mapping_bytes(block));
    evicted[evicted_count++] =
        QuarantinedBlock{.pointer = key, .mapping = block.mapping, .bytes = mapping_bytes(block)};
  } else {
    check_and_wipe(pointer, block, operation);
    // Zeroed, the pages may stay, locked, behind PROT_NONE (a stale access faults all the
    // same); otherwise they go back now (munlock, discard, PROT_NONE) and only the range waits.
    // The data pages are a mapping of their own and PROT_NONE merges them with the guards, so
    // neither change needs a new mapping: a refusal is not a shortage but a state lockbox
    // cannot explain.
    kept = block.locked && committed_bytes(block) <= cache_limit(budget) &&
           os::protect_none(committed_start(block), committed_bytes(block)) == 0;
    if (!kept && !pages::release(budget, committed_start(block), committed_bytes(block),
                                 block.locked, pages::mlockall_active())) {
      report::fatal_os_failure("munlock or mprotect", committed_start(block));
    }
    sanitizers::returned_to_kernel(block.mapping, mapping_bytes(block));
  }
  {
    MaskedLockGuard guard(lock_);
    blocks_.erase(key);
    block_count_.fetch_sub(1, std::memory_order_relaxed);
    if (!block.inherited) {
      --stats_.live_allocations;
      stats_.in_use_bytes -= block.size;
      stats_.reserved_bytes -= mapping_bytes(block);
      QuarantinedBlock entry{.pointer = key,
                             .mapping = block.mapping,
                             .bytes = mapping_bytes(block),
                             .data_pages = block.data_pages,
                             .padding_pages = block.padding_pages,
                             .committed_pages = block.committed_pages,
                             .freed_at = ++frees_,
                             .pages_kept = kept};
      evicted_count = enter_quarantine(entry, evicted);
      if (kept) {
        stats_.cached_bytes += committed_bytes(block);
        if (stats_.cached_bytes > cache_limit(budget)) shrink_cache(budget, cache_limit(budget));
      }
      publish_cached_bytes();
    }
  }
  unmap_evicted(budget, evicted, evicted_count);
  *mapping = reinterpret_cast<std::uintptr_t>(block.mapping);
  *mapping_size = mapping_bytes(block);
  return FreeResult::kFreed;
}

std::size_t LargeHeap::enter_quarantine(const QuarantinedBlock& block, QuarantinedBlock* evicted) {
  std::size_t count = 0;
  auto evict_oldest = [&] {
    const QuarantinedBlock& oldest = quarantine_[quarantine_oldest_];
    evicted[count++] = oldest;
    stats_.quarantined_bytes -= oldest.bytes;
    if (oldest.pages_kept) stats_.cached_bytes -= oldest.committed_pages * kPage;
    quarantine_oldest_ = (quarantine_oldest_ + 1) % kQuarantineBlocks;
    --quarantine_count_;
  };
  if (quarantine_count_ == kQuarantineBlocks) evict_oldest();
  while (quarantine_count_ > 0 && stats_.quarantined_bytes + block.bytes > kQuarantineBytes) {
    evict_oldest();
  }
  quarantine_[(quarantine_oldest_ + quarantine_count_) % kQuarantineBlocks] = block;
  ++quarantine_count_;
  stats_.quarantined_bytes += block.bytes;
  return count;
}

void LargeHeap::shape_for(Block& block, std::size_t alignment) {
  // As place() computes it: the object ends at the trailing guard, rounded down to its
  // alignment, which for alignments up to a page does not depend on where the block lies.
  std::size_t data_bytes = block.data_pages * kPage;
  std::size_t misalignment = (alignment - block.size % alignment) % alignment;
  set_committed_span(block, data_bytes - block.size - misalignment);
}

std::size_t LargeHeap::cache_limit(const budget::Budget& budget) const {
  std::size_t half_budget = budget.limit() / 2;
  return half_budget < kMaxCacheBytes ? half_budget : kMaxCacheBytes;
}

bool LargeHeap::take_cached(const Block& shape, QuarantinedBlock* taken) {
  for (std::size_t i = 0; i < quarantine_count_; ++i) {
    QuarantinedBlock& entry = quarantine_[(quarantine_oldest_ + i) % kQuarantineBlocks];
    if (!entry.pages_kept || entry.data_pages != shape.data_pages ||
        entry.padding_pages != shape.padding_pages ||
        entry.committed_pages != shape.committed_pages) {
      continue;
    }
    // Oldest first: the first that matches and is too young means every later one is too.
    if (frees_ - entry.freed_at < kReuseAfterFrees) return false;
    *taken = entry;
    for (std::size_t j = i + 1; j < quarantine_count_; ++j) {
      quarantine_[(quarantine_oldest_ + j - 1) % kQuarantineBlocks] =
          quarantine_[(quarantine_oldest_ + j) % kQuarantineBlocks];
    }
    --quarantine_count_;
    stats_.quarantined_bytes -= taken->bytes;
    stats_.cached_bytes -= taken->committed_pages * kPage;
    publish_cached_bytes();
    return true;
  }
  return false;
}

bool LargeHeap::reopen_cached(Block& block, const QuarantinedBlock& cached,
                              budget::Budget& budget) {
  block.mapping = cached.mapping;
  unsigned char* data = committed_start(block);
  // The pages are committed, locked and zero: one mprotect. It splits the mapping again, so at
  // vm.max_map_count it can be refused: then the block goes, and a new one is tried.
  if (os::protect_read_write(data, committed_bytes(block)) != 0) {
    if (os::unmap(cached.mapping, cached.bytes) != 0) {
      report::fatal_os_failure("munmap", cached.mapping);
    }
    budget.release_locked(committed_bytes(block));
    return false;
  }
  sanitizers::unpoison(data, committed_bytes(block));
  return true;
}

void LargeHeap::shrink_cache(budget::Budget& budget, std::size_t keep) {
  for (std::size_t i = 0; i < quarantine_count_ && stats_.cached_bytes > keep; ++i) {
    QuarantinedBlock& entry = quarantine_[(quarantine_oldest_ + i) % kQuarantineBlocks];
    if (!entry.pages_kept) continue;
    unsigned char* data = entry.mapping + (1 + entry.padding_pages) * kPage;
    std::size_t bytes = entry.committed_pages * kPage;
    // Out of mappings (vm.max_map_count): they stay cached, counted, until a later try.
    if (!pages::release(budget, data, bytes, true, pages::mlockall_active())) return;
    entry.pages_kept = false;
    stats_.cached_bytes -= bytes;
  }
  publish_cached_bytes();
}

bool LargeHeap::release_cache(budget::Budget& budget) {
  if (cached_bytes_published_.load(std::memory_order_acquire) == 0) return false;
  if (!lock_.try_lock()) return false;
  std::size_t before = stats_.cached_bytes;
  shrink_cache(budget, 0);
  bool released = stats_.cached_bytes < before;
  lock_.unlock();
  return released;
}

void LargeHeap::unmap_evicted(budget::Budget& budget, const QuarantinedBlock* evicted,
                              std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    if (os::unmap(evicted[i].mapping, evicted[i].bytes) != 0) {
      report::fatal_os_failure("munmap", evicted[i].mapping);
    }
    // Unmapping unlocked the kept pages.
    if (evicted[i].pages_kept) budget.release_locked(evicted[i].committed_pages * kPage);
  }
}

bool LargeHeap::in_quarantine(std::uintptr_t pointer) const {
  for (std::size_t i = 0; i < quarantine_count_; ++i) {
    if (quarantine_[(quarantine_oldest_ + i) % kQuarantineBlocks].pointer == pointer) return true;
  }
  return false;
}

int LargeHeap::protect(void* pointer, Protection protection) {
  MaskedLockGuard guard(lock_);
  Block* found = blocks_.find(table_key(pointer));
  if (found == nullptr || !found->guarded || found->freeing) {
    set_last_error("lockbox_protect: %p is not a live secret from lockbox_guarded_alloc", pointer);
    return EINVAL;
  }
  Block& block = *found;
  unsigned char* data = committed_start(block);
  std::size_t bytes = committed_bytes(block);
  int err = protection == Protection::kNoAccess   ? os::protect_none(data, bytes)
            : protection == Protection::kReadOnly ? os::protect_read(data, bytes)
                                                  : os::protect_read_write(data, bytes);
  if (err != 0) {
    set_last_error("lockbox_protect: mprotect failed (%s)", std::strerror(err));
    return err;
  }
  block.protection = protection;
  return 0;
}

bool LargeHeap::is_guarded(const void* pointer) {
  MaskedLockGuard guard(lock_);
  Block* found = blocks_.find(table_key(pointer));
  return found != nullptr && found->guarded;
}

bool LargeHeap::usable_size(const void* pointer, std::size_t* size) {
  MaskedLockGuard guard(lock_);
  Block* found = blocks_.find(table_key(pointer));
  if (found == nullptr || found->freeing) return false;
  *size = found->size;
  return true;
}

LargeHeap::Ownership LargeHeap::ownership(const void* pointer) {
  MaskedLockGuard guard(lock_);
  Block* found = blocks_.find(table_key(pointer));
  if (found == nullptr || found->freeing) return Ownership::kNotOwned;
  return found->inherited ? Ownership::kInherited : Ownership::kLive;
}

LargeHeap::Block* LargeHeap::block_with_data_page(std::uintptr_t page) {
  auto inside = [&](const Block* block) {
    if (block == nullptr) return false;
    auto data = reinterpret_cast<std::uintptr_t>(committed_start(*block));
    return page >= data && page < data + committed_bytes(*block);
  };
  // Blocks are keyed by the byte before their pointer, which sits in one of the block's first
  // two committed pages (the first may hold only the leading canary).
  if (Block* next = blocks_.after(page); inside(next)) return next;
  if (Block* previous = blocks_.at_or_before(page); inside(previous)) return previous;
  return nullptr;
}

bool LargeHeap::contains_data_page(std::uintptr_t page) {
  // Most processes that lock their own memory hold no large block: then no lock (and none of
  // the two system calls a masked lock costs) is needed to know the page is not one.
  if (block_count_.load(std::memory_order_relaxed) == 0) return false;
  MaskedLockGuard guard(lock_);
  return block_with_data_page(page) != nullptr;
}

int LargeHeap::lock_if_unlocked(std::uintptr_t page, budget::Budget& budget,
                                pages::Reclaimer reclaimer) {
  MaskedLockGuard guard(lock_);
  Block* block = block_with_data_page(page);
  if (block == nullptr || block->locked || block->inherited) return 0;
  std::size_t bytes = committed_bytes(*block);
  if (pages::charge_and_lock(budget, committed_start(*block), bytes, reclaimer) == 0) {
    budget.release_unlocked(bytes);
    block->locked = true;
    return 0;
  }
  return budget.policy() == budget::Policy::kStrict ? ENOMEM : 0;
}

void LargeHeap::add_stats(LargeStats& stats) {
  MaskedLockGuard guard(lock_);
  stats.live_allocations += stats_.live_allocations;
  stats.in_use_bytes += stats_.in_use_bytes;
  stats.reserved_bytes += stats_.reserved_bytes + stats_.quarantined_bytes;
  stats.quarantined_bytes += stats_.quarantined_bytes;
  stats.cached_bytes += stats_.cached_bytes;
}

void LargeHeap::mark_inherited_after_fork() {
  lock_.reset_after_fork();
  blocks_.for_each([](std::uintptr_t, Block& block) { block.inherited = true; });
  // The quarantined ranges are the child's too (PROT_NONE, inherited); keep their count. Their
  // kept pages are not: wiped, unlocked, and not in the child's budget.
  for (QuarantinedBlock& entry : quarantine_) entry.pages_kept = false;
  std::size_t quarantined = stats_.quarantined_bytes;
  stats_ = LargeStats{};
  stats_.quarantined_bytes = quarantined;
  publish_cached_bytes();
}

}  // namespace lockbox::large
