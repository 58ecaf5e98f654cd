// SPDX-License-Identifier: ISC
// A test that looks at a block after freeing it (is it zero, still locked, still owned?) takes
// its address first: lockbox.h tells GCC that lockbox_free releases the block, and GCC rejects
// any use of the freed pointer itself, as it rightly should in real code.
#pragma once

namespace lockbox_test {

inline const void* address_kept(const void* pointer) {
  asm volatile("" : "+r"(pointer));  // the compiler can no longer tie the value to the block
  return pointer;
}

}  // namespace lockbox_test
