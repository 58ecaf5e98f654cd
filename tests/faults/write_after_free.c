#include <lockbox/lockbox.h>

#include "fault.h"

/* A freed slot is zero; the allocation that hands it out again finds the stray write. */
FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(200);
  unsigned char* again;
  lockbox_free(secret);
  fault_expect(secret);
  secret[5] = 'x';
  again = lockbox_malloc(200);
  lockbox_free(again);
  return 0;
}
