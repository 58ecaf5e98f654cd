/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A guarded secret ends exactly at its trailing guard page, whatever its size: even an
 * off-by-one NUL (which a canary, zero in its first byte, could not show) faults at once.
 * libsodium's test/default/sodium_utils2 makes this write. */
FAULT_MAIN int main(void) {
  size_t size = 100;
  unsigned char* secret = lockbox_guarded_alloc(size);
  if (secret == NULL) return 1;
  fault_catch_segv();
  fault_expect(secret + size);
  secret[size] = 0;
  lockbox_free(secret);
  return 0;
}
