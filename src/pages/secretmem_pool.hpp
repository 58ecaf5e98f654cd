// SPDX-License-Identifier: ISC
// A pool of memfd_secret files for arenas: each file is sized once (ftruncate) and handed out in
// arena-sized pieces, so a few descriptors serve every allocation (one per allocation ran out
// after ~20 peers in rosenpass #341). The application owns the descriptor table: it may close
// the pool's descriptors and open its own files under their numbers. So each descriptor is
// checked (device and inode) before it is mapped from or closed; one that names another file
// is lost to the pool, never used or closed again (mapping from it would write secrets into the
// application's file).
#pragma once

#include <atomic>
#include <cstddef>

#include "os/os.hpp"
#include "support/futex_lock.hpp"

namespace lockbox::pages {

// Where arenas come from: anonymous memory locked with mlock, or memfd_secret (pages outside
// the kernel's direct map, locked by the kernel); auto = memfd_secret where the kernel offers
// it, else anonymous.
enum class Backend : int { kAnonymous = 0, kSecretmem = 1, kAuto = 2 };

class SecretmemPool {
 public:
  static constexpr std::size_t kFileBytes = std::size_t{64} << 20;  // 64 arenas per descriptor

  // Maps `bytes` of secret memory over [address, address + bytes) (PROT_NONE: pages are made
  // accessible as they are committed). 0 or an errno value: ENOSYS (kernel without it), EPERM
  // (seccomp), EAGAIN or ENOMEM (RLIMIT_MEMLOCK: the whole mapping is charged at once).
  int map(void* address, std::size_t bytes);

  // The backend of arenas created from now on (lockbox_set_backend, LOCKBOX_BACKEND).
  Backend backend() const { return backend_.load(std::memory_order_relaxed); }
  // Do new arenas come from memfd_secret (as create_arena decides)?
  bool serves_arenas() const {
    Backend chosen = backend();
    return chosen == Backend::kSecretmem || (chosen == Backend::kAuto && !unavailable());
  }
  void set_backend(Backend backend) { backend_.store(backend, std::memory_order_relaxed); }
  // Under auto: memfd_secret said ENOSYS or EPERM once; do not ask again.
  bool unavailable() const { return unavailable_.load(std::memory_order_relaxed); }
  void set_unavailable() { unavailable_.store(true, std::memory_order_relaxed); }
  // In a forked child: the descriptors would let the child map the parent's secrets.
  void close_after_fork();

 private:
  // Is open_fds_[index] still the file the pool opened under that number?
  bool still_ours(std::size_t index) const;
  // The file new arenas are mapped from (the last opened), or -1: none yet, or lost.
  int current_fd() const { return open_count_ > 0 ? open_fds_[open_count_ - 1] : -1; }

  FutexLock lock_;
  std::size_t next_offset_ = 0;  // in the current file
  int open_fds_[64] = {};  // -1: lost (the application reused the number)
  os::FileIdentity open_files_[64] = {};
  std::size_t open_count_ = 0;
  std::atomic<Backend> backend_{Backend::kAnonymous};
  std::atomic<bool> unavailable_{false};
};

}  // namespace lockbox::pages
