// SPDX-License-Identifier: ISC
// A forked child that really uses lockbox: it reallocates and frees hundreds of pointers of
// every kind it inherited (small, large, guarded), and allocates, writes and frees hundreds of
// its own, under whichever backend the suite runs (the secretmem setup: memfd_secret arenas,
// which the child does not have at all). Nothing may abort, every new block must be lockbox's,
// and what the child inherited reads zero.
#include <lockbox/lockbox.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "support/check.hpp"

namespace {

struct Block {
  unsigned char* pointer;
  std::size_t size;
  unsigned char fill;
};

std::size_t size_for(std::size_t i) {
  switch (i % 4) {
    case 0:
      return 16 + i % 48;           // key-sized
    case 1:
      return 100 + (i * 37) % 8000;  // every small class
    case 2:
      return 9000 + (i * 101) % 60000;  // large
    default:
      return 32 + i % 200;
  }
}

bool reads_zero(const unsigned char* bytes, std::size_t size) {
  for (std::size_t i = 0; i < size; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

enum ChildFailure {
  kInheritedNotWiped = 1 << 0,
  kReallocFailed = 1 << 1,
  kAllocationFailed = 1 << 2,
  kNotOwned = 1 << 3,
  kContentsChanged = 1 << 4,
};

int child(std::vector<Block>& inherited, std::vector<void*>& guarded) {
  int failures = 0;
  // Half of what it inherited is reallocated: the copy reads zero (the parent's bytes are not
  // the child's) and is the child's own block.
  for (std::size_t i = 0; i < inherited.size(); i += 2) {
    Block& block = inherited[i];
    auto* moved = static_cast<unsigned char*>(lockbox_realloc(block.pointer, block.size + 40));
    if (moved == nullptr) {
      failures |= kReallocFailed;
      continue;
    }
    if (!reads_zero(moved, block.size)) failures |= kInheritedNotWiped;
    if (lockbox_owns(moved) != 1) failures |= kNotOwned;
    block = {moved, block.size + 40, 0};
  }
  // Hundreds of its own, of every kind, written and checked.
  std::vector<Block> own;
  for (std::size_t i = 0; i < 400; ++i) {
    std::size_t size = size_for(i * 7 + 3);
    auto* pointer = static_cast<unsigned char*>(i % 40 == 0 ? lockbox_guarded_alloc(size)
                                                            : lockbox_malloc(size));
    if (pointer == nullptr) {
      failures |= kAllocationFailed;
      continue;
    }
    if (lockbox_owns(pointer) != 1) failures |= kNotOwned;
    auto fill = static_cast<unsigned char>(i + 1);
    std::memset(pointer, fill, size);
    own.push_back({pointer, size, fill});
  }
  for (const Block& block : own) {
    for (std::size_t i = 0; i < block.size; ++i) {
      if (block.pointer[i] != block.fill) {
        failures |= kContentsChanged;
        break;
      }
    }
    lockbox_free(block.pointer);
  }
  for (Block& block : inherited) lockbox_free(block.pointer);
  for (void* secret : guarded) lockbox_free(secret);
  return failures;
}

}  // namespace

int main() {
  std::vector<Block> inherited;
  for (std::size_t i = 0; i < 300; ++i) {
    std::size_t size = size_for(i);
    auto* pointer = static_cast<unsigned char*>(lockbox_malloc(size));
    CHECK(pointer != nullptr);
    if (pointer == nullptr) continue;
    std::memset(pointer, 0xA5, size);
    inherited.push_back({pointer, size, 0xA5});
  }
  std::vector<void*> guarded;
  for (int i = 0; i < 10; ++i) guarded.push_back(lockbox_guarded_alloc(5000));
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  std::printf("the parent holds %zu blocks (%zu bytes of memfd_secret arenas)\n",
              stats.live_allocations, stats.secretmem_bytes);
  std::fflush(stdout);

  for (int round = 0; round < 2; ++round) {
    pid_t pid = fork();
    if (pid == 0) std::exit(child(inherited, guarded));
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK_MESSAGE(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                  "child status 0x%x (exit code = bitmask of ChildFailure; a signal means it "
                  "crashed or aborted)",
                  status);
  }
  // The parent's blocks are untouched by its children.
  for (const Block& block : inherited) {
    CHECK(block.pointer[0] == 0xA5 && block.pointer[block.size - 1] == 0xA5);
    lockbox_free(block.pointer);
  }
  for (void* secret : guarded) lockbox_free(secret);
  return lockbox_test::finish();
}
