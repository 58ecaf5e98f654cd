// SPDX-License-Identifier: ISC
// Fuzz target: an op interpreter over the C allocation API with a model of every live block
// (size, alignment, fill byte). After every op: the touched block's contents are intact, no two
// live blocks overlap, usable_size is the requested size, alignment holds, and the heap's
// live_allocations / in_use_bytes match the model; a freed block reads zero (through the
// test-only hook, never by reading freed memory from here).
#include <fuzzer/FuzzedDataProvider.h>
#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <vector>

#include "heap/heap.hpp"

namespace {

struct Block {
  unsigned char* pointer;
  std::size_t size;
  std::size_t alignment;
  unsigned char fill;
};

[[noreturn]] void fail(const char* what, const void* where) {
  std::fprintf(stderr, "allocator_fuzzer: %s at %p\n", what, where);
  std::abort();
}

// memcmp against a page of the expected byte: byte loops here would dominate the run time
// under the engine's comparison tracing.
bool all_bytes_are(const unsigned char* bytes, std::size_t size, unsigned char value) {
  static unsigned char expected[4096];
  static int filled_with = -1;
  if (filled_with != value) {
    std::memset(expected, value, sizeof expected);
    filled_with = value;
  }
  for (std::size_t done = 0; done < size; done += sizeof expected) {
    std::size_t chunk = size - done < sizeof expected ? size - done : sizeof expected;
    if (std::memcmp(bytes + done, expected, chunk) != 0) return false;
  }
  return true;
}

class Model {
 public:
  Model() { lockbox_get_stats(&baseline_, sizeof baseline_); }

  // A NULL is a spent RLIMIT_MEMLOCK budget (under a small limit, as in a container): a normal
  // outcome when it says ENOMEM, and nothing is added.
  void add(unsigned char* pointer, std::size_t size, std::size_t alignment, unsigned char fill) {
    if (pointer == nullptr) {
      if (errno != ENOMEM) fail("allocation failed without ENOMEM", nullptr);
      return;
    }
    if (reinterpret_cast<std::uintptr_t>(pointer) % alignment != 0) fail("misaligned", pointer);
    if (lockbox_usable_size(pointer) != size) fail("usable_size differs", pointer);
    // Zero-size blocks still occupy a unique address.
    std::uintptr_t start = reinterpret_cast<std::uintptr_t>(pointer);
    std::uintptr_t end = start + (size == 0 ? 1 : size);
    auto next = extents_.lower_bound(start);
    if (next != extents_.end() && next->first < end) fail("blocks overlap", pointer);
    if (next != extents_.begin() && std::prev(next)->second > start)
      fail("blocks overlap", pointer);
    extents_[start] = end;
    std::memset(pointer, fill, size);
    blocks_.push_back({pointer, size, alignment, fill});
    in_use_ += size;
  }

  Block remove(std::size_t index) {
    Block block = blocks_[index];
    blocks_[index] = blocks_.back();
    blocks_.pop_back();
    extents_.erase(reinterpret_cast<std::uintptr_t>(block.pointer));
    in_use_ -= block.size;
    return block;
  }

  static void check_contents(const Block& block) {
    if (!all_bytes_are(block.pointer, block.size, block.fill))
      fail("contents changed", block.pointer);
  }

  void check_stats() const {
    lockbox_stats now;
    lockbox_get_stats(&now, sizeof now);
    if (now.live_allocations != baseline_.live_allocations + blocks_.size()) {
      fail("live_allocations differs from the model", nullptr);
    }
    if (now.in_use_bytes != baseline_.in_use_bytes + in_use_) {
      fail("in_use_bytes differs from the model", nullptr);
    }
  }

  std::vector<Block>& blocks() { return blocks_; }

