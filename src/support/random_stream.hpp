// SPDX-License-Identifier: ISC
// Unpredictable bytes for canaries and for the choice of the next slot: ChaCha20 (libsodium)
// under one per-process key, each refill under a nonce no other refill in the process has used,
// so streams never repeat each other. Cheap enough for the allocation paths: a refill of 512
// bytes costs about as much as one getrandom() call would for 8. Not thread-safe: each owner (a
// shard, the large heap, a thread cache) keeps its own, under its own lock or on its own thread.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace lockbox {

// `bytes` from the system's generator (libsodium's randombytes_buf), with thread cancellation
// off: getrandom and reads of /dev/urandom are cancellation points (os/os.hpp says why lockbox
// must never be one). For keys and cookies; the allocation paths draw on a RandomStream.
void fill_with_system_random(void* out, std::size_t bytes);

class RandomStream {
 public:
  // 512, not 256: libsodium computes eight ChaCha20 blocks at once (AVX2) from 512 bytes on. A
  // refill of 512 bytes cost 205 ns and one of 256 cost 182 (Sapphire Rapids): 0.40 ns per byte
  // drawn instead of 0.71. A shard draws five bytes per slot it hands to a thread cache (its
  // place in the run and its canary key): allocating then freeing 1,000 or 20,000 keys took
  // about 1 ns less per operation.
  static constexpr std::size_t kBytes = 512;

  // Draws a new process key from the system's generator: at start, and in a forked child, whose
  // streams must not repeat what the parent's produce. Streams refill under it from then on;
  // forget() makes one do so at once.
  static void rekey_process();

  std::uint32_t next32() {
    if (used_ + 4 > kBytes) refill();
    std::uint32_t value;
    std::memcpy(&value, buffer_ + used_, 4);
    used_ += 4;
    return value;
  }
  std::uint64_t next64() {
    return (std::uint64_t{next32()} << 32) | next32();
  }
  // An unbiased-enough index below `count` (count <= 256): a random byte scaled, one multiply.
  std::size_t below(std::size_t count) {
    if (used_ == kBytes) refill();
    return (std::size_t{buffer_[used_++]} * count) >> 8;
  }
  // Bytes left before the next refill.
  std::size_t remaining() const { return kBytes - used_; }
  // below() for a caller that saw remaining() != 0: no refill, so no call, on a fast path.
  std::size_t below_buffered(std::size_t count) {
    return (std::size_t{buffer_[used_++]} * count) >> 8;
  }
  // Throws away the buffered bytes (a forked child must not reuse the parent's).
  void forget() { used_ = kBytes; }
  void refill();

 private:
  unsigned char buffer_[kBytes];
  std::size_t used_ = kBytes;
};

}  // namespace lockbox
