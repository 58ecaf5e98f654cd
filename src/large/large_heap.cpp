// Large blocks are rare and big: one mapping each keeps the guard pages exact and lets free()
// hand the memory straight back to the kernel.
#include "large/large_heap.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>

#include "os/os.hpp"
#include "pages/page_commit.hpp"
#include "report/report.hpp"
#include "small/canary.hpp"
#include "support/last_error.hpp"
#include "support/sanitizers.hpp"

namespace lockbox::large {
namespace {

constexpr std::size_t kPage = os::kPageSize;

}  // namespace

std::size_t LargeHeap::mapping_bytes(const Block& block) const {
  return (block.data_pages + 2) * kPage;
}

void* LargeHeap::allocate(std::size_t size, std::size_t alignment, budget::Budget& budget,
                          pages::Reclaimer reclaimer, bool guarded) {
  // Beyond a page of alignment, the aligned start may sit up to alignment - page bytes in.
  std::size_t padding = alignment > kPage ? alignment - kPage : 0;
  std::size_t limit = SIZE_MAX / 2;
  if (size > limit || padding > limit - size) {
    errno = ENOMEM;
    set_last_error("cannot allocate %zu bytes with alignment %zu: too large", size, alignment);
    return nullptr;
  }
  std::size_t data_pages = (size + padding + kPage - 1) / kPage;
  if (data_pages == 0) data_pages = 1;
  Block block{nullptr, data_pages, size, true, false, guarded, Protection::kReadWrite};
  void* mapping = nullptr;
  if (int err = os::reserve(mapping_bytes(block), &mapping)) {
    errno = ENOMEM;
    set_last_error("cannot reserve %zu bytes for a large block: mmap failed (%s)",
                   mapping_bytes(block), std::strerror(err));
    return nullptr;
  }
  block.mapping = static_cast<unsigned char*>(mapping);
  int err = os::advise_dont_dump(mapping, mapping_bytes(block));
  if (err == 0) {
    err = os::advise_wipe_on_fork(mapping, mapping_bytes(block));
    if (err == EINVAL) err = os::advise_dont_fork(mapping, mapping_bytes(block));
  }
  if (err != 0) {
    os::unmap(mapping, mapping_bytes(block));
    errno = ENOMEM;
    set_last_error("cannot prepare a large block: madvise failed (%s)", std::strerror(err));
    return nullptr;
  }
  unsigned char* data = block.mapping + kPage;
  std::size_t data_bytes = data_pages * kPage;
  switch (pages::commit(budget, data, data_bytes, reclaimer)) {
    case pages::CommitResult::kLocked:
      break;
    case pages::CommitResult::kUnlocked:
      block.locked = false;
      break;
    case pages::CommitResult::kFailed:
      os::unmap(mapping, mapping_bytes(block));
      errno = ENOMEM;
      return nullptr;
  }
  unsigned char* end = data + data_bytes;
  auto start = reinterpret_cast<std::uintptr_t>(end - size) & ~(std::uintptr_t{alignment} - 1);
  auto* pointer = reinterpret_cast<unsigned char*>(start);
  small::write_canary(pointer, size, static_cast<std::size_t>(end - pointer));
  sanitizers::poison(pointer + size, static_cast<std::size_t>(end - pointer) - size);
  SpinLockGuard guard(lock_);
  blocks_.emplace(start, block);
  ++stats_.live_allocations;
  stats_.in_use_bytes += size;
  stats_.reserved_bytes += mapping_bytes(block);
  return pointer;
}

bool LargeHeap::free(void* pointer, budget::Budget& budget, std::uintptr_t* mapping,
                     std::size_t* mapping_size) {
  Block block;
  {
    SpinLockGuard guard(lock_);
    auto found = blocks_.find(reinterpret_cast<std::uintptr_t>(pointer));
    if (found == blocks_.end()) return false;
    block = found->second;
    blocks_.erase(found);
    if (!block.inherited) {
      --stats_.live_allocations;
      stats_.in_use_bytes -= block.size;
      stats_.reserved_bytes -= mapping_bytes(block);
    }
  }
  unsigned char* data = block.mapping + kPage;
  std::size_t data_bytes = block.data_pages * kPage;
  // A guarded secret is freed whatever its protection (libsodium #215 forgot this).
  if (!block.inherited && block.protection != Protection::kReadWrite &&
      os::protect_read_write(data, data_bytes) != 0) {
    report::fatal_os_failure("mprotect", data);
  }
  if (!block.inherited) {
    auto* bytes = static_cast<unsigned char*>(pointer);
    std::size_t tail = static_cast<std::size_t>(data + data_bytes - bytes);
    sanitizers::unpoison(bytes, tail);
    if (!small::canary_intact(bytes, block.size, tail)) report::fatal_canary_broken(pointer);
    sodium_memzero(data, data_bytes);
    // munmap drops the lock with the mapping; only the budget needs telling.
    if (block.locked) {
      budget.release_locked(data_bytes);
    } else {
      budget.release_unlocked(data_bytes);
    }
  }
  if (os::unmap(block.mapping, mapping_bytes(block)) != 0) {
    report::fatal_os_failure("munmap", block.mapping);
  }
  // The address range may be mapped again by anyone: leave no poison behind.
  sanitizers::unpoison(block.mapping, mapping_bytes(block));
  *mapping = reinterpret_cast<std::uintptr_t>(block.mapping);
  *mapping_size = mapping_bytes(block);
  return true;
}

int LargeHeap::protect(void* pointer, Protection protection) {
  SpinLockGuard guard(lock_);
  auto found = blocks_.find(reinterpret_cast<std::uintptr_t>(pointer));
  if (found == blocks_.end() || !found->second.guarded) {
    set_last_error("lockbox_protect: %p is not a live secret from lockbox_guarded_alloc", pointer);
    return EINVAL;
  }
  Block& block = found->second;
  unsigned char* data = block.mapping + kPage;
  std::size_t bytes = block.data_pages * kPage;
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
  SpinLockGuard guard(lock_);
  auto found = blocks_.find(reinterpret_cast<std::uintptr_t>(pointer));
  return found != blocks_.end() && found->second.guarded;
}

bool LargeHeap::usable_size(const void* pointer, std::size_t* size) {
  SpinLockGuard guard(lock_);
  auto found = blocks_.find(reinterpret_cast<std::uintptr_t>(pointer));
  if (found == blocks_.end()) return false;
  *size = found->second.size;
  return true;
}

bool LargeHeap::contains_data_page(std::uintptr_t page) {
  SpinLockGuard guard(lock_);
  auto inside = [&](const Block& block) {
    auto data = reinterpret_cast<std::uintptr_t>(block.mapping) + kPage;
    return page >= data && page < data + block.data_pages * kPage;
  };
  // Blocks are keyed by their pointer, which may sit anywhere in the block's first data page.
  auto after = blocks_.upper_bound(page);
  if (after != blocks_.end() && inside(after->second)) return true;
  return after != blocks_.begin() && inside(std::prev(after)->second);
}

void LargeHeap::add_stats(LargeStats& stats) {
  SpinLockGuard guard(lock_);
  stats.live_allocations += stats_.live_allocations;
  stats.in_use_bytes += stats_.in_use_bytes;
  stats.reserved_bytes += stats_.reserved_bytes;
}

void LargeHeap::mark_inherited_after_fork() {
  lock_.reset_after_fork();
  for (auto& entry : blocks_) entry.second.inherited = true;
  stats_ = LargeStats{};
}

}  // namespace lockbox::large
