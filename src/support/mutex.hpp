// SPDX-License-Identifier: ISC
// A sleeping lock, for the sealed boxes' longer critical sections (a decryption, a rekey of
// every box): pthread's mutex without std::mutex's exception. pthread_mutex_lock fails only on
// a corrupted mutex, which is fatal like any other evidence of corruption.
#pragma once

#include <pthread.h>

#include "report/report.hpp"
#include "support/futex_lock.hpp"

namespace lockbox {

class Mutex {
 public:
  void lock() {
    if (::pthread_mutex_lock(&mutex_) != 0) report::fatal_os_failure("pthread_mutex_lock", this);
  }
  void unlock() { ::pthread_mutex_unlock(&mutex_); }

 private:
  pthread_mutex_t mutex_ = PTHREAD_MUTEX_INITIALIZER;
};
using MutexGuard = LockGuard<Mutex>;

}  // namespace lockbox
