/* SPDX-License-Identifier: ISC */
/* lockbox: secure secret storage for Linux.
 *
 * Every allocation lives in memory that is locked (mlock, never swapped), excluded from core
 * dumps, wiped in forked children, surrounded by guard pages, canary-checked and zeroed on
 * free. Many small secrets share a page; a page is unlocked only when none remains on it.
 * Thread-safe; no initialisation call is needed. C99-clean. */
#ifndef LOCKBOX_LOCKBOX_H
#define LOCKBOX_LOCKBOX_H

#include <stddef.h>

#include <lockbox/version.h>

#if defined(LOCKBOX_BUILDING) && defined(__GNUC__)
#define LOCKBOX_API __attribute__((visibility("default")))
#else
#define LOCKBOX_API
#endif

#if defined(__GNUC__)
#define LOCKBOX_MALLOC __attribute__((malloc))
#define LOCKBOX_ALLOC_SIZE(n) __attribute__((alloc_size(n)))
#define LOCKBOX_ALLOC_SIZE2(n, m) __attribute__((alloc_size(n, m)))
#define LOCKBOX_ALLOC_ALIGN(n) __attribute__((alloc_align(n)))
/* Ignoring the result is a security bug: a comparison, a protection or a lock that failed. */
#define LOCKBOX_NODISCARD __attribute__((warn_unused_result))
#else
#define LOCKBOX_MALLOC
#define LOCKBOX_ALLOC_SIZE(n)
#define LOCKBOX_ALLOC_SIZE2(n, m)
#define LOCKBOX_ALLOC_ALIGN(n)
#define LOCKBOX_NODISCARD
#endif

/* nonnull warns a caller who passes NULL. lockbox itself is built without it: the compiler
 * may delete a NULL check in a function declared nonnull, and lockbox still answers a NULL
 * with EINVAL at run time. */
#if defined(__GNUC__) && !defined(LOCKBOX_BUILDING)
#define LOCKBOX_NONNULL(...) __attribute__((nonnull(__VA_ARGS__)))
#else
#define LOCKBOX_NONNULL(...)
#endif

/* GCC 11+: -Wmismatched-dealloc and the analyzer know lockbox_free releases these. */
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 11
#define LOCKBOX_FREED_BY_LOCKBOX_FREE __attribute__((malloc(lockbox_free, 1)))
#else
#define LOCKBOX_FREED_BY_LOCKBOX_FREE
#endif

/* No call throws: C++ callers may rely on it. */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define LOCKBOX_NOEXCEPT noexcept
#else
#define LOCKBOX_NOEXCEPT
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Signal handlers. Once lockbox has started (any earlier call in the process), these are
 * async-signal-safe, also in a handler that interrupted lockbox on the same thread:
 *   lockbox_free, lockbox_malloc, lockbox_calloc, lockbox_realloc, lockbox_aligned_alloc,
 *   lockbox_strdup, lockbox_strndup, lockbox_guarded_alloc, lockbox_protect,
 *   lockbox_usable_size, lockbox_owns, lockbox_memeq, lockbox_memzero, lockbox_last_error.
 * So a SIGTERM handler may free (and so wipe) every secret and _exit. When the handler
 * interrupted lockbox, a freed small block is checked and zeroed at once and goes back to the
 * cache when the interrupted call returns; an allocation gets pages of its own (a large block).
 * No other call is async-signal-safe. lockbox_lock, lockbox_unlock, lockbox_unlock_and_zero
 * and lockbox_get_stats, called from a handler that interrupted lockbox, print one fatal line
 * and abort rather than deadlock; the sealed-box calls take sleeping locks and must not be
 * called from handlers at all. Leaving a handler that interrupted lockbox with siglongjmp is
 * not supported. The reason text of a failure is formatted with vsnprintf. */

/* Threads, cancellation and fork. Every call is thread-safe. None is a cancellation point: a
 * thread whose cancellation another requested (deferred, the default) finishes the lockbox call
 * and is cancelled at its own next cancellation point, and a fatal report still aborts. None
 * may be called with asynchronous cancellation enabled. fork() may come from any thread at any
 * moment, also while another thread makes the process's first lockbox call. */

