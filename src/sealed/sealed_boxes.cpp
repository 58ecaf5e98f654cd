// SPDX-License-Identifier: ISC
#include "sealed/sealed_boxes.hpp"

#include <sodium.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "heap/heap.hpp"
#include "support/last_error.hpp"
#include "support/random_stream.hpp"

namespace lockbox::sealed {

struct Box {
  std::uintptr_t check;  // cookie ^ address while the box lives
  std::uint64_t id;      // unique in the process; with `seals`, the nonce
  std::uint64_t seals;   // how many times this box was sealed
  std::size_t size;      // plaintext bytes
  Mutex mutex;
  Box* previous;
  Box* next;
  // While a view is open: the key scratch, then the plaintext (the view is scratch + its size).
  unsigned char* view;
  std::size_t readers;
  bool writer;

  unsigned char* ciphertext() { return reinterpret_cast<unsigned char*>(this + 1); }
};

namespace {

using heap::Heap;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
constexpr std::size_t kScratch = SplitKey::kScratchBytes;
static_assert(kScratch % 16 == 0, "the plaintext after the scratch keeps lockbox's alignment");

// The nonce: the box's id and its seal count, never the same twice under one key (a rekey
// brings a new key). The additional data binds the ciphertext to its box and its size.
struct Nonce {
  unsigned char bytes[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = {};
  explicit Nonce(const Box& box) {
    std::memcpy(bytes, &box.id, 8);
    std::memcpy(bytes + 8, &box.seals, 8);
  }
};
struct BoundData {
  unsigned char bytes[16];
  explicit BoundData(const Box& box) {
    std::uint64_t size = box.size;
    std::memcpy(bytes, &box.id, 8);
    std::memcpy(bytes + 8, &size, 8);
  }
};

// Encrypts the box's plaintext (which may be its own ciphertext area: in place) under a new
// nonce.
void seal_bytes(Box& box, const unsigned char* plaintext, const unsigned char* key) {
  ++box.seals;
  Nonce nonce(box);
  BoundData bound(box);
  static const unsigned char kNothing = 0;
  crypto_aead_xchacha20poly1305_ietf_encrypt(box.ciphertext(), nullptr,
                                             box.size != 0 ? plaintext : &kNothing, box.size,
                                             bound.bytes, sizeof bound.bytes, nullptr,
                                             nonce.bytes, key);
}

// The reverse; a ciphertext that fails authentication is fatal.
void unseal_bytes(Box& box, unsigned char* plaintext, const unsigned char* key,
                  report::Operation operation) {
  Nonce nonce(box);
  BoundData bound(box);
  if (crypto_aead_xchacha20poly1305_ietf_decrypt(plaintext, nullptr, nullptr, box.ciphertext(),
                                                 box.size + kTagBytes, bound.bytes,
                                                 sizeof bound.bytes, nonce.bytes, key) != 0) {
    report::fatal_sealed_tampered(operation, &box);
  }
}

// Holds `rekey_lock_` shared (every box operation) or exclusively (rekey).
class RekeyLockGuard {
 public:
  enum Mode { kShared, kExclusive };
  RekeyLockGuard(pthread_rwlock_t& lock, Mode mode) : lock_(lock) {
    if (mode == kShared) {
      pthread_rwlock_rdlock(&lock_);
    } else {
      pthread_rwlock_wrlock(&lock_);
    }
  }
  ~RekeyLockGuard() { pthread_rwlock_unlock(&lock_); }
  RekeyLockGuard(const RekeyLockGuard&) = delete;
  RekeyLockGuard& operator=(const RekeyLockGuard&) = delete;

