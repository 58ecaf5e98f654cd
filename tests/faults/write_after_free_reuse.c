/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* The bug as it happens: free, allocate the same size again (which is never the same slot),
 * write through the stale pointer, and go on; the write is found when the slot is finally
 * handed out. Built for 128 bytes (general path), with -DSECRET_SIZE=32 for a key, and with
 * -DSECRET_SIZE=20000 -DANON_ARENAS for a slot above 8 KiB (quarantined in its shard;
 * anonymous arenas, where such a slot exists, whatever the test setup). */
#ifndef SECRET_SIZE
#define SECRET_SIZE 128
#endif

FAULT_MAIN int main(void) {
  unsigned char* stale;
  unsigned char* next;
  int i;
#ifdef ANON_ARENAS
  if (lockbox_set_backend(LOCKBOX_BACKEND_ANON) != 0) return 1;
#endif
  stale = lockbox_malloc(SECRET_SIZE);
  lockbox_free(stale);
  next = lockbox_malloc(SECRET_SIZE);
  if (next == stale) return 1; /* the quarantine failed: no fault, and the runner says so */
  fault_expect(stale);
  stale[SECRET_SIZE / 2 + 1] = 'a';
  for (i = 0; i < 100000; ++i) lockbox_free(lockbox_malloc(SECRET_SIZE));
  lockbox_free(next);
  return 0;
}
