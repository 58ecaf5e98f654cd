// SPDX-License-Identifier: ISC
// The C++ layer: containers over lockbox::allocator, lockbox::string (no byte of a secret outside
// lockbox memory), the memory resource, make_secret, guarded secret<T> views, and the helpers.
#include <doctest/doctest.h>
#include <lockbox/lockbox.hpp>
#include <sodium.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <memory_resource>
#include <string>
#include <vector>

#include "heap/heap.hpp"
#include "support/freed.hpp"
#include "support/process.hpp"

namespace {

lockbox::heap::Heap& heap() { return lockbox::heap::Heap::instance(); }

// Sanitizers map terabytes of shadow memory: scanning the process is neither possible nor useful.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
constexpr bool kCanScanProcess = false;
#else
constexpr bool kCanScanProcess = true;
#endif

// Every place outside lockbox memory where `needle` occurs in this process's readable memory.
// Memory is read through /proc/self/mem, not by dereferencing: the C library may unmap or trim a
// region between reading /proc/self/maps and scanning it (freeing the very buffers that held the
// map), and pread reports that as an error where a load would be SIGSEGV. Each chunk is copied
// into a lockbox buffer, so the scanner itself leaves no copy of the secret outside lockbox.
std::size_t copies_outside_lockbox(const unsigned char* needle, std::size_t length) {
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  auto* buffer = static_cast<unsigned char*>(lockbox_malloc(kChunk));
  REQUIRE(buffer != nullptr);
  int memory = open("/proc/self/mem", O_RDONLY | O_CLOEXEC);
  REQUIRE(memory >= 0);
  std::size_t found = 0;
  for (auto [start, end] : lockbox_test::readable_ranges()) {
    if (heap().is_lockbox_memory(reinterpret_cast<const void*>(start))) continue;
    // Chunks overlap by length - 1 bytes so a copy that straddles two chunks is still seen.
    for (std::uintptr_t at = start; at + length <= end; at += kChunk - (length - 1)) {
      std::size_t want = std::min<std::uintptr_t>(kChunk, end - at);
      ssize_t got = pread(memory, buffer, want, static_cast<off_t>(at));
      if (got < static_cast<ssize_t>(length)) break;  // gone since the map was read
      for (const unsigned char* hit = buffer; (hit = static_cast<const unsigned char*>(memmem(
                                                   hit, buffer + got - hit, needle, length)));
           ++hit) {
        if (!heap().is_lockbox_memory(reinterpret_cast<const void*>(at + (hit - buffer)))) {
          ++found;
        }
      }
      if (static_cast<std::size_t>(got) < want) break;
    }
  }
  close(memory);
  lockbox_free(buffer);
  return found;
}

}  // namespace

TEST_CASE("containers keep their contents across growth and zero the old buffers") {
  lockbox::vector<std::uint64_t> numbers;
  const std::uint64_t* previous = nullptr;
  std::size_t previous_bytes = 0, moves = 0;
  for (std::uint64_t i = 0; i < 5000; ++i) {
    if (numbers.size() == numbers.capacity() && !numbers.empty()) {
      previous = numbers.data();
      previous_bytes = numbers.size() * sizeof(std::uint64_t);
    }
    numbers.push_back(i * 3);
    if (previous != nullptr && numbers.data() != previous) {
      ++moves;
      CHECK(heap().freed_range_reads_zero(previous, previous_bytes));
      previous = nullptr;
    }
  }
  CHECK(moves > 5);
  bool intact = true;
  for (std::uint64_t i = 0; i < numbers.size(); ++i) intact &= numbers[i] == i * 3;
  CHECK(intact);
  CHECK(lockbox_owns(numbers.data()) == 1);
}

TEST_CASE("lockbox::string keeps every secret byte in lockbox memory, for lengths 1 to 64") {
  auto* secret = static_cast<unsigned char*>(lockbox_malloc(64));
  for (std::size_t length = 1; length <= 64; ++length) {
    CAPTURE(length);
    randombytes_buf(secret, length);  // the only copy of the secret so far is in lockbox memory
    lockbox::string password(std::string_view(reinterpret_cast<char*>(secret), length));
    CHECK(password.size() == length);
    CHECK(std::memcmp(password.data(), secret, length) == 0);
    CHECK(heap().is_lockbox_memory(password.data()));
    CHECK(password.data()[length] == '\0');
    // Long enough to be unique: not one copy anywhere else in the process.
    if (length >= 8 && kCanScanProcess) CHECK(copies_outside_lockbox(secret, length) == 0);
    lockbox::string moved(std::move(password));
    CHECK(heap().is_lockbox_memory(moved.data()));
    moved.append(3, 'x');
    moved.shrink_to_fit();
    CHECK(heap().is_lockbox_memory(moved.data()));
  }
  // The scanner finds a copy where there is one (a plain std::string of the secret).
  randombytes_buf(secret, 32);
  if (kCanScanProcess) {
    std::string leaked(reinterpret_cast<char*>(secret), 32);
    CHECK(copies_outside_lockbox(secret, 32) >= 1);
    lockbox::memzero(leaked.data(), leaked.size());
  }
  // The control: std::basic_string with the same allocator keeps short strings in the object.
  using std_string = std::basic_string<char, std::char_traits<char>, lockbox::allocator<char>>;
  std_string short_one("hunter2");
  CHECK_FALSE(heap().is_lockbox_memory(short_one.data()));
  lockbox_free(secret);
}