/* ------------------------------------------------------------------------------------------
 * Allocation
 * Every pointer is aligned to at least 16 bytes. On failure: NULL, errno (ENOMEM or EINVAL)
 * and a sentence in lockbox_last_error(). Corruption (double free, a pointer lockbox never
 * returned, a broken canary, a write before the object or into its slack, a write after free)
 * prints one line "lockbox: fatal: <what> in <call> at 0x<addr>" on stderr and aborts.
 * Freed memory is not reused at once: a small slot waits for 16 later frees of its size (8
 * above 256 bytes, 4 above 1 KiB) on the freeing thread, the slot handed out is chosen at
 * random, and a large block's address range stays reserved and inaccessible for a while.
 * ------------------------------------------------------------------------------------------ */

/* Checks the canaries, zeroes the whole block, then frees it (into the quarantine). NULL is a
 * no-op. */
LOCKBOX_API void lockbox_free(void* ptr) LOCKBOX_NOEXCEPT;
/* size 0 gives a unique pointer that must be freed, with no memory behind it: a read or write
 * through it faults (beyond 65,536 live ones, it is an ordinary 16-byte slot). */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE
    LOCKBOX_ALLOC_SIZE(1) void* lockbox_malloc(size_t size) LOCKBOX_NOEXCEPT;
/* Overflow-checked; the memory is zero. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE
    LOCKBOX_ALLOC_SIZE2(1, 2) void* lockbox_calloc(size_t count, size_t size) LOCKBOX_NOEXCEPT;
/* Moves the contents to a new block and zeroes the old one. ptr NULL: lockbox_malloc(size).
 * size 0: a zero-byte object, as lockbox_malloc(0) gives (the old block is freed). On failure
 * ptr is left untouched. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_FREED_BY_LOCKBOX_FREE LOCKBOX_ALLOC_SIZE(2)
    void* lockbox_realloc(void* ptr, size_t size) LOCKBOX_NOEXCEPT;
/* alignment: a power of two (EINVAL otherwise); size need not be a multiple of it. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE LOCKBOX_ALLOC_ALIGN(1)
    LOCKBOX_ALLOC_SIZE(2) void* lockbox_aligned_alloc(size_t alignment,
                                                      size_t size) LOCKBOX_NOEXCEPT;
/* The size requested for ptr (the byte after it is zero, then canary); 0 for NULL. */
LOCKBOX_API size_t lockbox_usable_size(const void* ptr) LOCKBOX_NOEXCEPT;
/* 1 if ptr is a live pointer returned by lockbox, 0 otherwise (never aborts). */
LOCKBOX_API int lockbox_owns(const void* ptr) LOCKBOX_NOEXCEPT;
/* A copy of s (at most n bytes of it, then NUL) in lockbox memory. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE LOCKBOX_NONNULL(1)
    char* lockbox_strdup(const char* s) LOCKBOX_NOEXCEPT;
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE LOCKBOX_NONNULL(1)
    char* lockbox_strndup(const char* s, size_t n) LOCKBOX_NOEXCEPT;

/* ------------------------------------------------------------------------------------------
 * Guarded secrets
 * A secret on its own locked pages between guard pages, which the owner switches between
 * no access, read-only and read-write: keep it LOCKBOX_NOACCESS at rest, open it only while
 * using it. lockbox_free zeroes and frees it whatever its protection; lockbox_realloc moves it to
 * a new guarded secret (read-write). Costs at least one page (plus two guard pages of address
 * space) per secret: for many small keys use lockbox_malloc.
 * ------------------------------------------------------------------------------------------ */

typedef enum lockbox_protection {
  LOCKBOX_NOACCESS = 0,
  LOCKBOX_READONLY = 1,
  LOCKBOX_READWRITE = 2
} lockbox_protection;

