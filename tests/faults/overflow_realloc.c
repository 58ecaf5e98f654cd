/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* realloc checks the canary of the block it moves, like free. */
FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(100);
  void* moved;
  fault_expect(secret);
  secret[100] ^= 0xff;
  moved = lockbox_realloc(secret, 1000);
  lockbox_free(moved);
  return 0;
}
