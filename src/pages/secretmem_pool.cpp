// SPDX-License-Identifier: ISC
// Pieces of a file are never given back: an arena is never unmapped, so its piece lives as long
// as the process.
#include "pages/secretmem_pool.hpp"

#include <cerrno>

#include "os/os.hpp"

namespace lockbox::pages {

bool SecretmemPool::still_ours(std::size_t index) const {
  os::FileIdentity now;
  return open_fds_[index] >= 0 && os::identify_file(open_fds_[index], &now) == 0 &&
         now == open_files_[index];
}

int SecretmemPool::map(void* address, std::size_t bytes) {
  FutexLockGuard guard(lock_);
  if (current_fd() >= 0 && !still_ours(open_count_ - 1)) open_fds_[open_count_ - 1] = -1;
  if (current_fd() < 0 || next_offset_ + bytes > kFileBytes) {
    if (open_count_ == sizeof open_fds_ / sizeof open_fds_[0]) return ENOMEM;
    int fd = -1;
    if (int err = os::memfd_secret_create(&fd)) return err;
    os::FileIdentity identity;
    int err = os::set_file_size(fd, kFileBytes);
    if (err == 0) err = os::identify_file(fd, &identity);
    if (err != 0) {
      os::close_file(fd);
      return err;
    }
    open_fds_[open_count_] = fd;
    open_files_[open_count_] = identity;
    ++open_count_;
    next_offset_ = 0;
  }
  if (int err = os::map_file_over(address, bytes, current_fd(), next_offset_)) return err;
  next_offset_ += bytes;
  return 0;
}

void SecretmemPool::close_after_fork() {
  lock_.reset_after_fork();
  for (std::size_t i = 0; i < open_count_; ++i) {
    if (still_ours(i)) os::close_file(open_fds_[i]);
  }
  open_count_ = 0;
  next_offset_ = 0;
}

}  // namespace lockbox::pages
