/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>

#include "fault.h"

/* A box is one lockbox allocation that ends with the ciphertext and its 16-byte tag: change
 * one ciphertext byte (or, with -DTAMPER_TAG, one tag byte) and open it. Built with
 * -DSECRET_SIZE=8000 for a box on a large block. */
#ifndef SECRET_SIZE
#define SECRET_SIZE 32
#endif
#ifndef TAMPER_FROM_END
#define TAMPER_FROM_END (16 + SECRET_SIZE / 2)
#endif

FAULT_MAIN int main(void) {
  static unsigned char key[SECRET_SIZE];
  memset(key, 0x5c, sizeof key);
  lockbox_sealed* box = lockbox_seal(key, sizeof key);
  if (box == NULL) return 2;
  unsigned char* bytes = (unsigned char*)box;
  bytes[lockbox_usable_size(box) - TAMPER_FROM_END] ^= 0x01;
  fault_expect(box);
  const void* volatile view = lockbox_sealed_open(box);
  (void)view;
  return 0;
}
