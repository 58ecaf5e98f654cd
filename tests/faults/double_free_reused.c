/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* free(p); q = malloc(same size); free(p): q is never p, so the second free of p still meets a
 * freed slot (or a reserved range) and is reported, instead of freeing q behind its owner's
 * back. Built for a key (default) and, with -DSECRET_SIZE=100000, a large block. */
#ifndef SECRET_SIZE
#define SECRET_SIZE 32
#endif

FAULT_MAIN int main(void) {
  void* stale = lockbox_malloc(SECRET_SIZE);
  void* next;
  lockbox_free(stale);
  next = lockbox_malloc(SECRET_SIZE);
  if (next == stale) return 1;
  fault_expect(stale);
  lockbox_free(stale);
  lockbox_free(next);
  return 0;
}
