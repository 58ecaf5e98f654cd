// lockbox for C++: RAII types over the C API in lockbox.h. Failures throw: std::bad_alloc for
// allocation, std::system_error (errno and lockbox_last_error()) for locking.
#ifndef LOCKBOX_LOCKBOX_HPP
#define LOCKBOX_LOCKBOX_HPP

#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstddef>
#include <system_error>
#include <utility>

namespace lockbox {

namespace detail {
[[noreturn]] inline void throw_lock_error() {
  throw std::system_error(errno, std::generic_category(), lockbox_last_error());
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Locking memory lockbox did not allocate
// ---------------------------------------------------------------------------------------------

// Keeps [address, address + length) locked (nested with every other lock on the same pages)
// for its lifetime. Zeroes nothing: the memory is the caller's.
class locked_range {
 public:
  locked_range(const void* address, std::size_t length) : address_(address), length_(length) {
    if (lockbox_lock(address_, length_) != 0) detail::throw_lock_error();
  }
  ~locked_range() {
    if (length_ != 0) lockbox_unlock(address_, length_);
  }
  locked_range(locked_range&& other) noexcept
      : address_(other.address_), length_(std::exchange(other.length_, 0)) {}
  locked_range& operator=(locked_range&&) = delete;
  locked_range(const locked_range&) = delete;
  locked_range& operator=(const locked_range&) = delete;

  const void* address() const noexcept { return address_; }
  std::size_t length() const noexcept { return length_; }

 private:
  const void* address_;
  std::size_t length_;
};

// A buffer (typically on the stack, for a passphrase being typed) that is locked for its whole
// lifetime and zeroed before it is unlocked.
template <std::size_t N>
class locked_buffer {
  static_assert(N > 0, "an empty buffer holds no secret");

 public:
  locked_buffer() {
    if (lockbox_lock(bytes_, N) != 0) detail::throw_lock_error();
  }
  ~locked_buffer() { lockbox_unlock_and_zero(bytes_, N); }
  locked_buffer(const locked_buffer&) = delete;
  locked_buffer& operator=(const locked_buffer&) = delete;

  unsigned char* data() noexcept { return bytes_; }
  const unsigned char* data() const noexcept { return bytes_; }
  static constexpr std::size_t size() noexcept { return N; }
  unsigned char& operator[](std::size_t i) noexcept { return bytes_[i]; }
  const unsigned char& operator[](std::size_t i) const noexcept { return bytes_[i]; }

 private:
  alignas(16) unsigned char bytes_[N] = {};
};

}  // namespace lockbox

#endif  // LOCKBOX_LOCKBOX_HPP
