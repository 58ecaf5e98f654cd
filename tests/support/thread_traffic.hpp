// SPDX-License-Identifier: ISC
// One thread's share of the threads workloads (cost_workload, thread_budget): blocks of 16 B to
// 64 KiB, each written; half are swapped into a shared array, where another thread finds and
// frees them, the rest are kept (at most 4) and freed in random order.
#pragma once

#include <lockbox/lockbox.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lockbox_test {

class ThreadTraffic {
 public:
  // any_size: powers of two from 16 B to 64 KiB, so one block in 13 is a large block (65,536
  // bytes); otherwise every size from 16 B to 65,528 bytes, spread evenly over the doublings,
  // all of them slots.
  ThreadTraffic(std::vector<std::atomic<void*>>& shared, int id, bool any_size)
      : shared_(shared), state_(0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(id + 1)),
        any_size_(any_size) {}

  // `operations` allocations (and about as many frees); returns how many allocations were
  // refused (each skipped).
  std::size_t run(std::size_t operations) {
    std::size_t refused = 0;
    for (std::size_t i = 0; i < operations; ++i) {
      std::size_t size = next_size();
      void* block = lockbox_malloc(size);
      if (block == nullptr) {
        ++refused;
        continue;
      }
      std::memset(block, 1, size < 64 ? size : 64);
      if (next() % 2 == 0) {
        if (void* other = shared_[next() % shared_.size()].exchange(block)) lockbox_free(other);
      } else {
        mine_.push_back(block);
        if (mine_.size() > 4) {
          std::size_t victim = next() % mine_.size();
          lockbox_free(mine_[victim]);
          mine_[victim] = mine_.back();
          mine_.pop_back();
        }
      }
    }
    return refused;
  }
  void free_own() {
    for (void* block : mine_) lockbox_free(block);
    mine_.clear();
  }

 private:
  std::uint64_t next() {
    state_ ^= state_ << 13;
    state_ ^= state_ >> 7;
    state_ ^= state_ << 17;
    return state_;
  }
  std::size_t next_size() {
    if (any_size_) return std::size_t{16} << (next() % 13);
    std::size_t base = std::size_t{16} << (next() % 12);  // 16 B to 32 KiB
    std::size_t size = base + next() % base;
    return size < kBiggestSlotRequest ? size : kBiggestSlotRequest;
  }
  static constexpr std::size_t kBiggestSlotRequest = 65528;

  std::vector<std::atomic<void*>>& shared_;
  std::uint64_t state_;
  bool any_size_;
  std::vector<void*> mine_;
};

}  // namespace lockbox_test