/* Starts read-write. NULL + errno (ENOMEM) + lockbox_last_error() on failure. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_MALLOC LOCKBOX_FREED_BY_LOCKBOX_FREE
    LOCKBOX_ALLOC_SIZE(1) void* lockbox_guarded_alloc(size_t size) LOCKBOX_NOEXCEPT;
/* 0, or -1 with errno EINVAL when ptr is not a live guarded secret or protection is unknown. */
LOCKBOX_API LOCKBOX_NODISCARD int lockbox_protect(void* ptr,
                                                  lockbox_protection protection) LOCKBOX_NOEXCEPT;

/* Constant-time comparison: 1 if the len bytes at a and b are equal, else 0. */
LOCKBOX_API LOCKBOX_NODISCARD LOCKBOX_NONNULL(1, 2)
    int lockbox_memeq(const void* a, const void* b, size_t len) LOCKBOX_NOEXCEPT;
/* Zeroing the compiler cannot remove. */
LOCKBOX_API void lockbox_memzero(void* ptr, size_t len) LOCKBOX_NOEXCEPT;

/* ------------------------------------------------------------------------------------------
 * Sealed secrets
 * A box keeps a copy of a secret encrypted (XChaCha20-Poly1305) in lockbox memory, and its
 * plaintext exists only while a view is open: read-only views nest (any number at once), a
 * writable view is exclusive, and the last close wipes the plaintext (a writable view's close
 * re-seals it first, under a new nonce). The key that seals the boxes is never stored whole:
 * it is derived for each use from 16 KiB of random shares on guarded pages of their own
 * (SECURITY.md). A box costs its size plus 128 bytes of lockbox memory; an open box adds its
 * size plus 160. A box whose bytes were changed is fatal on its next open:
 * "lockbox: fatal: sealed box tampered with (authentication failed) in ...".
 * A forked child cannot open its parent's boxes (EACCES; the shares are wiped in the child).
 * None of these calls is async-signal-safe.
 * ------------------------------------------------------------------------------------------ */

typedef struct lockbox_sealed lockbox_sealed;

/* Seals a copy of size bytes at data (size 0 is allowed; data may then be NULL). The caller
 * still owns data: wipe it (lockbox_memzero, lockbox_free) if it was the only plaintext.
 * NULL with errno EINVAL (data NULL, size not 0) or ENOMEM, and lockbox_last_error(). */
LOCKBOX_API LOCKBOX_NODISCARD lockbox_sealed* lockbox_seal(const void* data,
                                                           size_t size) LOCKBOX_NOEXCEPT;
/* A read-only view of the plaintext (lockbox_sealed_size(box) bytes, aligned to 16), valid
 * until the matching lockbox_sealed_close. NULL with errno: EBUSY a writable view is open,
 * EACCES the box belongs to the parent of this forked child, ENOMEM, EINVAL box is NULL. */
LOCKBOX_API LOCKBOX_NODISCARD const void* lockbox_sealed_open(lockbox_sealed* box) LOCKBOX_NOEXCEPT;
/* A writable view; exclusive (EBUSY while any other view is open), otherwise as above. Its
 * close seals what the view then holds. */
LOCKBOX_API LOCKBOX_NODISCARD void* lockbox_sealed_open_rw(lockbox_sealed* box) LOCKBOX_NOEXCEPT;
/* Ends a view; the last one wipes the plaintext. Closing a view that is not open on this box
 * is fatal ("view is not open on this sealed box"), like a double free. */
LOCKBOX_API void lockbox_sealed_close(lockbox_sealed* box, const void* view) LOCKBOX_NOEXCEPT;
/* The plaintext's size; 0 with errno EACCES for a parent's box in a forked child. */
LOCKBOX_API size_t lockbox_sealed_size(const lockbox_sealed* box) LOCKBOX_NOEXCEPT;
/* Wipes and frees the box (and the plaintext of any view still open: such views end here).
 * NULL is a no-op. A pointer that is not a live box is fatal. */
