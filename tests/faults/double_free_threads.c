/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <pthread.h>

#include "fault.h"

/* Two threads free one pointer at the same moment: exactly one wins, the other reports the
 * double free. Built for a key (default) and, with -DSECRET_SIZE=100000, a large block. */
#ifndef SECRET_SIZE
#define SECRET_SIZE 32
#endif

static pthread_barrier_t g_barrier;
static void* g_secret;

static void* free_it(void* unused) {
  (void)unused;
  pthread_barrier_wait(&g_barrier);
  lockbox_free(g_secret);
  return NULL;
}

FAULT_MAIN int main(void) {
  pthread_t threads[2];
  int i;
  g_secret = lockbox_malloc(SECRET_SIZE);
  /* Both threads have their caches before the race starts. */
  lockbox_free(lockbox_malloc(SECRET_SIZE));
  pthread_barrier_init(&g_barrier, NULL, 2);
  fault_expect(g_secret);
  for (i = 0; i < 2; ++i) pthread_create(&threads[i], NULL, free_it, NULL);
  for (i = 0; i < 2; ++i) pthread_join(threads[i], NULL);
  return 0;
}
