// SPDX-License-Identifier: ISC
// Memory checkers told about lockbox's blocks. Under AddressSanitizer free slots and canary
// bytes are poisoned, so an application's use after free or overflow is reported by ASan at the
// faulting line, not later by lockbox. Under valgrind memcheck (built with valgrind/memcheck.h)
// the same bytes are no-access and every block is announced as allocated and freed, so memcheck
// names a read after free, an overflow into the canary and a leaked block as it does for malloc.
// Outside valgrind the requests are skipped by one flag tested (a request itself would cost a
// dozen instructions on every allocation and free: 11% of the steady-state benchmark's
// instructions); without either checker every function here compiles to nothing.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define LOCKBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOCKBOX_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define LOCKBOX_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define LOCKBOX_TSAN 1
#endif
#endif
#ifndef LOCKBOX_TSAN
#define LOCKBOX_TSAN 0
#endif

#ifdef LOCKBOX_ASAN
#include <sanitizer/asan_interface.h>
#endif
#ifdef LOCKBOX_HAVE_MEMCHECK
#include <valgrind/memcheck.h>
#endif

namespace lockbox::sanitizers {

#ifdef LOCKBOX_HAVE_MEMCHECK
// Set once, when the heap starts (before any block exists), if the process runs under valgrind.
inline bool g_memcheck = false;
inline void detect_memcheck() { g_memcheck = RUNNING_ON_VALGRIND != 0; }
#else
inline void detect_memcheck() {}
#endif

// The application must not touch these bytes (free slots, canaries, slack).
inline void poison(const void* address, std::size_t bytes) {
#ifdef LOCKBOX_ASAN
  ASAN_POISON_MEMORY_REGION(address, bytes);
#endif
#ifdef LOCKBOX_HAVE_MEMCHECK
  if (g_memcheck) VALGRIND_MAKE_MEM_NOACCESS(address, bytes);
#endif
  (void)address;
  (void)bytes;
}

// lockbox itself reads or writes these bytes (checks, zeroing). Their contents are known: zero,
// or canary lockbox wrote.
inline void unpoison(const void* address, std::size_t bytes) {
#ifdef LOCKBOX_ASAN
  ASAN_UNPOISON_MEMORY_REGION(address, bytes);
#endif
#ifdef LOCKBOX_HAVE_MEMCHECK
  if (g_memcheck) VALGRIND_MAKE_MEM_DEFINED(address, bytes);
#endif
  (void)address;
  (void)bytes;
}

// The application now owns [pointer, pointer + size), which reads zero (lockbox's promise).
inline void allocated(const void* pointer, std::size_t size) {
#ifdef LOCKBOX_HAVE_MEMCHECK
  if (g_memcheck) VALGRIND_MALLOCLIKE_BLOCK(pointer, size, 0, 1);
#endif
  (void)pointer;
  (void)size;
}

// The application gave the block at pointer back: memcheck marks it no-access and remembers
// where it was freed, for the report of a later use.
inline void released(const void* pointer) {
#ifdef LOCKBOX_HAVE_MEMCHECK
  if (g_memcheck) VALGRIND_FREELIKE_BLOCK(pointer, 0);
#endif
  (void)pointer;
}

// The range goes back to the kernel (unmapped, or PROT_NONE until it is): nothing may stay
// poisoned in ASan's shadow where the kernel may one day map something else, and for memcheck
// the application may not touch it.
inline void returned_to_kernel(const void* address, std::size_t bytes) {
#ifdef LOCKBOX_ASAN
  ASAN_UNPOISON_MEMORY_REGION(address, bytes);
#endif
#ifdef LOCKBOX_HAVE_MEMCHECK
  if (g_memcheck) VALGRIND_MAKE_MEM_NOACCESS(address, bytes);
#endif
  (void)address;
  (void)bytes;
}

}  // namespace lockbox::sanitizers
