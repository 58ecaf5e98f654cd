/* SPDX-License-Identifier: ISC */
/* The quick-start demo: keeps a batch of keys in lockbox, shows what the kernel says about the
 * memory (VmLck), and prints lockbox's stats. Plain C99 against the public header. */
#include <lockbox/lockbox.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { KEY_COUNT = 10000, KEY_BYTES = 32 };

static long vmlck_kib(void) {
  FILE* status = fopen("/proc/self/status", "r");
  char line[256];
  long kib = -1;
  if (status == NULL) return -1;
  while (fgets(line, sizeof line, status) != NULL) {
    if (strncmp(line, "VmLck:", 6) == 0) kib = strtol(line + 6, NULL, 10);
  }
  fclose(status);
  return kib;
}

static void print_stats(const char* when) {
  lockbox_stats stats;
  lockbox_get_stats(&stats, sizeof stats);
  printf("%s\n", when);
  printf("  live allocations   %zu (%zu bytes requested)\n", stats.live_allocations,
         stats.in_use_bytes);
  printf("  locked             %zu KiB (kernel VmLck: %ld KiB), peak %zu KiB\n",
         stats.locked_bytes / 1024, vmlck_kib(), stats.peak_locked_bytes / 1024);
  printf("  unlocked           %zu KiB\n", stats.unlocked_bytes / 1024);
  printf("  reserved           %zu KiB of address space, guard pages included\n",
         stats.reserved_bytes / 1024);
  if (stats.memlock_limit == (size_t)-1) {
    printf("  RLIMIT_MEMLOCK     unlimited (or CAP_IPC_LOCK)\n");
  } else {
    printf("  RLIMIT_MEMLOCK     %zu KiB\n", stats.memlock_limit / 1024);
  }
}

int main(void) {
  unsigned char* keys[KEY_COUNT];
  char* passphrase;
  size_t i;

  printf("lockbox demo: %d keys of %d bytes in locked, guarded, undumpable memory\n\n", KEY_COUNT,
         KEY_BYTES);
  passphrase = lockbox_strdup("correct horse battery staple");
  if (passphrase == NULL) {
    fprintf(stderr, "demo: %s\n", lockbox_last_error());
    return 1;
  }
  for (i = 0; i < KEY_COUNT; ++i) {
    keys[i] = lockbox_malloc(KEY_BYTES);
    if (keys[i] == NULL) {
      fprintf(stderr, "demo: key %zu: %s\n", i, lockbox_last_error());
      return 1;
    }
    memset(keys[i], (int)(i & 0xff), KEY_BYTES);
  }
  print_stats("after storing the passphrase and the keys:");

  for (i = 0; i < KEY_COUNT; ++i) {
    if (keys[i][0] != (unsigned char)(i & 0xff)) {
      fprintf(stderr, "demo: key %zu changed\n", i);
      return 1;
    }
    lockbox_free(keys[i]); /* zeroed before the slot is reused */
  }
  lockbox_free(passphrase);
  print_stats("\nafter freeing them all (a few empty pages stay locked for reuse):");

  {
    /* volatile: the compiler would reject the call at build time otherwise (alloc_size). */
    volatile size_t huge_count = (size_t)-1 / 2;
    void* too_big = lockbox_calloc(huge_count, 4);
    printf("\nbad input gets an answer, not a crash: calloc overflow -> %s (%s)\n",
           too_big == NULL ? "NULL" : "a pointer?!", lockbox_last_error());
  }
  return 0;
}