 private:
  lockbox_stats baseline_;
  std::vector<Block> blocks_;
  std::map<std::uintptr_t, std::uintptr_t> extents_;
  std::size_t in_use_ = 0;
};

std::size_t pick_size(FuzzedDataProvider& data) {
  switch (data.ConsumeIntegralInRange<int>(0, 3)) {
    case 0:
      return data.ConsumeIntegralInRange<std::size_t>(0, 64);
    case 1:
      return data.ConsumeIntegralInRange<std::size_t>(0, 8200);  // every size class
    case 2:
      return data.ConsumeIntegralInRange<std::size_t>(8000, 70000);  // large blocks
    default:
      return data.ConsumeIntegralInRange<std::size_t>(0, 300000);
  }
}

void free_and_check(const Block& block) {
  Model::check_contents(block);
  lockbox_free(block.pointer);
  if (!lockbox::heap::Heap::instance().freed_range_reads_zero(block.pointer, block.size)) {
    fail("freed memory is not zero", block.pointer);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t length) {
  FuzzedDataProvider data(bytes, length);
  Model model;
  for (int op = 0; op < 1000 && data.remaining_bytes() > 0; ++op) {
    auto& blocks = model.blocks();
    std::size_t victim =
        blocks.empty() ? 0 : data.ConsumeIntegralInRange<std::size_t>(0, blocks.size() - 1);
    auto fill = data.ConsumeIntegral<unsigned char>();
    switch (data.ConsumeIntegralInRange<int>(0, 8)) {
      case 0: {
        std::size_t size = pick_size(data);
        model.add(static_cast<unsigned char*>(lockbox_malloc(size)), size, 16, fill);
        break;
      }
      case 1: {
        std::size_t count = data.ConsumeIntegralInRange<std::size_t>(0, 300);
        std::size_t each = data.ConsumeIntegralInRange<std::size_t>(0, 300);
        auto* pointer = static_cast<unsigned char*>(lockbox_calloc(count, each));
        if (pointer != nullptr && !all_bytes_are(pointer, count * each, 0)) {
          fail("calloc memory is not zero", pointer);
        }
        model.add(pointer, count * each, 16, fill);
        break;
      }
      case 2: {
        std::size_t size = pick_size(data);
        if (blocks.empty()) {
          model.add(static_cast<unsigned char*>(lockbox_realloc(nullptr, size)), size, 16, fill);
          break;
        }
        Block old = model.remove(victim);
        Model::check_contents(old);
        auto* moved = static_cast<unsigned char*>(lockbox_realloc(old.pointer, size));
        if (moved == nullptr) {
          // Out of budget: the old block must be as it was, and stays in the model.
          if (errno != ENOMEM) fail("realloc failed without ENOMEM", old.pointer);
          if (lockbox_owns(old.pointer) != 1) fail("a failed realloc lost its block", old.pointer);
          Model::check_contents(old);
          model.add(old.pointer, old.size, old.alignment, old.fill);
          break;
        }
        if (!all_bytes_are(moved, old.size < size ? old.size : size, old.fill)) {
          fail("realloc lost contents", moved);
        }
        if (moved != old.pointer &&
            !lockbox::heap::Heap::instance().freed_range_reads_zero(old.pointer, old.size)) {
          fail("the old block of realloc is not zero", old.pointer);
        }
        model.add(moved, size, 16, fill);
        break;
      }
      case 3: {
        std::size_t alignment = std::size_t{1} << data.ConsumeIntegralInRange<int>(0, 16);
        std::size_t size = pick_size(data);
        model.add(static_cast<unsigned char*>(lockbox_aligned_alloc(alignment, size)), size,
                  alignment, fill);
        break;
      }
      case 4:
        if (!blocks.empty()) free_and_check(model.remove(victim));
        break;
      case 5:
        if (!blocks.empty()) {
          Model::check_contents(blocks[victim]);
          blocks[victim].fill = fill;
          std::memset(blocks[victim].pointer, fill, blocks[victim].size);
        }
        break;
      case 6:
        if (!blocks.empty()) Model::check_contents(blocks[victim]);
        break;
      case 7:
        if (!blocks.empty()) {
          if (lockbox_usable_size(blocks[victim].pointer) != blocks[victim].size) {
            fail("usable_size differs", blocks[victim].pointer);
          }
          if (lockbox_owns(blocks[victim].pointer) != 1)
            fail("owns says no", blocks[victim].pointer);
        }
        break;
      default:
        for (const Block& block : blocks) Model::check_contents(block);
        break;
    }
    model.check_stats();
  }
  while (!model.blocks().empty()) free_and_check(model.remove(model.blocks().size() - 1));
  model.check_stats();
  return 0;
}
