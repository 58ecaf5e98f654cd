/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A freed large block's range stays reserved PROT_NONE: the next block of the same size is
 * mapped elsewhere, and a write through the stale pointer faults at once. */
FAULT_MAIN int main(void) {
  unsigned char* stale = lockbox_malloc(100000);
  unsigned char* next;
  lockbox_free(stale);
  next = lockbox_malloc(100000);
  if (next == stale) return 1;
  fault_catch_segv();
  fault_expect(stale + 65);
  stale[65] = 'a';
  lockbox_free(next);
  return 0;
}
