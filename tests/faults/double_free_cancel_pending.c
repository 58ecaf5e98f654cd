/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <pthread.h>

#include "fault.h"

/* A thread that another has asked to cancel frees a secret twice. lockbox acts on no
 * cancellation request: the report is written and the process aborts, where a write(2) that
 * honoured the request would end the thread silently and the program would go on. */
static void* free_twice(void* secret) {
  fault_expect(secret); /* printf is a cancellation point: before the request */
  lockbox_free(secret);
  pthread_cancel(pthread_self()); /* pending: deferred cancellation acts at the next point */
  lockbox_free(secret);
  return NULL;
}

FAULT_MAIN int main(void) {
  pthread_t thread;
  void* secret = lockbox_malloc(32);
  pthread_create(&thread, NULL, free_twice, secret);
  pthread_join(thread, NULL);
  return 0;
}
