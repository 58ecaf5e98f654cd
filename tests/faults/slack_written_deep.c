/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A stray write deep in a slot's slack, more than 16 bytes past the canary window: the free
 * checks only the 16 bytes after the window (slack_written checks those), so this one is found
 * by the scan when the slot is handed out again. 900 bytes live in a 1,024-byte slot: the window
 * is bytes 900 to 915, the slack the free checks 916 to 931, and byte 1,000 lies beyond. */
FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(900);
  int i;
  fault_expect(secret);
  secret[1000] = 'z';
  lockbox_free(secret);
  for (i = 0; i < 100000; ++i) lockbox_free(lockbox_malloc(900));
  return 0;
}
