/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A freed slot is zero and waits in the quarantine; the allocation that finally hands it out
 * again finds the stray write. Built twice: a larger slot (the general path) and, with
 * -DSECRET_SIZE=32, a key-sized one (the fast path, which reads the whole slot too). */
#ifndef SECRET_SIZE
#define SECRET_SIZE 200
#endif

FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(SECRET_SIZE);
  int i;
  lockbox_free(secret);
  fault_expect(secret);
  secret[5] = 'x';
  /* Churn the class until the slot comes back. */
  for (i = 0; i < 100000; ++i) lockbox_free(lockbox_malloc(SECRET_SIZE));
  return 0;
}
