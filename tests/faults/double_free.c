#include <lockbox/lockbox.h>

#include "fault.h"

FAULT_MAIN int main(void) {
  char* secret = lockbox_malloc(32);
  lockbox_free(secret);
  fault_expect(secret);
  lockbox_free(secret);
  return 0;
}
