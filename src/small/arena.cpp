// Arena creation: reserve, advise once for the whole arena (no dump, wipe in a forked child),
// map the metadata apart. Pages are committed later, one run at a time.
#include "small/arena.hpp"

#include <cerrno>
#include <cstring>
#include <new>

#include "support/last_error.hpp"

namespace lockbox::small {

Arena* create_arena(std::uint64_t generation, std::uint32_t shard_index) {
  void* memory = nullptr;
  if (int err = os::reserve_aligned(kArenaBytes, kArenaBytes, &memory)) {
    set_last_error("cannot reserve a %zu-byte arena: mmap failed (%s)", kArenaBytes,
                   std::strerror(err));
    return nullptr;
  }
  // Advice is set on the whole reservation before any page is committed, so no secret page
  // ever exists without it. Each advice is its own checked call.
  int err = os::advise_dont_dump(memory, kArenaBytes);
  if (err == 0) {
    err = os::advise_wipe_on_fork(memory, kArenaBytes);
    // Kernels before 4.14 lack MADV_WIPEONFORK: drop the arena from children instead.
    if (err == EINVAL) err = os::advise_dont_fork(memory, kArenaBytes);
  }
  void* metadata = nullptr;
  if (err == 0) err = os::map_metadata(sizeof(Arena), &metadata);
  if (err != 0) {
    os::unmap(memory, kArenaBytes);
    set_last_error("cannot prepare a new arena: %s", std::strerror(err));
    return nullptr;
  }
  auto* arena = new (metadata) Arena;
  arena->base = static_cast<unsigned char*>(memory);
  arena->generation = generation;
  arena->shard_index = shard_index;
  arena->unowned_pages = kEndDataPage - kFirstDataPage;
  os::PageInfo first_page;
  arena->locked_by_application =
      os::describe_pages(memory, 1, &first_page) == 0 && first_page.locked;
  for (std::size_t page = 0; page < kArenaPages; ++page) {
    arena->page_refcount[page] = 0;
    arena->page_state[page] = PageState::kReserved;
    arena->page_run[page] = kNoRun;
  }
  return arena;
}

}  // namespace lockbox::small
