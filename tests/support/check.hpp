// SPDX-License-Identifier: ISC
// A minimal check harness for the system tests that run as their own process (after dropping
// privileges, or around fork and core dumps, where doctest's signal handlers get in the way).
#pragma once

#include <cstdio>

namespace lockbox_test {

inline int g_passed = 0;
inline int g_failed = 0;

inline int finish() {
  std::printf("%d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

}  // namespace lockbox_test

#define CHECK(condition)                                                                 \
  do {                                                                                   \
    if (condition) {                                                                     \
      ++lockbox_test::g_passed;                                                          \
    } else {                                                                             \
      ++lockbox_test::g_failed;                                                          \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #condition); \
    }                                                                                    \
  } while (0)

// The condition is evaluated once (it may have effects, or be expensive).
#define CHECK_MESSAGE(condition, ...)    \
  do {                                   \
    bool lockbox_check_held = (condition); \
    CHECK(lockbox_check_held && #condition); \
    if (!lockbox_check_held) {           \
      std::fprintf(stderr, "  ");        \
      std::fprintf(stderr, __VA_ARGS__); \
      std::fprintf(stderr, "\n");        \
    }                                    \
  } while (0)
