// The table itself is plain bookkeeping; the heap decides what each transition does.
#include "pages/page_lock_table.hpp"

#include "os/os.hpp"

namespace lockbox::pages {

void PageLockTable::forget_range(std::uintptr_t start, std::size_t bytes) {
  if (pages_.empty()) return;
  for (std::uintptr_t page = start; page < start + bytes; page += os::kPageSize) {
    pages_.erase(page);
  }
}

}  // namespace lockbox::pages
