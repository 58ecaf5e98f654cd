// SPDX-License-Identifier: ISC
// Fuzz target: overlapping lockbox_lock / lockbox_unlock / lockbox_unlock_and_zero on a few
// buffers (foreign memory, and a lockbox allocation) against a per-page count model. After each
// op the page lock table must agree with the model; at the end of each input, so must the
// kernel (/proc/self/smaps), and every lock is undone so inputs do not leak into each other.
#include <fuzzer/FuzzedDataProvider.h>
#include <lockbox/lockbox.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "heap/heap.hpp"
#include "os/os.hpp"

namespace {

constexpr std::size_t kPage = 4096;
constexpr std::size_t kBufferPages = 6;
constexpr int kForeignBuffers = 3;

[[noreturn]] void fail(const char* what, const void* where) {
  std::fprintf(stderr, "lock_fuzzer: %s at %p\n", what, where);
  std::abort();
}

struct Buffer {
  unsigned char* start;  // page-aligned
  std::size_t bytes;     // what the fuzzer may touch
  std::size_t pages;
  unsigned model[kBufferPages];
};

unsigned char* foreign_buffer(int index) {
  static unsigned char* buffers[kForeignBuffers] = {};
  if (buffers[index] == nullptr) {
    void* p = mmap(nullptr, kBufferPages * kPage, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("mmap failed", nullptr);
    buffers[index] = static_cast<unsigned char*>(p);
  }
  return buffers[index];
}

void check_table(const Buffer& buffer) {
  auto& heap = lockbox::heap::Heap::instance();
  for (std::size_t p = 0; p < buffer.pages; ++p) {
    auto page = reinterpret_cast<std::uintptr_t>(buffer.start) + p * kPage;
    if (heap.caller_locks().count(page) != buffer.model[p]) {
      fail("the page lock table differs from the model", reinterpret_cast<void*>(page));
    }
  }
}

void check_kernel(const Buffer& buffer, bool lockbox_memory) {
  lockbox::os::PageInfo info[kBufferPages];
  if (lockbox::os::describe_pages(buffer.start, buffer.pages, info) != 0) fail("smaps", nullptr);
  for (std::size_t p = 0; p < buffer.pages; ++p) {
    // A lockbox page is locked for its own objects too; a foreign page only by the model.
    bool expected = buffer.model[p] > 0 || (lockbox_memory && info[p].locked);
    if (info[p].locked != expected) {
      std::fprintf(stderr, "page %zu of %zu: model %u, kernel locked %d, mapped %d\n", p,
                   buffer.pages, buffer.model[p], info[p].locked, info[p].mapped);
      fail("the kernel disagrees", buffer.start + p * kPage);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t length) {
  FuzzedDataProvider data(bytes, length);
  constexpr int kBuffers = kForeignBuffers + 2;
  Buffer buffers[kBuffers] = {};
  for (int i = 0; i < kForeignBuffers; ++i) {
    buffers[i] = {foreign_buffer(i), kBufferPages * kPage, kBufferPages, {}};
  }
  // Lockbox allocations spanning pages, whose caller locks nest with their own objects: a large
  // block and a small one (8184 bytes in an 8192-byte slot over two arena pages).
  auto* large = static_cast<unsigned char*>(lockbox_aligned_alloc(kPage, 3 * kPage));
  auto* small = static_cast<unsigned char*>(lockbox_aligned_alloc(kPage, 8184));
  if (large == nullptr || small == nullptr) {
    // Under a small RLIMIT_MEMLOCK (64 KiB is a common container default) the budget may be
    // spent: a normal outcome, as long as it is said as ENOMEM.
    if (errno != ENOMEM) fail("allocation failed without ENOMEM", nullptr);
    lockbox_free(large);
    lockbox_free(small);
    return 0;
  }
  buffers[kForeignBuffers] = {large, 3 * kPage, 3, {}};
  buffers[kForeignBuffers + 1] = {small, 8184, 2, {}};

  // Each new foreign page costs a read of /proc/self/smaps: keep inputs short.
  for (int op = 0; op < 64 && data.remaining_bytes() > 0; ++op) {
    Buffer& buffer = buffers[data.ConsumeIntegralInRange<int>(0, kBuffers - 1)];
    std::size_t span = buffer.bytes;
    std::size_t offset = data.ConsumeIntegralInRange<std::size_t>(0, span - 1);
    std::size_t size = data.ConsumeIntegralInRange<std::size_t>(0, span - offset);
    std::size_t first = offset / kPage;
    std::size_t last = size == 0 ? first : (offset + size - 1) / kPage;
    switch (data.ConsumeIntegralInRange<int>(0, 2)) {
      case 0:
        if (lockbox_lock(buffer.start + offset, size) != 0) {
          // An exhausted budget (STRICT) changes nothing: check_table below proves it.
          if (errno != ENOMEM) fail(lockbox_last_error(), buffer.start);
          break;
        }
        for (std::size_t p = first; size != 0 && p <= last; ++p) ++buffer.model[p];
        break;
      default: {
        bool zero = data.ConsumeBool();
        bool held = true;
        for (std::size_t p = first; size != 0 && p <= last; ++p) held &= buffer.model[p] > 0;
        int result = zero ? lockbox_unlock_and_zero(buffer.start + offset, size)
                          : lockbox_unlock(buffer.start + offset, size);
        if (result != (held ? 0 : -1))
          fail("unlock disagrees with the model", buffer.start + offset);
        if (!held && errno != EINVAL)
          fail("unlock of an unlocked range is not EINVAL", buffer.start);
        for (std::size_t p = first; held && size != 0 && p <= last; ++p) --buffer.model[p];
        for (std::size_t i = 0; held && zero && i < size; ++i) {
          if (buffer.start[offset + i] != 0)
            fail("unlock_and_zero left a byte", buffer.start + offset + i);
        }
        break;
      }
    }
    check_table(buffer);
  }
  for (int i = 0; i < kBuffers; ++i) {
    check_kernel(buffers[i], i >= kForeignBuffers);
    for (std::size_t p = 0; p < buffers[i].pages; ++p) {
      for (; buffers[i].model[p] > 0; --buffers[i].model[p]) {
        if (lockbox_unlock(buffers[i].start + p * kPage, 1) != 0) fail("cleanup", buffers[i].start);
      }
    }
    check_kernel(buffers[i], i >= kForeignBuffers);
  }
  lockbox_free(large);
  lockbox_free(small);
  return 0;
}
