#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  unsigned char* secret = lockbox_malloc(32);
  secret[32] ^= 0xff; /* one byte past the end, changed for sure */
  fault_expect(secret);
  lockbox_free(secret);
  return 0;
}
