/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* An object of zero bytes has no memory behind it (hardened_malloc's read_zero_size and
 * write_zero_size): built three times, to read through it, write through it (both fault at
 * once), or, with -DDOUBLE_FREE, to free it twice. */
FAULT_MAIN int main(void) {
  volatile char* nothing = lockbox_malloc(0);
#if defined(DOUBLE_FREE)
  lockbox_free((void*)nothing);
  fault_expect((const void*)nothing);
  lockbox_free((void*)nothing);
#else
  fault_catch_segv();
  fault_expect((const void*)nothing);
#if defined(WRITE)
  *nothing = 'A';
#else
  if (*nothing == 0) return 1;
#endif
#endif
  return 0;
}
