/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A write just before a large block (or, with -DGUARDED, a guarded secret) changes the canary
 * in front of it, and the free finds it. UNDERFLOW is how far before the object (1 to 16). */
#ifndef UNDERFLOW
#define UNDERFLOW 1
#endif

FAULT_MAIN int main(void) {
#ifdef GUARDED
  unsigned char* secret = lockbox_guarded_alloc(100);
#else
  unsigned char* secret = lockbox_malloc(100001);
#endif
  fault_expect(secret);
  secret[-UNDERFLOW] ^= 0x5a;
  lockbox_free(secret);
  return 0;
}