TEST_CASE("lockbox::string behaves like a string") {
  lockbox::string s("correct");
  s += ' ';
  s += "horse";
  s.push_back('!');
  CHECK(std::string_view(s) == "correct horse!");
  CHECK(s.find("horse") == 8);
  CHECK(std::string_view(s.substr(0, 7)) == "correct");
  s.erase(7, 6);
  CHECK(std::string_view(s) == "correct!");
  s.pop_back();
  s.insert(0, ">");
  CHECK(std::string(s.c_str()) == ">correct");
  CHECK(s == lockbox::string(">correct"));
  CHECK(s != lockbox::string(">corrects"));
  s.assign("battery");
  CHECK(std::string_view(s) == "battery");
  s = std::string_view("staple");
  CHECK(s.size() == 6);
  CHECK(s.c_str()[6] == '\0');
  s.resize(3);
  CHECK(std::string_view(s) == "sta");
  s.clear();
  CHECK(s.empty());
  CHECK(s.c_str()[0] == '\0');
  CHECK_THROWS_AS(s.at(0), std::out_of_range);
}

TEST_CASE("the memory resource serves std::pmr containers from lockbox") {
  std::pmr::vector<int> numbers(lockbox::resource());
  for (int i = 0; i < 1000; ++i) numbers.push_back(i);
  CHECK(lockbox_owns(numbers.data()) == 1);
  CHECK(numbers[999] == 999);
  // Over-aligned requests keep their alignment (lockbox_aligned_alloc behind the resource).
  void* page_aligned = lockbox::resource()->allocate(100, 4096);
  CHECK(reinterpret_cast<std::uintptr_t>(page_aligned) % 4096 == 0);
  CHECK(lockbox_owns(page_aligned) == 1);
  lockbox::resource()->deallocate(page_aligned, 100, 4096);
  CHECK(lockbox::resource()->is_equal(*lockbox::resource()));
  CHECK_FALSE(lockbox::resource()->is_equal(*std::pmr::new_delete_resource()));
}

TEST_CASE("make_secret runs the destructor, then zeroes") {
  static int destroyed = 0;
  struct Key {
    unsigned char bytes[32];
    ~Key() { ++destroyed; }
  };
  auto key = lockbox::make_secret<Key>();
  std::memset(key->bytes, 0xab, sizeof key->bytes);
  const void* raw = lockbox_test::address_kept(key.get());
  CHECK(lockbox_owns(raw) == 1);
  key.reset();
  CHECK(destroyed == 1);
  CHECK(heap().freed_range_reads_zero(raw, sizeof(Key)));
}

TEST_CASE("allocation failure throws std::bad_alloc") {
  lockbox::allocator<char> allocator;
  CHECK_THROWS_AS((void)allocator.allocate(std::size_t{1} << 62), std::bad_alloc);
  CHECK_THROWS_AS((void)lockbox::allocator<std::uint64_t>().allocate(SIZE_MAX / 4), std::bad_alloc);
}

TEST_CASE("secret<T> is no-access at rest and its views open it as specified") {
  struct Key {
    unsigned char bytes[32];
  };
  lockbox::secret<Key> key;
  const void* address = nullptr;
  {
    auto writer = key.write();
    address = writer.get();
    CHECK(lockbox_test::page_protection(address) == "rw-");
    std::memset(writer->bytes, 7, sizeof writer->bytes);
    CHECK_THROWS_AS(key.read(), std::logic_error);   // a writer excludes readers
    CHECK_THROWS_AS(key.write(), std::logic_error);  // and other writers
  }
  CHECK(lockbox_test::page_protection(address) == "---");
  CHECK(lockbox_test::kernel_says_locked(address, sizeof(Key)));
  {
    auto first = key.read();
    CHECK(lockbox_test::page_protection(address) == "r--");
    {
      auto second = key.read();  // two readers at once
      CHECK(second->bytes[31] == 7);
    }
    CHECK(lockbox_test::page_protection(address) == "r--");  // the first one still reads
    CHECK(first->bytes[0] == 7);
    CHECK_THROWS_AS(key.write(), std::logic_error);
  }
  CHECK(lockbox_test::page_protection(address) == "---");
}

