// A pool of memfd_secret files for arenas: each file is sized once (ftruncate) and handed out in
// arena-sized pieces, so a few descriptors serve every allocation (one per allocation ran out
// after ~20 peers in rosenpass #341).
#pragma once

#include <cstddef>

#include "support/spin_lock.hpp"

namespace lockbox::pages {

class SecretmemPool {
 public:
  static constexpr std::size_t kFileBytes = std::size_t{64} << 20;  // 64 arenas per descriptor

  // Maps `bytes` of secret memory over [address, address + bytes) (PROT_NONE: pages are made
  // accessible as they are committed). 0 or an errno value: ENOSYS (kernel without it), EPERM
  // (seccomp), EAGAIN or ENOMEM (RLIMIT_MEMLOCK: the whole mapping is charged at once).
  int map(void* address, std::size_t bytes);
  std::size_t descriptors() const { return descriptors_; }
  // In a forked child: the descriptors would let the child map the parent's secrets.
  void close_after_fork();

 private:
  SpinLock lock_;
  int current_fd_ = -1;
  std::size_t next_offset_ = 0;
  std::size_t descriptors_ = 0;
  int open_fds_[64] = {};
  std::size_t open_count_ = 0;
};

}  // namespace lockbox::pages
