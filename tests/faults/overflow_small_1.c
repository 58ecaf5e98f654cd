/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* Built twice: a key-sized slot (the fast path) and, with -DSECRET_SIZE=200, a larger one (the
 * general path). */
#ifndef SECRET_SIZE
#define SECRET_SIZE 32
#endif

FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(SECRET_SIZE);
  fault_expect(secret);
  secret[SECRET_SIZE] ^= 0xff; /* one byte past the end, changed for sure */
  lockbox_free(secret);
  return 0;
}
