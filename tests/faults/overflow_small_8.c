/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(24);
  int i;
  fault_expect(secret);
  for (i = 24; i < 32; ++i) secret[i] ^= 0xff; /* eight bytes past the end */
  lockbox_free(secret);
  return 0;
}
