// SPDX-License-Identifier: ISC
// What lockbox does when a thread that used it exits (its cache goes back to the shards, its
// message page is unmapped), registered without allocating. A thread_local destructor registers
// itself at the thread's first use through the C library's calloc, which a signal handler's
// call (the thread's first lockbox call may be one) must not make. Instead: one pthread key,
// made when the heap starts (with signals blocked); arming a thread is pthread_setspecific,
// which for the first 32 keys of a process writes into the thread's own block (glibc) and so
// allocates nothing.
#pragma once

namespace lockbox::thread_exit {

using Hook = void (*)();

// Once, at start-up: `first`, then `second`, run when an armed thread exits. False if the
// process has no key left (then threads give nothing back at exit).
bool install(Hook first, Hook second);
// This thread runs the hooks when it exits. Before install() it does nothing: a thread that
// fails before the heap has ever started keeps its message page until the process exits.
void arm();

}  // namespace lockbox::thread_exit
