// AddressSanitizer integration: free slots and canary bytes are poisoned, so an application's
// use after free or overflow is reported by ASan at the faulting line, not later by lockbox.
// Without ASan every function here compiles to nothing.
#pragma once

#include <cstddef>

#if defined(__SANITIZE_ADDRESS__)
#define LOCKBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LOCKBOX_ASAN 1
#endif
#endif

#ifdef LOCKBOX_ASAN
#include <sanitizer/asan_interface.h>
#endif

namespace lockbox::sanitizers {

inline void poison(const void* address, std::size_t bytes) {
#ifdef LOCKBOX_ASAN
  ASAN_POISON_MEMORY_REGION(address, bytes);
#else
  (void)address;
  (void)bytes;
#endif
}

inline void unpoison(const void* address, std::size_t bytes) {
#ifdef LOCKBOX_ASAN
  ASAN_UNPOISON_MEMORY_REGION(address, bytes);
#else
  (void)address;
  (void)bytes;
#endif
}

}  // namespace lockbox::sanitizers
