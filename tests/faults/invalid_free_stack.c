/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  char on_stack[32] = {0};
  lockbox_free(lockbox_malloc(16));
  fault_expect(on_stack);
  lockbox_free(on_stack);
  return 0;
}
