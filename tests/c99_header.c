/* SPDX-License-Identifier: ISC */
/* The public header is C99-clean: this file builds with -std=c99 -pedantic-errors. */
#include <lockbox/lockbox.h>
#include <stdio.h>
#include <string.h>

int main(void) {
  lockbox_stats stats;
  char* secret = lockbox_strdup("from C");
  if (secret == NULL || strcmp(secret, "from C") != 0) return 1;
  lockbox_get_stats(&stats, sizeof stats);
  if (stats.live_allocations < 1 || lockbox_owns(secret) != 1) return 1;
  lockbox_free(secret);
  printf("1 passed, 0 failed\n");
  return 0;
}
