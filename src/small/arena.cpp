// SPDX-License-Identifier: ISC
// Arena creation: reserve, advise once for the whole arena (no dump, wipe in a forked child),
// map the metadata apart. Pages are committed later, one run at a time. With the memfd_secret
// backend the data pages are secret memory mapped over the reservation, charged whole at once;
// the guard pages stay anonymous PROT_NONE and cost nothing.
#include "small/arena.hpp"

#include <cerrno>
#include <cstring>
#include <new>

#include "support/last_error.hpp"

namespace lockbox::small {
namespace {

constexpr std::size_t kDataBytes = (kEndDataPage - kFirstDataPage) * os::kPageSize;

// Turns the data pages of a fresh reservation into memfd_secret memory. 0, or why not (the
// reason in last_error; the reservation is then unusable and must be unmapped).
int map_secretmem(void* memory, budget::Budget& budget, pages::SecretmemPool& pool,
                  pages::Reclaimer reclaimer) {
  unsigned char* data = static_cast<unsigned char*>(memory) + kFirstDataPage * os::kPageSize;
  if (!pages::charge(budget, kDataBytes, reclaimer)) {
    pages::explain_over_budget(budget, kDataBytes);
    return ENOMEM;
  }
  int err = pool.map(data, kDataBytes);
  // The kernel charged the limit and refused what the budget allowed: the limit or the
  // capability changed under lockbox (a privilege drop). Read them again; if they moved, the
  // charge decides anew.
  if ((err == EAGAIN || err == ENOMEM) && budget.refresh_limit()) {
    budget.release_locked(kDataBytes);
    if (!pages::charge(budget, kDataBytes, reclaimer)) {
      pages::explain_over_budget(budget, kDataBytes);
      return ENOMEM;
    }
    err = pool.map(data, kDataBytes);
  }
  // Never in a child: MADV_WIPEONFORK is refused on shared mappings, so the child gets none.
  if (err == 0) err = os::advise_dont_fork(data, kDataBytes);
  if (err != 0) {
    budget.release_locked(kDataBytes);
    set_last_error("cannot map a memfd_secret arena: %s%s", std::strerror(err),
                   err == ENOSYS  ? " (the kernel lacks memfd_secret; boot with secretmem.enable=1)"
                   : err == EPERM ? " (a seccomp filter forbids memfd_secret)"
                   : err == EAGAIN ? " (RLIMIT_MEMLOCK: the whole arena is charged at once)"
                                   : "");
    return err;
  }
  budget.add_secretmem(kDataBytes);
  return 0;
}

}  // namespace

Arena* create_arena(std::uint64_t generation, std::uint32_t shard_index, budget::Budget& budget,
                    pages::SecretmemPool* pool, pages::Reclaimer reclaimer) {
  pages::Backend backend = pool == nullptr ? pages::Backend::kAnonymous : pool->backend();
  bool secretmem = backend == pages::Backend::kSecretmem ||
                   (backend == pages::Backend::kAuto && !pool->unavailable());
  void* memory = nullptr;
  if (int err = os::reserve_aligned(kArenaBytes, kArenaBytes, &memory)) {
    set_last_error("cannot reserve a %zu-byte arena: mmap failed (%s)", kArenaBytes,
                   std::strerror(err));
    return nullptr;
  }
  if (secretmem) {
    int err = map_secretmem(memory, budget, *pool, reclaimer);
    if (err != 0) {
      os::unmap(memory, kArenaBytes);
      if (backend == pages::Backend::kSecretmem) return nullptr;  // asked for, not had: fail
      // auto: anonymous memory instead; a kernel without memfd_secret will not grow one.
      if (err == ENOSYS || err == EPERM) pool->set_unavailable();
      return create_arena(generation, shard_index, budget, nullptr, reclaimer);
    }
  }
  // Advice is set on the whole reservation before any page is committed, so no secret page
  // ever exists without it.
  int err = os::advise_secret_mapping(memory, kArenaBytes, secretmem);
  void* metadata = nullptr;
  if (err == 0) err = os::map_metadata(sizeof(Arena), &metadata);
  if (err != 0) {
    os::unmap(memory, kArenaBytes);
    if (secretmem) {
      budget.release_locked(kDataBytes);
      budget.remove_secretmem(kDataBytes);
    }
    set_last_error("cannot prepare a new arena: %s", std::strerror(err));
    return nullptr;
  }
  auto* arena = new (metadata) Arena;
  arena->base = static_cast<unsigned char*>(memory);
  arena->generation = generation;
  arena->shard_index = shard_index;
  arena->secretmem = secretmem;
  // Under mlockall(MCL_FUTURE) the new mapping is born locked. Its first page is a guard page
  // with nothing in it, so asking costs one system call and discards nothing.
  arena->locked_by_application = !secretmem && os::empty_range_is_locked(memory, os::kPageSize);
  for (std::size_t page = 0; page < kArenaPages; ++page) {
    arena->page_refcount[page] = 0;
    arena->set_page_state(page, PageState::kReserved);
    // The guard pages are no run's and never will be: only data pages are unowned (in the map).
    bool data_page = page >= kFirstDataPage && page < kEndDataPage;
    if (data_page) {
      arena->set_page_run(page, kNoRun);
    } else {
      arena->page_run[page] = kNoRun;
    }
  }
  return arena;
}

}  // namespace lockbox::small
