/* SPDX-License-Identifier: ISC */
/* One memory error of the application's, for valgrind memcheck to name: lockbox describes its
 * blocks to memcheck as malloc does. Usage: memcheck_faults MODE SIZE, MODE one of
 * read-after-free, canary-overflow, leak, clean (no error at all). */
#include <lockbox/lockbox.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The bugs are on purpose: lockbox.h tells GCC what lockbox_free releases. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#endif

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: memcheck_faults read-after-free|canary-overflow|leak|clean SIZE\n");
    return 2;
  }
  const char* mode = argv[1];
  size_t size = (size_t)strtoul(argv[2], NULL, 10);
  volatile unsigned char* secret = lockbox_malloc(size);
  if (secret == NULL) return 3;
  memset((void*)secret, 0x5a, size);
  if (strcmp(mode, "read-after-free") == 0) {
    lockbox_free((void*)secret);
    return secret[size / 2] == 0x5a; /* memcheck: inside a block of size SIZE free'd */
  }
  if (strcmp(mode, "canary-overflow") == 0) {
    unsigned char beyond = secret[size]; /* the first canary byte */
    lockbox_free((void*)secret);
    return beyond == 0x5a;
  }
  if (strcmp(mode, "leak") == 0) {
    secret = NULL; /* the only pointer to the block is gone */
    return 0;
  }
  if (strcmp(mode, "clean") == 0) {
    lockbox_free((void*)secret);
    return 0;
  }
  return 2;
}