LOCKBOX_API void lockbox_sealed_free(lockbox_sealed* box) LOCKBOX_NOEXCEPT;
/* New random shares, and every box re-sealed under the key they give: call it periodically
 * (from a timer thread, say every few minutes, or after each unlock of a database) to bound
 * how long one set of shares lives. Costs about one decryption and one encryption of every
 * box; views stay valid. 0, or -1 with errno ENOMEM (the old key and boxes stay as they
 * were). */
LOCKBOX_API int lockbox_sealed_rekey(void) LOCKBOX_NOEXCEPT;

/* ------------------------------------------------------------------------------------------
 * Locking memory lockbox did not allocate
 * Locks nest per page: mlock and MADV_DONTDUMP on a page's first lock, munlock and
 * MADV_DODUMP on its last unlock, so two secrets on one page stay locked until both are
 * unlocked. Pages the kernel already has locked (the application's mlock or mlockall) are
 * counted but never unlocked by lockbox. Locks share the RLIMIT_MEMLOCK budget and the policy
 * with allocations. 0 on success, or -1 with errno and lockbox_last_error():
 *   EINVAL  the range wraps the address space; for unlock: a page was never locked with
 *           lockbox_lock (nothing is changed)
 *   ENOMEM  part of the range is not mapped, or (STRICT) the budget is exhausted
 *   EACCES  part of the range is PROT_NONE (nothing is left half-locked)
 * len 0 is a no-op. A forked child inherits none of these locks.
 * ------------------------------------------------------------------------------------------ */

LOCKBOX_API LOCKBOX_NODISCARD int lockbox_lock(const void* addr, size_t len) LOCKBOX_NOEXCEPT;
LOCKBOX_API int lockbox_unlock(const void* addr, size_t len) LOCKBOX_NOEXCEPT;
/* Zeroes [addr, addr+len) while still locked, then unlocks: for a passphrase on the stack. */
LOCKBOX_API LOCKBOX_NODISCARD int lockbox_unlock_and_zero(void* addr, size_t len) LOCKBOX_NOEXCEPT;
/* Tells lockbox that the application has called (1) or undone (0) mlockall(): while set,
 * lockbox never munlocks anything, so it cannot undo the application's own lock. lockbox also
 * sets it by itself when it sees mlockall(MCL_FUTURE) lock a fresh mapping. Returns 0. */
LOCKBOX_API int lockbox_set_mlockall(int active) LOCKBOX_NOEXCEPT;

/* ------------------------------------------------------------------------------------------
 * Policy, errors and statistics
 * ------------------------------------------------------------------------------------------ */

typedef enum lockbox_policy {
  /* Default: when RLIMIT_MEMLOCK is reached, allocations fail with ENOMEM. */
  LOCKBOX_POLICY_STRICT = 0,
  /* Continue with unlocked (still guarded, undumped, zeroed) pages; warn once on stderr. */
  LOCKBOX_POLICY_BEST_EFFORT = 1
} lockbox_policy;

/* 0, or -1 with errno EINVAL for an unknown policy. The environment variable
 * LOCKBOX_POLICY=strict|best-effort sets the initial policy (ignored in setuid programs). Once
 * a switch to STRICT returns, every allocation is locked or fails, even where BEST_EFFORT left
 * pages unlocked (every thread's cache is emptied first; where membarrier(2) is refused, other
 * threads' caches only at their next refill); objects allocated before it stay as they are.
 * Not for signal handlers that may interrupt lockbox. */
LOCKBOX_API int lockbox_set_policy(lockbox_policy policy) LOCKBOX_NOEXCEPT;
LOCKBOX_API lockbox_policy lockbox_get_policy(void) LOCKBOX_NOEXCEPT;

typedef enum lockbox_backend {
  /* Default: anonymous memory, locked with mlock. */
  LOCKBOX_BACKEND_ANON = 0,
  /* memfd_secret (Linux 5.14+): pages removed from the kernel's direct map, locked by the
   * kernel, never dumped, absent from forked children. Each 1 MiB arena is charged against
   * RLIMIT_MEMLOCK in full when it is created. If the kernel refuses (ENOSYS, EPERM, the limit),
   * allocations fail with the reason. */
  LOCKBOX_BACKEND_SECRETMEM = 1,
  /* memfd_secret where the kernel offers it, anonymous memory otherwise. */
  LOCKBOX_BACKEND_AUTO = 2
} lockbox_backend;

