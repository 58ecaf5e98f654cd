/* SPDX-License-Identifier: ISC */
#include <lockbox/lockbox.h>
#include <stdint.h>

#include "fault.h"

/* An attacker who can read a few canaries (an over-read, a leak) and knows their addresses
 * tries to forge the canary of another slot, to hide an overflow from lockbox_free.
 *
 * Until 0.1.0 a canary word was a public bijection (SplitMix64's finaliser) of the slot's
 * address XOR one process secret, with the low bit of each byte forced on: two leaked words
 * recover the secret (256 candidates, the second leak picks one), and with it every canary.
 * This program runs that attack, and when it finds no secret (the canaries are not made that
 * way) it copies a leaked canary instead. Either forgery must be refused. */

#define SIZE 24 /* a 32-byte slot: bytes 24 to 31 are canary, the whole 8-byte word at 24 */

static uint64_t load(const unsigned char* at) {
  uint64_t word;
  memcpy(&word, at, 8);
  return word;
}

static uint64_t mix(uint64_t x) {
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t unshift(uint64_t y, int shift) {
  uint64_t x = y;
  int i;
  for (i = 0; i < 64 / shift + 1; ++i) x = y ^ (x >> shift);
  return x;
}

static uint64_t inverse(uint64_t odd) {
  uint64_t x = odd; /* Newton: each step doubles the correct low bits */
  int i;
  for (i = 0; i < 6; ++i) x *= 2 - odd * x;
  return x;
}

static uint64_t unmix(uint64_t y) {
  uint64_t x = unshift(y, 31) * inverse(0x94d049bb133111ebull);
  x = unshift(x, 27) * inverse(0xbf58476d1ce4e5b9ull);
  return unshift(x, 30);
}

/* The old canary of the slot at `address` under `secret`. */
static uint64_t old_canary(uint64_t address, uint64_t secret) {
  return mix(address ^ secret) | 0x0101010101010101ull;
}

FAULT_MAIN int main(void) {
  unsigned char* leaked[2];
  unsigned char* victim;
  uint64_t words[2], forged = 0;
  unsigned bits;
  int found = 0, i;
  victim = lockbox_malloc(SIZE);
  fault_expect(victim);
  for (i = 0; i < 2; ++i) {
    leaked[i] = lockbox_malloc(SIZE);
    words[i] = load(leaked[i] + SIZE); /* the leak: 8 bytes past the object */
  }
  for (bits = 0; bits < 256 && !found; ++bits) {
    uint64_t word = words[0], secret;
    int b;
    for (b = 0; b < 8; ++b) { /* guess the forced-on low bit of each byte */
      if (!(bits & (1u << b))) word &= ~(1ull << (8 * b));
    }
    secret = unmix(word) ^ (uint64_t)(uintptr_t)leaked[0];
    if (old_canary((uintptr_t)leaked[1], secret) == words[1]) {
      forged = old_canary((uintptr_t)victim, secret);
      found = 1;
    }
  }
  if (!found) forged = words[0];
  memset(victim, 'A', SIZE);
  memcpy(victim + SIZE, &forged, 8); /* the overflow, canary "restored" */
  lockbox_free(victim);
  return 0;
}
