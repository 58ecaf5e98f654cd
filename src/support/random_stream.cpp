// SPDX-License-Identifier: ISC
// The process key and nonce counter behind every RandomStream.
#include "support/random_stream.hpp"

#include <sodium.h>

#include "os/os.hpp"

namespace lockbox {
namespace {

unsigned char g_key[crypto_stream_chacha20_KEYBYTES];
std::atomic<std::uint64_t> g_next_nonce{0};

}  // namespace

void fill_with_system_random(void* out, std::size_t bytes) {
  os::CancellationOff no_cancellation;
  randombytes_buf(out, bytes);
}

void RandomStream::rekey_process() {
  fill_with_system_random(g_key, sizeof g_key);
  g_next_nonce.store(0, std::memory_order_relaxed);
}

void RandomStream::refill() {
  // A 64-bit counter: no nonce repeats under one key before 2^64 refills.
  std::uint64_t counter = g_next_nonce.fetch_add(1, std::memory_order_relaxed);
  unsigned char nonce[crypto_stream_chacha20_NONCEBYTES];
  static_assert(sizeof nonce == sizeof counter);
  std::memcpy(nonce, &counter, sizeof counter);
  crypto_stream_chacha20(buffer_, kBytes, nonce, g_key);
  used_ = 0;
}

}  // namespace lockbox
