// SPDX-License-Identifier: ISC
// The key that seals every box, never stored whole. It exists only as 16 KiB of random shares in
// a guarded secret of its own (locked, undumped, wiped in a forked child, between guard pages,
// read-only), and each use derives it again: the shares folded by XOR into 128 bytes, then
// hashed (BLAKE2b-256). Reading any part of the shares less than all of them gives nothing
// about the key; SECURITY.md says what this defends against and what it does not.
#pragma once

#include <cstddef>

namespace lockbox::sealed {

class SplitKey {
 public:
  static constexpr std::size_t kShareBytes = 16 * 1024;
  static constexpr std::size_t kFoldBytes = 128;  // one BLAKE2b block
  static constexpr std::size_t kKeyBytes = 32;
  // What derive() needs, in lockbox memory: the fold, then the key.
  static constexpr std::size_t kScratchBytes = kFoldBytes + kKeyBytes;

  // New random shares in a new guarded secret. 0, or ENOMEM (last_error set); on failure the
  // key is left as it was.
  int generate();
  bool present() const { return shares_ != nullptr; }
  // Writes the key into scratch + kFoldBytes and returns it; the caller wipes the scratch.
  const unsigned char* derive(unsigned char* scratch) const;
  // Zeroes and frees the shares.
  void release();
  // A forked child: the shares it inherited are wiped; forget them without touching them.
  void forget() { shares_ = nullptr; }
  void swap(SplitKey& other) {
    unsigned char* shares = shares_;
    shares_ = other.shares_;
    other.shares_ = shares;
  }

 private:
  unsigned char* shares_ = nullptr;
};

}  // namespace lockbox::sealed
