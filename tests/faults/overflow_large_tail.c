/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A large block whose size is not a multiple of 16 has a few canary bytes before the guard. */
FAULT_MAIN int main(void) {
  size_t size = 100001;
  unsigned char* secret = lockbox_malloc(size);
  fault_expect(secret);
  secret[size] ^= 0xff;
  lockbox_free(secret);
  return 0;
}
