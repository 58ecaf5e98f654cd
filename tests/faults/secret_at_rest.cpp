// SPDX-License-Identifier: ISC
// lockbox::secret<T> outside a view is no-access: a pointer kept from a view faults.
#include <lockbox/lockbox.hpp>

extern "C" {
#include "fault.h"
}

struct Key {
  unsigned char bytes[32];
};

FAULT_MAIN int main() {
  lockbox::secret<Key> key;
  const volatile unsigned char* kept = nullptr;
  {
    auto view = key.read();
    kept = view->bytes;
  }
  fault_catch_segv();
  fault_expect(const_cast<const unsigned char*>(kept));
  return kept[0];
}
