/* SPDX-License-Identifier: ISC */
/* lockbox as libgcrypt's secure allocator.
 *
 *   #include <gcrypt.h>
 *   #include <lockbox/gcrypt.h>
 *
 *   lockbox_gcrypt_install();          before gcry_check_version(), once per process
 *   gcry_check_version(GCRYPT_VERSION);
 *   gcry_control(GCRYCTL_INITIALIZATION_FINISHED, 0);
 *
 * From then on every secure allocation of libgcrypt (secret MPIs and keys, cipher handles opened
 * with GCRY_CIPHER_SECURE, digests with GCRY_MD_FLAG_SECURE, gcry_malloc_secure) comes from
 * lockbox: locked within RLIMIT_MEMLOCK as lockbox's policy says, guarded, kept out of core dumps
 * and forked children, zeroed on free. libgcrypt's own 32 KiB secure pool is never created, so
 * it neither locks memory behind lockbox's budget nor warns "using insecure memory". Ordinary
 * allocations stay with libgcrypt (the C library's malloc).
 *
 * Not in FIPS mode: libgcrypt leaves FIPS mode when an application installs its own allocator.
 * Link with pkg-config --libs lockbox libgcrypt. */
#ifndef LOCKBOX_GCRYPT_H
#define LOCKBOX_GCRYPT_H

#include <gcrypt.h>
#include <lockbox/lockbox.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

/* libgcrypt frees and reallocates both kinds of memory through one handler each: a block goes
 * back to whoever allocated it (lockbox_owns(NULL) is 0, and realloc and free take NULL). */
static inline void* lockbox_gcrypt_realloc_(void* block, size_t size) {
  if (lockbox_owns(block)) return lockbox_realloc(block, size);
  return realloc(block, size);
}

static inline void lockbox_gcrypt_free_(void* block) {
  if (lockbox_owns(block)) {
    lockbox_free(block);
  } else {
    free(block);
  }
}

static inline void* lockbox_gcrypt_malloc_secure_(size_t size) { return lockbox_malloc(size); }

static inline int lockbox_gcrypt_is_secure_(const void* block) {
  return lockbox_owns(block);
}

/* Makes lockbox libgcrypt's secure allocator. Call it before gcry_check_version(). */
static inline void lockbox_gcrypt_install(void) {
  /* NULL: ordinary allocations keep libgcrypt's default (malloc). */
  gcry_set_allocation_handler(NULL, lockbox_gcrypt_malloc_secure_, lockbox_gcrypt_is_secure_,
                              lockbox_gcrypt_realloc_, lockbox_gcrypt_free_);
}

#ifdef __cplusplus
}
#endif

#endif /* LOCKBOX_GCRYPT_H */
