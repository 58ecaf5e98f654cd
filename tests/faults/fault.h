/* SPDX-License-Identifier: ISC */
/* Shared by the fault programs: each prints the address where it expects lockbox to stop
 * ("expect 0x..."), then commits exactly one memory error. The runner checks the signal and
 * that stderr is exactly one line naming that address. */
#ifndef LOCKBOX_TEST_FAULT_H
#define LOCKBOX_TEST_FAULT_H

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Each program commits its bug on purpose. lockbox.h tells GCC that lockbox_free releases
 * lockbox's blocks, and GCC then refuses the bug at compile time (in real code, rightly). */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
#pragma GCC diagnostic ignored "-Wuse-after-free"
#pragma GCC diagnostic ignored "-Wmismatched-dealloc"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"
#endif

/* Keep the compiler from deleting or moving the bug under test. */
#if defined(__clang__)
#define FAULT_MAIN __attribute__((optnone))
#else
#define FAULT_MAIN __attribute__((optimize("O0")))
#endif

static inline void fault_expect(const void* address) {
  printf("expect %p\n", address);
  fflush(stdout);
}

/* For guard-page faults: report where the SIGSEGV hit, then die of it. */
static inline void fault_report_segv(int sig, siginfo_t* info, void* context) {
  char line[64];
  int length = snprintf(line, sizeof line, "guard page hit at %p\n", info->si_addr);
  (void)context;
  if (length > 0 && write(STDERR_FILENO, line, (size_t)length) < 0) _exit(3);
  signal(sig, SIG_DFL);
}

static inline void fault_catch_segv(void) {
  struct sigaction action;
  memset(&action, 0, sizeof action);
  action.sa_sigaction = fault_report_segv;
  action.sa_flags = SA_SIGINFO | SA_RESETHAND;
  sigaction(SIGSEGV, &action, NULL);
}

#endif
