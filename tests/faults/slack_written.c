/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A stray write that skips the canary and lands in the slot's slack (the zero bytes after the
 * 16-byte canary window) is found when the slot is freed. 130 bytes live in a 160-byte slot:
 * the window is bytes 130 to 145, the slack 146 to 159. */
FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(130);
  fault_expect(secret);
  secret[150] = 'z';
  lockbox_free(secret);
  return 0;
}
