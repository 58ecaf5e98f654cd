/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* Lockbox memory that is not a box (with -DFREED_BOX: a box already freed) passed as one. */
FAULT_MAIN int main(void) {
#ifdef FREED_BOX
  unsigned char key[32] = {1};
  lockbox_sealed* box = lockbox_seal(key, sizeof key);
  if (box == NULL) return 2;
  lockbox_sealed_free(box);
  fault_expect(box);
  lockbox_sealed_free(box);
#else
  lockbox_sealed* box = (lockbox_sealed*)lockbox_malloc(200);
  if (box == NULL) return 2;
  memset(box, 0x41, 200);
  fault_expect(box);
  const void* volatile view = lockbox_sealed_open(box);
  (void)view;
#endif
  return 0;
}
