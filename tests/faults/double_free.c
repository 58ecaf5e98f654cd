/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* Built twice: a key-sized slot (the fast path) and, with -DSECRET_SIZE=200, a larger one (the
 * general path). */
#ifndef SECRET_SIZE
#define SECRET_SIZE 32
#endif

FAULT_MAIN int main(void) {
  char* secret = lockbox_malloc(SECRET_SIZE);
  lockbox_free(secret);
  fault_expect(secret);
  lockbox_free(secret);
  return 0;
}
