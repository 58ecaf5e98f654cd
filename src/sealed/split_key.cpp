// SPDX-License-Identifier: ISC
#include "sealed/split_key.hpp"

#include <sodium.h>

#include <cstdint>
#include <cstring>

#include "heap/heap.hpp"
#include "support/random_stream.hpp"

namespace lockbox::sealed {
namespace {

using Protection = large::LargeHeap::Protection;
// Sixteen bytes at a time: the fold is a stream of vector XORs the compiler keeps in registers.
using Lane = std::uint64_t __attribute__((vector_size(16)));
constexpr std::size_t kLanes = SplitKey::kFoldBytes / sizeof(Lane);
constexpr unsigned char kPersonal[crypto_generichash_blake2b_PERSONALBYTES] = {
    'l', 'o', 'c', 'k', 'b', 'o', 'x', ' ', 's', 'e', 'a', 'l', 'e', 'd', ' ', '1'};

}  // namespace

int SplitKey::generate() {
  heap::Heap& heap = heap::Heap::instance();
  auto* shares = static_cast<unsigned char*>(heap.allocate_guarded(kShareBytes));
  if (shares == nullptr) return ENOMEM;
  fill_with_system_random(shares, kShareBytes);
  // Read-only from now on: a stray write faults instead of changing the key of every box.
  heap.protect(shares, Protection::kReadOnly);
  release();
  shares_ = shares;
  return 0;
}

const unsigned char* SplitKey::derive(unsigned char* scratch) const {
  Lane fold[kLanes] = {};
  const auto* lanes = reinterpret_cast<const Lane*>(shares_);
  for (std::size_t i = 0; i < kShareBytes / sizeof(Lane); i += kLanes) {
    for (std::size_t j = 0; j < kLanes; ++j) fold[j] ^= lanes[i + j];
  }
  std::memcpy(scratch, fold, kFoldBytes);
  sodium_memzero(fold, sizeof fold);
  unsigned char* key = scratch + kFoldBytes;
  crypto_generichash_blake2b_salt_personal(key, kKeyBytes, scratch, kFoldBytes, nullptr, 0,
                                           nullptr, kPersonal);
  sodium_memzero(scratch, kFoldBytes);
  return key;
}

void SplitKey::release() {
  if (shares_ == nullptr) return;
  // lockbox_free's path: zeroes the block whatever its protection.
  heap::Heap::instance().free(shares_, report::Operation::kSealedRekey);
  shares_ = nullptr;
}

}  // namespace lockbox::sealed
