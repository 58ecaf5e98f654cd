// SPDX-License-Identifier: ISC
// Private compile-time switches for bench/variants/run.sh, which builds throwaway copies of
// lockbox with one check compiled out or one size changed, to measure what each costs (README,
// "where the time goes"). They are not options of the library: each weakens a promise of
// SECURITY.md or spends more locked memory, and none is documented for users.
//
// Each is a constant used with `if constexpr` (or in a constant expression), so the code of every
// variant is compiled, and type-checked, by every ordinary build: a refactor that breaks a
// variant breaks the build, not the next reproduction of the table.
#pragma once

#include <cstdint>

#ifndef LOCKBOX_BENCH_NO_SCAN
#define LOCKBOX_BENCH_NO_SCAN 0
#endif
#ifndef LOCKBOX_BENCH_SAMPLED_SCAN
#define LOCKBOX_BENCH_SAMPLED_SCAN 0
#endif
#ifndef LOCKBOX_BENCH_NO_CANARY
#define LOCKBOX_BENCH_NO_CANARY 0
#endif
#ifndef LOCKBOX_BENCH_NO_CAS
#define LOCKBOX_BENCH_NO_CAS 0
#endif
#ifndef LOCKBOX_BENCH_NO_QUARANTINE
#define LOCKBOX_BENCH_NO_QUARANTINE 0
#endif
#ifndef LOCKBOX_BENCH_NO_RANDOM
#define LOCKBOX_BENCH_NO_RANDOM 0
#endif
#ifndef LOCKBOX_BENCH_ELIGIBLE
#define LOCKBOX_BENCH_ELIGIBLE 0
#endif

namespace lockbox::bench_switches {

// A slot handed out again is not read for a write after free.
inline constexpr bool kNoScan = LOCKBOX_BENCH_NO_SCAN != 0;
// Only the first and last 32 bytes of a slot above 64 bytes are read, the whole slot on every
// 16th hand-out of the thread.
inline constexpr bool kSampledScan = LOCKBOX_BENCH_SAMPLED_SCAN != 0;
// No canary written on hand-out, none checked on free, no slack check.
inline constexpr bool kNoCanary = LOCKBOX_BENCH_NO_CANARY != 0;
// The double-free check reads the slot word, then stores it (no compare-and-swap).
inline constexpr bool kNoCas = LOCKBOX_BENCH_NO_CAS != 0;
// Freed slots are eligible at once (no quarantine).
inline constexpr bool kNoQuarantine = LOCKBOX_BENCH_NO_QUARANTINE != 0;
// The oldest eligible slot goes out (no random choice).
inline constexpr bool kNoRandom = LOCKBOX_BENCH_NO_RANDOM != 0;
// When not 0: every thread-cache bin up to 4 KiB holds this many eligible slots (16 or 64).
inline constexpr std::uint32_t kEligible = LOCKBOX_BENCH_ELIGIBLE;

// The sampled scan's count of this thread's hand-outs: thread-local only in that variant (no
// thread-local storage in any other build); never touched outside it.
#if LOCKBOX_BENCH_SAMPLED_SCAN
inline thread_local unsigned t_sampled_hand_outs = 0;
#else
inline unsigned t_sampled_hand_outs = 0;
#endif

static_assert(!(kNoScan && kSampledScan), "no_scan and sampled_scan exclude each other");
static_assert(kEligible == 0 || kEligible == 16 || kEligible == 64,
              "the thread-cache ring is sized for 16 or 64 eligible slots");

}  // namespace lockbox::bench_switches
