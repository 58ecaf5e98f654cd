// SPDX-License-Identifier: ISC
// The thread-exit hooks: one pthread key whose destructor runs them (thread_exit.hpp says why).
#include "support/thread_exit.hpp"

#include <pthread.h>

#include <atomic>

namespace lockbox::thread_exit {
namespace {

pthread_key_t g_key;
std::atomic<bool> g_installed{false};
Hook g_first = nullptr;
Hook g_second = nullptr;

void run_hooks(void*) {
  g_first();
  g_second();
}

// At dlclose (and exit): a key whose destructor points into unmapped code must not outlive us.
__attribute__((destructor)) void forget_key() {
  if (g_installed.exchange(false, std::memory_order_acq_rel)) ::pthread_key_delete(g_key);
}

}  // namespace

bool install(Hook first, Hook second) {
  g_first = first;
  g_second = second;
  if (::pthread_key_create(&g_key, &run_hooks) != 0) return false;
  g_installed.store(true, std::memory_order_release);
  return true;
}

void arm() {
  static int armed_marker;
  if (g_installed.load(std::memory_order_acquire)) ::pthread_setspecific(g_key, &armed_marker);
}

}  // namespace lockbox::thread_exit
