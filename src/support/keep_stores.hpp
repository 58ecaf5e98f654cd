// SPDX-License-Identifier: ISC
// Zeroing the compiler may not remove: stores, then a barrier that hands the pointer to opaque
// code which "reads all memory". This is how explicit_bzero and sodium_memzero are built; inline,
// it keeps a call through the PLT off the free path of every small slot (small/slot.hpp).
#pragma once

#include <cstddef>
#include <cstring>

namespace lockbox {

// Stores to `address` count as observed: the compiler may not drop them as dead.
inline void keep_stores(const void* address) {
  __asm__ __volatile__("" : : "r"(address) : "memory");
}

}  // namespace lockbox