/* Chooses the backend of arenas created from now on (small allocations; large blocks and
 * guarded secrets are always anonymous). 0, or -1 with errno EINVAL. The environment variable
 * LOCKBOX_BACKEND=anon|secretmem|auto sets the initial choice. */
LOCKBOX_API int lockbox_set_backend(lockbox_backend backend) LOCKBOX_NOEXCEPT;
LOCKBOX_API lockbox_backend lockbox_get_backend(void) LOCKBOX_NOEXCEPT;

/* The version of the library the program runs with, "MAJOR.MINOR.PATCH"; compare it with
 * LOCKBOX_VERSION_STRING, the version of the header it was built with. */
LOCKBOX_API const char* lockbox_version(void) LOCKBOX_NOEXCEPT;

/* This thread's last failure as a readable sentence ("no error" before any). */
LOCKBOX_API const char* lockbox_last_error(void) LOCKBOX_NOEXCEPT;

/* The struct only grows at its end; a caller passes the size it was built with (sizeof), so
 * programs built against an older header keep working with a newer library. */
typedef struct lockbox_stats {
  size_t locked_bytes;        /* bytes lockbox holds mlocked right now (what it adds to VmLck) */
  size_t unlocked_bytes;      /* bytes of pages committed unlocked under BEST_EFFORT (with
                                 empty ones kept, zeroed, for reuse) */
  size_t in_use_bytes;        /* requested bytes of live allocations */
  size_t live_allocations;    /* live allocations */
  size_t reserved_bytes;      /* address space reserved, guards included */
  size_t peak_locked_bytes;   /* the most locked_bytes has been */
  size_t memlock_limit;       /* RLIMIT_MEMLOCK soft limit; SIZE_MAX if unlimited or CAP_IPC_LOCK */
  size_t caller_locked_bytes; /* pages held by lockbox_lock(), each page counted once */
  size_t secretmem_bytes;     /* bytes of memfd_secret arenas (included in locked_bytes) */
  size_t quarantined_bytes;   /* freed small slots waiting before reuse: zeroed, still locked
                                 (included in locked_bytes, given back first when it runs out) */
  size_t quarantined_large_bytes; /* address space of freed large blocks kept PROT_NONE: no
                                     memory, not locked (included in reserved_bytes) */
  size_t sealed_boxes;        /* live sealed boxes (lockbox_seal) */
  size_t open_sealed_boxes;   /* sealed boxes with at least one view open (plaintext present) */
  /* Added in 0.3.0 (lockbox_get_stats fills it when size covers it): */
  size_t cached_large_bytes;  /* pages of freed large blocks kept zeroed, locked and PROT_NONE
                                 for reuse (included in locked_bytes; given back first when it
                                 runs out) */
} lockbox_stats;

/* The size of the first lockbox_stats (13 fields): the least a caller may pass. */
#define LOCKBOX_STATS_MIN_SIZE (13 * sizeof(size_t))

/* Fills the first size bytes of *out: call it as lockbox_get_stats(&stats, sizeof stats).
 * Returns how many bytes it filled, the smaller of size and the library's own struct; bytes
 * beyond those (fields newer than the library) are set to 0. 0 with errno EINVAL when out is
 * NULL or size is below LOCKBOX_STATS_MIN_SIZE. A forked child's stats cover only what it
 * allocated itself. */
LOCKBOX_API LOCKBOX_NONNULL(1)
    size_t lockbox_get_stats(lockbox_stats* out, size_t size) LOCKBOX_NOEXCEPT;

/* Writes the environment variables lockbox reads, one per line, into buffer (always
 * NUL-terminated when capacity > 0); returns the length the whole text needs. */
LOCKBOX_API size_t lockbox_describe_options(char* buffer, size_t capacity) LOCKBOX_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* LOCKBOX_LOCKBOX_H */
