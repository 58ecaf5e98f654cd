// SPDX-License-Identifier: ISC
// Sealed boxes (lockbox_seal and friends): secrets kept encrypted in lockbox memory with
// XChaCha20-Poly1305 under the split key, decrypted into a view only while one is open.
//
// A box is one lockbox allocation: the header below, then the ciphertext and its 16-byte tag.
// The plaintext of an open box lives in a second allocation, the view, preceded by the scratch
// in which the key is derived for that box (so the key, too, only ever sits in lockbox memory).
// The ciphertext is bound to the box's id and size (additional data), so it cannot be moved to
// another box or cut, and its nonce is (id, seal count): never repeated under one key.
//
// Locks: every operation holds `rekey_lock_` shared, then the box's mutex; rekey and fork hold
// it exclusively, so a rekey never sees a box half-sealed. The list lock is taken last.
// Operations return 0 or an errno value with last_error set; api/ sets errno.
#pragma once

#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "report/report.hpp"
#include "sealed/split_key.hpp"
#include "support/mutex.hpp"

namespace lockbox::sealed {

struct Box;

struct SealedStats {
  std::size_t boxes;       // live boxes
  std::size_t open_boxes;  // boxes with at least one view open
};

class SealedBoxes {
 public:
  static SealedBoxes& instance() { return instance_; }

  // A new box holding a copy of `size` bytes at `data`.
  int seal(const void* data, std::size_t size, Box** out);
  // The box's view (read-only unless `writable`); many readers or one writer.
  int open(Box* box, bool writable, void** view);
  // Ends one view; the last one wipes the plaintext (after re-sealing it, for a writer).
  int close(Box* box, const void* view);
  int size(const Box* box, std::size_t* size);
  void free(Box* box);
  // New shares, every box re-sealed under the key they give.
  int rekey();
  SealedStats stats() const;

 private:
  using Operation = report::Operation;
  // What kind of pointer `box` is: a live box of this process (0), a box a forked child
  // inherited (EACCES, last_error set). Anything else is fatal.
  int check(const Box* box, Operation operation) const;
  // Creates the shares on first use. 0 or ENOMEM.
  int ensure_key();

  static void before_fork();
  static void after_fork_in_parent();
  static void after_fork_in_child();

  static SealedBoxes instance_;
  // Writers first: a steady stream of opens must not starve a rekey.
  pthread_rwlock_t rekey_lock_ = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  Mutex list_lock_;
  Box* boxes_ = nullptr;  // every live box, for rekey
  SplitKey key_;
  std::atomic<bool> key_present_{false};
  bool fork_handlers_registered_ = false;
  std::uintptr_t cookie_ = 0;  // tells a box header from other lockbox memory
  std::atomic<std::uint64_t> next_id_{1};
  std::atomic<std::size_t> box_count_{0};
  std::atomic<std::size_t> open_count_{0};
};

}  // namespace lockbox::sealed
