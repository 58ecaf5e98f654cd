/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  char* secret = lockbox_malloc(64);
  fault_expect(secret + 16);
  lockbox_free(secret + 16);
  return 0;
}