TEST_CASE("sealed<T>: views open the box by secret<T>'s rules, a write view seals what it holds") {
  struct Key {
    unsigned char bytes[32];
  };
  lockbox_stats before;
  lockbox_get_stats(&before, sizeof before);
  {
    lockbox::sealed<Key> key;  // zero
    {
      auto reader = key.read();
      for (unsigned char byte : reader->bytes) CHECK(byte == 0);
      CHECK_THROWS_AS(key.write(), std::logic_error);
      auto second = key.read();  // readers nest
      CHECK(second.get() == reader.get());
    }
    {
      auto writer = key.write();
      std::memset(writer->bytes, 9, sizeof writer->bytes);
      CHECK_THROWS_AS(key.read(), std::logic_error);
      CHECK_THROWS_AS(key.write(), std::logic_error);
      lockbox_stats open;
      lockbox_get_stats(&open, sizeof open);
      CHECK(open.open_sealed_boxes == before.open_sealed_boxes + 1);
    }
    CHECK(key.read()->bytes[31] == 9);
    lockbox::sealed<Key> moved = std::move(key);
    CHECK(moved.read()->bytes[0] == 9);
    lockbox_stats during;
    lockbox_get_stats(&during, sizeof during);
    CHECK(during.sealed_boxes == before.sealed_boxes + 1);
    CHECK(during.open_sealed_boxes == before.open_sealed_boxes);
  }
  lockbox_stats after;
  lockbox_get_stats(&after, sizeof after);
  CHECK(after.sealed_boxes == before.sealed_boxes);
}

TEST_CASE("sealed_string: read, write in place, assign, and the rules") {
  lockbox::sealed_string password("correct horse");
  CHECK(password.size() == 13);
  {
    auto text = password.read();
    CHECK(std::string_view(text) == "correct horse");
    CHECK(text.c_str()[13] == '\0');
    CHECK_THROWS_AS(password.assign("other"), std::logic_error);
  }
  {
    auto text = password.write();
    text[0] = 'C';
  }
  CHECK(std::string_view(password.read()) == "Correct horse");
  password.assign("battery staple and more");
  CHECK(password.size() == 23);
  CHECK(std::string_view(password.read()) == "battery staple and more");
  lockbox::sealed_string empty;
  CHECK(empty.empty());
  CHECK(std::string_view(empty.read()).empty());
}

TEST_CASE("guarded secrets: protection, free whatever the protection, realloc, bad input") {
  auto* secret = static_cast<unsigned char*>(lockbox_guarded_alloc(100));
  REQUIRE(secret != nullptr);
  std::memset(secret, 0x42, 100);
  CHECK(lockbox_protect(secret, LOCKBOX_NOACCESS) == 0);
  CHECK(lockbox_test::page_protection(secret) == "---");
  CHECK(lockbox_protect(secret, LOCKBOX_READONLY) == 0);
  CHECK(lockbox_test::page_protection(secret) == "r--");
  CHECK(lockbox_protect(secret, LOCKBOX_NOACCESS) == 0);
  auto* moved = static_cast<unsigned char*>(lockbox_realloc(secret, 5000));
  REQUIRE(moved != nullptr);
  CHECK(moved[99] == 0x42);
  CHECK(lockbox_test::page_protection(moved) == "rw-");
  CHECK(lockbox_protect(moved, LOCKBOX_NOACCESS) == 0);
  lockbox_free(moved);  // no-access, and still freed (and zeroed) cleanly
  void* ordinary = lockbox_malloc(10);
  errno = 0;
  CHECK(lockbox_protect(ordinary, LOCKBOX_READONLY) == -1);
  CHECK(errno == EINVAL);
  errno = 0;
  CHECK(lockbox_protect(ordinary, static_cast<lockbox_protection>(9)) == -1);
  CHECK(errno == EINVAL);
  lockbox_free(ordinary);
}

TEST_CASE("a guarded secret ends at its guard page, aligned as its size allows") {
  // Expected alignment: the largest power of two dividing the size, up to 16.
  for (std::size_t size : {1, 17, 24, 100, 4095, 4096, 5000, 65536}) {
    CAPTURE(size);
    auto* secret = static_cast<unsigned char*>(lockbox_guarded_alloc(size));
    REQUIRE(secret != nullptr);
    auto address = reinterpret_cast<std::uintptr_t>(secret);
    CHECK((address + size) % 4096 == 0);  // no slack: the next byte is the guard page
    std::size_t natural = size & (~size + 1);
    CHECK(address % (natural < 16 ? natural : 16) == 0);
    CHECK(lockbox_test::page_protection(secret + size) == "---");
    CHECK(lockbox_usable_size(secret) == size);
    std::memset(secret, 0x5a, size);
    lockbox_free(secret);
  }
}

TEST_CASE("memeq and memzero") {
  unsigned char a[16], b[16];
  std::memset(a, 1, sizeof a);
  std::memset(b, 1, sizeof b);
  CHECK(lockbox::memeq(a, b, sizeof a));
  b[15] = 2;
  CHECK_FALSE(lockbox::memeq(a, b, sizeof a));
  lockbox::memzero(a, sizeof a);
  for (unsigned char byte : a) CHECK(byte == 0);
}
