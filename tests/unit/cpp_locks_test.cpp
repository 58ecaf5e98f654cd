// SPDX-License-Identifier: ISC
// The C++ RAII types over lockbox_lock / lockbox_unlock, checked against the kernel's smaps.
#include <doctest/doctest.h>
#include <lockbox/lockbox.hpp>
#include <sys/mman.h>

#include <cstring>

#include "support/process.hpp"

TEST_CASE("locked_range locks for its lifetime and nests with other locks") {
  void* page = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(page != MAP_FAILED);
  {
    lockbox::locked_range outer(page, 16);
    {
      lockbox::locked_range inner(static_cast<char*>(page) + 100, 16);
      CHECK(lockbox_test::kernel_says_locked(page, 4096));
    }
    CHECK(lockbox_test::kernel_says_locked(page, 4096));  // outer still holds it
    lockbox::locked_range moved(std::move(outer));
    CHECK(moved.length() == 16);
  }
  CHECK(lockbox_test::kernel_says_unlocked(page, 4096));
  munmap(page, 4096);
}

TEST_CASE("locked_range throws system_error with lockbox's reason") {
  void* page = mmap(nullptr, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  REQUIRE(page != MAP_FAILED);
  try {
    lockbox::locked_range range(page, 10);
    FAIL("a PROT_NONE page was locked");
  } catch (const std::system_error& error) {
    CHECK(error.code().value() == EACCES);
    CHECK(std::string(error.what()).find("PROT_NONE") != std::string::npos);
  }
  munmap(page, 4096);
}

TEST_CASE("locked_buffer is locked while it lives and zeroed when it goes") {
  alignas(4096) static unsigned char storage[2 * 4096];
  auto* buffer = new (storage) lockbox::locked_buffer<64>;
  std::strcpy(reinterpret_cast<char*>(buffer->data()), "passphrase");
  CHECK(lockbox_test::kernel_says_locked(buffer->data(), buffer->size()));
  buffer->~locked_buffer();
  for (unsigned char byte : storage) REQUIRE(byte == 0);
  CHECK(lockbox_test::kernel_says_unlocked(storage, sizeof storage));
}
