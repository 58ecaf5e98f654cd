/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <stdlib.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  char* ordinary = calloc(1, 32);
  lockbox_free(lockbox_malloc(16)); /* lockbox is up and running */
  fault_expect(ordinary);
  lockbox_free(ordinary);
  return 0;
}
