/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A view closed twice (the second close is like a double free); with -DSTALE_VIEW, a view of
 * one box closed on another. */
FAULT_MAIN int main(void) {
  unsigned char key[32] = {1};
  lockbox_sealed* box = lockbox_seal(key, sizeof key);
  lockbox_sealed* other = lockbox_seal(key, sizeof key);
  if (box == NULL || other == NULL) return 2;
  const void* view = lockbox_sealed_open(box);
  if (view == NULL) return 2;
#ifdef STALE_VIEW
  fault_expect(view);
  lockbox_sealed_close(other, view);
#else
  lockbox_sealed_close(box, view);
  fault_expect(view);
  lockbox_sealed_close(box, view);
#endif
  return 0;
}
