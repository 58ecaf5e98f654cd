// SPDX-License-Identifier: ISC
// The C++ RAII types over lockbox_lock / lockbox_unlock, checked against the kernel's smaps.
#include <doctest/doctest.h>
#include <lockbox/lockbox.hpp>
#include <sys/mman.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>

#include "os/os.hpp"
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

TEST_CASE("a refused lock of a PROT_NONE page says so, with or without the page probe") {
  // The probe (process_vm_readv on this process) tells a PROT_NONE page from the limit in
  // proportion to the pages; where a seccomp filter refuses it, smaps tells instead.
  auto* pages = static_cast<char*>(
      mmap(nullptr, 3 * 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  REQUIRE(pages != MAP_FAILED);
  REQUIRE(mprotect(pages + 2 * 4096, 4096, PROT_NONE) == 0);
  for (int probe_error : {0, EPERM}) {
    CAPTURE(probe_error);
    lockbox::os::simulate_unreadable_probe_error(probe_error);
    errno = 0;
    CHECK(lockbox_lock(pages + 100, 2 * 4096) == -1);  // the last page of three is PROT_NONE
    CHECK(errno == EACCES);
    char expected[64];
    std::snprintf(expected, sizeof expected, "cannot lock %p: the page is PROT_NONE",
                  static_cast<void*>(pages + 2 * 4096));
    CHECK(std::string(lockbox_last_error()) == expected);
    CHECK(lockbox_test::kernel_says_unlocked(pages, 3 * 4096));  // the refused run undone
    CHECK(lockbox_lock(pages, 2 * 4096) == 0);  // the readable pages lock
    CHECK(lockbox_unlock(pages, 2 * 4096) == 0);
  }
  lockbox::os::simulate_unreadable_probe_error(0);
  munmap(pages, 3 * 4096);
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