 private:
  pthread_rwlock_t& lock_;
};

}  // namespace

constinit SealedBoxes SealedBoxes::instance_;

int SealedBoxes::check(const Box* box, Operation operation) const {
  switch (Heap::instance().ownership(box)) {
    case Heap::Ownership::kNotOwned:
      report::fatal_invalid_pointer(operation, box);
    case Heap::Ownership::kInherited:
      set_last_error(
          "%s: this box was sealed by the parent process; a forked child cannot unseal its "
          "parent's boxes (their key is wiped in the child)",
          report::operation_name(operation));
      return EACCES;
    case Heap::Ownership::kLive:
      break;
  }
  if (box->check != (cookie_ ^ reinterpret_cast<std::uintptr_t>(box)))
    report::fatal_not_a_sealed_box(operation, box);
  return 0;
}

int SealedBoxes::ensure_key() {
  if (key_present_.load(std::memory_order_acquire)) [[likely]]
    return 0;
  RekeyLockGuard exclusive(rekey_lock_, RekeyLockGuard::kExclusive);
  if (key_.present()) return 0;
  if (int err = key_.generate()) return err;
  if (cookie_ == 0) {
    fill_with_system_random(&cookie_, sizeof cookie_);
    cookie_ |= 1;
  }
  if (!fork_handlers_registered_) {
    // Registered after the heap's (which are registered when the library loads): so this
    // prepare handler runs before the heap's, matching the lock order (boxes, then the heap).
    if (pthread_atfork(&before_fork, &after_fork_in_parent, &after_fork_in_child) != 0) {
      key_.release();
      set_last_error("lockbox_seal: cannot register the fork handlers (pthread_atfork failed)");
      return ENOMEM;
    }
    fork_handlers_registered_ = true;
  }
  key_present_.store(true, std::memory_order_release);
  return 0;
}

int SealedBoxes::seal(const void* data, std::size_t size, Box** out) {
  constexpr auto kSeal = Operation::kSeal;
  if (data == nullptr && size != 0) {
    set_last_error("lockbox_seal: data is NULL and size is %zu", size);
    return EINVAL;
  }
  if (size > kMaxRequest - sizeof(Box) - kTagBytes) {
    set_last_error("lockbox_seal: %zu bytes is more than lockbox can ever provide", size);
    return ENOMEM;
  }
  if (int err = ensure_key()) return err;
  Heap& heap = Heap::instance();
  void* memory = heap.allocate(sizeof(Box) + size + kTagBytes, kSeal);
  if (memory == nullptr) return ENOMEM;
  auto* scratch = static_cast<unsigned char*>(heap.allocate(kScratch, kSeal));
  if (scratch == nullptr) {
    heap.free(memory, kSeal);
    return ENOMEM;
  }
  Box* box = new (memory) Box{};
  box->id = next_id_.fetch_add(1, std::memory_order_relaxed);
  box->size = size;
  {
    RekeyLockGuard shared(rekey_lock_, RekeyLockGuard::kShared);
    seal_bytes(*box, static_cast<const unsigned char*>(data), key_.derive(scratch));
    box->check = cookie_ ^ reinterpret_cast<std::uintptr_t>(box);
    MutexGuard list(list_lock_);
    box->next = boxes_;
    if (boxes_ != nullptr) boxes_->previous = box;
    boxes_ = box;
  }
  heap.free(scratch, kSeal);  // zeroes the key
  box_count_.fetch_add(1, std::memory_order_relaxed);
  *out = box;
  return 0;
}

int SealedBoxes::open(Box* box, bool writable, void** view) {
  Operation operation = writable ? Operation::kSealedOpenRw : Operation::kSealedOpen;
  if (int err = check(box, operation)) return err;
  RekeyLockGuard shared(rekey_lock_, RekeyLockGuard::kShared);
  MutexGuard guard(box->mutex);
  if (box->writer || (writable && box->readers != 0)) {
    set_last_error(
        "%s: the box already has a %s view open (a box has many read-only views or one "
        "writable view)",
        report::operation_name(operation), box->writer ? "writable" : "read-only");
    return EBUSY;
  }
  if (box->view == nullptr) {
    auto* memory = static_cast<unsigned char*>(
        Heap::instance().allocate(kScratch + box->size, operation));
    if (memory == nullptr) return ENOMEM;
    unseal_bytes(*box, memory + kScratch, key_.derive(memory), operation);
    sodium_memzero(memory, kScratch);
    box->view = memory;
    open_count_.fetch_add(1, std::memory_order_relaxed);
  }
  if (writable) {
    box->writer = true;
  } else {
    ++box->readers;
  }
  *view = box->view + kScratch;
  return 0;
}

int SealedBoxes::close(Box* box, const void* view) {
  constexpr auto kClose = Operation::kSealedClose;
  if (int err = check(box, kClose)) return err;
  RekeyLockGuard shared(rekey_lock_, RekeyLockGuard::kShared);
  MutexGuard guard(box->mutex);
  if (box->view == nullptr || view != box->view + kScratch)
    report::fatal_view_not_open(kClose, view);
  if (box->writer) {
    seal_bytes(*box, box->view + kScratch, key_.derive(box->view));
    box->writer = false;
  } else {
    --box->readers;
  }
  if (!box->writer && box->readers == 0) {
    Heap::instance().free(box->view, kClose);  // zeroes the plaintext and the key
    box->view = nullptr;
    open_count_.fetch_sub(1, std::memory_order_relaxed);
  }
  return 0;
}

int SealedBoxes::size(const Box* box, std::size_t* size) {
  if (int err = check(box, Operation::kSealedSize)) return err;
  *size = box->size;
  return 0;
}

void SealedBoxes::free(Box* box) {
  constexpr auto kFree = Operation::kSealedFree;
  Heap& heap = Heap::instance();
  if (heap.ownership(box) == Heap::Ownership::kNotOwned) {
    heap.free(box, kFree);  // reports a double free, or a pointer lockbox never returned
  }
  if (check(box, kFree) != 0) {
    // Inherited from the parent: its memory is wiped; give the child's bookkeeping back.
    heap.free(box, kFree);
    return;
  }
  {
    RekeyLockGuard shared(rekey_lock_, RekeyLockGuard::kShared);
    {
      MutexGuard guard(box->mutex);
      if (box->view != nullptr) {
        // Views still open are the caller's bug; they end here, wiped.
        heap.free(box->view, kFree);
        box->view = nullptr;
        open_count_.fetch_sub(1, std::memory_order_relaxed);
      }
      box->check = 0;
    }
    MutexGuard list(list_lock_);
    if (box->previous != nullptr) box->previous->next = box->next;
    if (box->next != nullptr) box->next->previous = box->previous;
    if (boxes_ == box) boxes_ = box->next;
  }
  box->~Box();
  heap.free(box, kFree);  // zeroes the ciphertext too
  box_count_.fetch_sub(1, std::memory_order_relaxed);
}

int SealedBoxes::rekey() {
  constexpr auto kRekey = Operation::kSealedRekey;
  if (int err = ensure_key()) return err;
  Heap& heap = Heap::instance();
  SplitKey fresh;
  if (int err = fresh.generate()) return err;
  auto* scratch = static_cast<unsigned char*>(heap.allocate(2 * kScratch, kRekey));
  if (scratch == nullptr) {
    fresh.release();
    return ENOMEM;
  }
  {
    RekeyLockGuard exclusive(rekey_lock_, RekeyLockGuard::kExclusive);
    const unsigned char* old_key = key_.derive(scratch);
    const unsigned char* new_key = fresh.derive(scratch + kScratch);
    for (Box* box = boxes_; box != nullptr; box = box->next) {
      // In place: the plaintext passes through the box's own (locked) ciphertext area.
      unseal_bytes(*box, box->ciphertext(), old_key, kRekey);
      seal_bytes(*box, box->ciphertext(), new_key);
    }
    key_.swap(fresh);
  }
  fresh.release();  // the old shares
  heap.free(scratch, kRekey);
  return 0;
}

SealedStats SealedBoxes::stats() const {
  return {box_count_.load(std::memory_order_relaxed),
          open_count_.load(std::memory_order_relaxed)};
}

void SealedBoxes::before_fork() {
  pthread_rwlock_wrlock(&instance_.rekey_lock_);
  instance_.list_lock_.lock();
}

void SealedBoxes::after_fork_in_parent() {
  instance_.list_lock_.unlock();
  pthread_rwlock_unlock(&instance_.rekey_lock_);
}

void SealedBoxes::after_fork_in_child() {
  // The child's thread has a new id, so the write lock it inherited cannot be unlocked as its
  // own: start it afresh.
  pthread_rwlock_t fresh = PTHREAD_RWLOCK_WRITER_NONRECURSIVE_INITIALIZER_NP;
  std::memcpy(&instance_.rekey_lock_, &fresh, sizeof fresh);
  instance_.list_lock_.unlock();
  // The parent's boxes and shares are wiped in the child: none of them can be opened here. The
  // child's first seal makes shares of its own.
  instance_.boxes_ = nullptr;
  instance_.key_.forget();
  instance_.key_present_.store(false, std::memory_order_relaxed);
  instance_.box_count_.store(0, std::memory_order_relaxed);
  instance_.open_count_.store(0, std::memory_order_relaxed);
}

}  // namespace lockbox::sealed
