// SPDX-License-Identifier: ISC
// Threads that do some work and then stay alive, parked outside lockbox with their caches still
// their own, while the test looks at what they left behind.
#pragma once

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

namespace lockbox_test {

// Runs `work` on `count` threads; once every one has finished it (and parked), runs
// `while_parked` on this thread, then lets them exit and joins them. Returns what
// `while_parked` returned.
template <typename Work, typename WhileParked>
auto while_threads_park(int count, Work work, WhileParked while_parked) {
  std::atomic<int> parked{0};
  std::atomic<bool> released{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < count; ++t) {
    threads.emplace_back([&] {
      work();
      parked.fetch_add(1);
      while (!released.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    });
  }
  while (parked.load() < count) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  auto result = while_parked();
  released.store(true);
  for (auto& thread : threads) thread.join();
  return result;
}

}  // namespace lockbox_test
