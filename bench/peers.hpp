// SPDX-License-Identifier: ISC
// The allocators the benchmark compares, behind one small interface. Each peer is compiled in
// only when its Debian package was found at configure time; the rest are listed as missing.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace bench {

struct Peer {
  const char* name;
  // Prepares the allocator in this process (sized heaps are sized here); false if it refused.
  bool (*start)(std::size_t heap_bytes);
  void* (*allocate)(std::size_t size);
  // Every peer zeroes what it frees (the secure ones do it themselves).
  void (*release)(void* pointer, std::size_t size);
  bool locks_memory;  // does it promise locked memory at all?
  // A shared library that replaces malloc (LD_PRELOAD): the peer then runs in a process of its
  // own, started with it, and allocate/release are the C library's names. nullptr otherwise.
  const char* preload = nullptr;
};

const std::vector<Peer>& available_peers();
const std::vector<std::string>& missing_peers();

}  // namespace bench
