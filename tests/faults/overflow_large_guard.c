/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A large block ends against its trailing guard page: a linear overflow faults at once. */
FAULT_MAIN int main(void) {
  size_t size = 64 * 1024;
  unsigned char* secret = lockbox_malloc(size);
  size_t i;
  fault_catch_segv();
  fault_expect(secret + size);
  for (i = 0; i < size + 4096; ++i) secret[i] = 'A';
  lockbox_free(secret);
  return 0;
}
