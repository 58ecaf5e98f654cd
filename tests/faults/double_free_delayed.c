/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A double free after another free of the same size: the slot waits in the quarantine (small)
 * or its range stays reserved (large), so the second free is still recognised. Built for a
 * key (default), and with -DSECRET_SIZE=100000 for a large block. */
#ifndef SECRET_SIZE
#define SECRET_SIZE 16
#endif

FAULT_MAIN int main(void) {
  void* first = lockbox_malloc(SECRET_SIZE);
  void* second = lockbox_malloc(SECRET_SIZE);
  lockbox_free(first);
  lockbox_free(second);
  fault_expect(first);
  lockbox_free(first);
  return 0;
}
