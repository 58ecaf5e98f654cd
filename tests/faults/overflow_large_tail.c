#include <lockbox/lockbox.h>

#include "fault.h"

/* A large block whose size is not a multiple of 16 has a few canary bytes before the guard. */
FAULT_MAIN int main(void) {
  size_t size = 100001;
  unsigned char* secret = lockbox_malloc(size);
  secret[size] ^= 0xff;
  fault_expect(secret);
  lockbox_free(secret);
  return 0;
}
