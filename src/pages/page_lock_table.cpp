// SPDX-License-Identifier: ISC
// The table itself is plain bookkeeping; the heap decides what each transition does.
// Linear probing, at most half full; erase shifts the entries after it back (no tombstones).
#include "pages/page_lock_table.hpp"

#include "os/os.hpp"

namespace lockbox::pages {

CallerLock* PageLockTable::find(std::uintptr_t page) {
  if (count_ == 0) return nullptr;
  std::size_t mask = entries_.size() - 1;
  for (std::size_t i = slot_of(page);; i = (i + 1) & mask) {
    if (entries_[i].page == page) return &entries_[i].lock;
    if (entries_[i].page == 0) return nullptr;
  }
}

bool PageLockTable::reserve(std::size_t more) {
  std::size_t wanted = count_ + more;
  if (wanted < count_ || wanted > SIZE_MAX / 4) return false;
  if (wanted * 2 <= entries_.size()) return true;
  std::size_t capacity = entries_.size() == 0 ? 256 : entries_.size();
  while (capacity < wanted * 2) capacity *= 2;
  return rehash(capacity);
}

bool PageLockTable::rehash(std::size_t capacity) {
  metadata::Array<Entry> old;
  if (!old.resize(capacity)) return false;
  old.swap(entries_);  // entries_: the new, empty table
  shift_ = 64 - static_cast<unsigned>(__builtin_ctzll(capacity));
  count_ = 0;
  for (const Entry& entry : old) {
    if (entry.page != 0) insert(entry.page, entry.lock);
  }
  return true;
}

void PageLockTable::insert(std::uintptr_t page, const CallerLock& lock) {
  std::size_t mask = entries_.size() - 1;
  std::size_t i = slot_of(page);
  while (entries_[i].page != 0) i = (i + 1) & mask;
  entries_[i] = {page, lock};
  ++count_;
}

void PageLockTable::erase(std::uintptr_t page) {
  if (count_ == 0) return;
  std::size_t mask = entries_.size() - 1;
  std::size_t hole = slot_of(page);
  while (entries_[hole].page != page) {
    if (entries_[hole].page == 0) return;
    hole = (hole + 1) & mask;
  }
  // Backward shift: an entry after the hole moves into it unless its home lies in (hole, i].
  for (std::size_t i = (hole + 1) & mask; entries_[i].page != 0; i = (i + 1) & mask) {
    std::size_t home = slot_of(entries_[i].page);
    bool home_between = hole <= i ? (hole < home && home <= i) : (hole < home || home <= i);
    if (home_between) continue;
    entries_[hole] = entries_[i];
    hole = i;
  }
  entries_[hole] = Entry{};
  --count_;
}

void PageLockTable::forget_range(std::uintptr_t start, std::size_t bytes) {
  if (count_ == 0) return;
  std::size_t pages = bytes / os::kPageSize;
  if (pages <= entries_.size()) {
    for (std::size_t i = 0; i < pages; ++i) erase(start + i * os::kPageSize);
    return;
  }
  // A range larger than the table: look at each entry instead (erase may move a later entry
  // back into the slot just looked at, so look at it again).
  for (std::size_t i = 0; i < entries_.size();) {
    std::uintptr_t page = entries_[i].page;
    if (page != 0 && page >= start && page - start < bytes) {
      erase(page);
    } else {
      ++i;
    }
  }
}

void PageLockTable::clear() {
  for (Entry& entry : entries_) entry = Entry{};
  count_ = 0;
}

}  // namespace lockbox::pages
