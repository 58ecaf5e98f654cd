/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A guarded secret at rest (no access) faults on any read. */
FAULT_MAIN int main(void) {
  volatile unsigned char* secret = lockbox_guarded_alloc(64);
  secret[0] = 1;
  if (lockbox_protect((void*)secret, LOCKBOX_NOACCESS) != 0) return 2;
  fault_catch_segv();
  fault_expect((const void*)secret);
  return secret[0];
}
