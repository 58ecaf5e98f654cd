#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(32);
  fault_expect(secret);
  secret[32] ^= 0xff; /* one byte past the end, changed for sure */
  lockbox_free(secret);
  return 0;
}
