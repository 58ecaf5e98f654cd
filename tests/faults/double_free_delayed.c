/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A double free after another free of the same size: the slot waits in the quarantine (small)
 * or its range stays reserved (large), so the second free is still recognised. Built for a
 * key (default), with -DSECRET_SIZE=100000 for a large block, and with -DSECRET_SIZE=20000
 * -DANON_ARENAS for a slot above 8 KiB (quarantined in its shard; anonymous arenas, where
 * such a slot exists, whatever the test setup). */
#ifndef SECRET_SIZE
#define SECRET_SIZE 16
#endif

FAULT_MAIN int main(void) {
#ifdef ANON_ARENAS
  if (lockbox_set_backend(LOCKBOX_BACKEND_ANON) != 0) return 1;
#endif
  void* first = lockbox_malloc(SECRET_SIZE);
  void* second = lockbox_malloc(SECRET_SIZE);
  lockbox_free(first);
  lockbox_free(second);
  fault_expect(first);
  lockbox_free(first);
  return 0;
}
