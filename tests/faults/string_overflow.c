/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <stdint.h>

#include "fault.h"

/* Not a crash: a string without its NUL that fills its block must end right after it, at the
 * canary's zero byte, for every small size and large ones with a canary, so libc's strlen or
 * strdup never reads a canary out. Prints the longest overrun found ("overflow by 0 bytes").
 * (A large block whose size is a multiple of 16 has no canary: it ends at its guard page, and
 * reading past it faults, which leaks nothing either; so does a zero-byte object, which has no
 * memory at all: the sizes start at 1.) */
FAULT_MAIN int main(void) {
  static const size_t large[] = {8185, 10001, 100001, 4096 * 3 - 1, 65535};
  size_t worst = 0, size, i;
  fault_expect(NULL);
  for (i = 1; i < 8184 + sizeof large / sizeof large[0]; ++i) {
    char* text;
    size = i <= 8184 ? i : large[i - 8185];
    text = lockbox_malloc(size);
    if (text == NULL) return 2;
    memset(text, 'a', lockbox_usable_size(text));
    if (strlen(text) - size > worst) worst = strlen(text) - size;
    lockbox_free(text);
  }
  printf("overflow by %zu bytes\n", worst);
  return 0;
}
