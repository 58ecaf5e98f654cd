/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <stdlib.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  char* ordinary = calloc(1, 64);
  fault_expect(ordinary);
  return (int)lockbox_usable_size(ordinary);
}
