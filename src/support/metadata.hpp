// SPDX-License-Identifier: ISC
// Memory for lockbox's own bookkeeping: private anonymous mappings of its own, never the C
// library's heap (an allocator that calls malloc can deadlock in a signal handler, and a
// failure there must be an error value, not an exception through a C entry point) and never
// a page beside a secret. The containers here report running out of memory as false/nullptr.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <new>
#include <type_traits>

namespace lockbox::metadata {

// Whole pages of zeroed read-write memory, or nullptr when the kernel refuses.
void* map(std::size_t bytes);
void unmap(void* address, std::size_t bytes);

// An array of trivially copyable T in a mapping of its own, which grows (never shrinks) by
// moving to a bigger mapping. The elements past size() read zero.
template <typename T>
class Array {
  static_assert(std::is_trivially_copyable_v<T>);

 public:
  Array() = default;
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array() { release(); }

  // Room for `count` elements; false (and nothing changed) when no mapping can be had.
  bool reserve(std::size_t count) {
    if (count <= capacity_) return true;
    if (count > SIZE_MAX / sizeof(T) / 2) return false;
    std::size_t capacity = capacity_ != 0 ? capacity_ : (kFirstBytes + sizeof(T) - 1) / sizeof(T);
    while (capacity < count) capacity *= 2;
    std::size_t bytes = capacity * sizeof(T);
    auto* grown = static_cast<T*>(metadata::map(bytes));
    if (grown == nullptr) return false;
    if (size_ != 0) std::memcpy(static_cast<void*>(grown), data_, size_ * sizeof(T));
    release();
    data_ = grown;
    capacity_ = bytes / sizeof(T);
    return true;
  }
  // `count` elements, the new ones zero; false when no mapping can be had.
  bool resize(std::size_t count) {
    if (!reserve(count)) return false;
    if (count < size_) std::memset(static_cast<void*>(data_ + count), 0, (size_ - count) * sizeof(T));
    size_ = count;
    return true;
  }
  void swap(Array& other) {
    T* data = data_;
    std::size_t capacity = capacity_, size = size_;
    data_ = other.data_;
    capacity_ = other.capacity_;
    size_ = other.size_;
    other.data_ = data;
    other.capacity_ = capacity;
    other.size_ = size;
  }
  T& operator[](std::size_t i) { return data_[i]; }
  const T& operator[](std::size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  std::size_t size() const { return size_; }

 private:
  static constexpr std::size_t kFirstBytes = 4096;
  void release() {
    if (data_ != nullptr) metadata::unmap(data_, capacity_ * sizeof(T));
    data_ = nullptr;
    capacity_ = size_ = 0;
  }
  T* data_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t size_ = 0;
};

// Fixed-size nodes carved from 64 KiB mappings, reused through a free list. Never given back
// to the kernel (a table's high-water mark). Not thread-safe: the owner's lock guards it.
class NodePool {
 public:
  explicit NodePool(std::size_t node_bytes)
      : node_bytes_((node_bytes + alignof(std::max_align_t) - 1) & ~(alignof(std::max_align_t) - 1)) {}
  NodePool(const NodePool&) = delete;
  NodePool& operator=(const NodePool&) = delete;

  // A zeroed node, or nullptr when no mapping can be had.
  void* take();
  void give_back(void* node);

 private:
  static constexpr std::size_t kChunkBytes = 64 * 1024;
  struct FreeNode {
    FreeNode* next;
  };
  std::size_t node_bytes_;
  FreeNode* free_ = nullptr;
  unsigned char* chunk_ = nullptr;  // the chunk being carved
  std::size_t carved_ = kChunkBytes;
};

}  // namespace lockbox::metadata
