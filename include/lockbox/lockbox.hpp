// SPDX-License-Identifier: ISC
// lockbox for C++17 and later: standard-library containers, smart pointers and RAII types over
// the C API in lockbox.h, keeping every byte of a secret in lockbox memory. Failures throw:
// std::bad_alloc for allocation, std::system_error (errno and lockbox_last_error()) for the
// rest, std::logic_error for misuse of a secret's views.
//
//   #include <lockbox/lockbox.hpp>     and     pkg-config --cflags --libs lockbox
#ifndef LOCKBOX_LOCKBOX_HPP
#define LOCKBOX_LOCKBOX_HPP

#include <lockbox/lockbox.h>

#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
// libc++ before 16 (clang 14's) has no <memory_resource>: lockbox::memory_resource is then
// left out, and LOCKBOX_HAS_MEMORY_RESOURCE says which.
#if __has_include(<memory_resource>)
#include <memory_resource>
#define LOCKBOX_HAS_MEMORY_RESOURCE 1
#endif
#include <mutex>
#include <new>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace lockbox {

namespace detail {
[[noreturn]] inline void throw_lock_error() {
  throw std::system_error(errno, std::generic_category(), lockbox_last_error());
}
// Where a failure cannot be thrown (destructors, noexcept ends of a view) and carrying on would
// leave a secret readable or unzeroed: say why and stop, never continue quietly.
inline void or_abort(int result, const char* what) noexcept {
  if (result == 0) return;
  std::fprintf(stderr, "lockbox: %s failed: %s\n", what, lockbox_last_error());
  std::abort();
}
}  // namespace detail

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

// Constant-time comparison of two byte ranges of the same length.
inline bool memeq(const void* a, const void* b, std::size_t length) noexcept {
  return lockbox_memeq(a, b, length) == 1;
}
// Zeroing the compiler cannot remove.
inline void memzero(void* pointer, std::size_t length) noexcept {
  lockbox_memzero(pointer, length);
}

// ---------------------------------------------------------------------------------------------
// Allocator, containers and memory resource
// ---------------------------------------------------------------------------------------------

// A conforming allocator: every element lives in locked lockbox memory and is zeroed when the
// container gives it back. All instances are interchangeable (stateless).
template <typename T>
class allocator {
 public:
  using value_type = T;
  using size_type = std::size_t;
  using difference_type = std::ptrdiff_t;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;
  using is_always_equal = std::true_type;
  template <typename U>
  struct rebind {
    using other = allocator<U>;
  };

  allocator() noexcept = default;
  template <typename U>
  allocator(const allocator<U>&) noexcept {}

  [[nodiscard]] T* allocate(std::size_t count) {
    if (count > std::numeric_limits<std::size_t>::max() / sizeof(T))
      throw std::bad_array_new_length();
    void* pointer = alignof(T) > 16 ? lockbox_aligned_alloc(alignof(T), count * sizeof(T))
                                    : lockbox_malloc(count * sizeof(T));
    if (pointer == nullptr) throw std::bad_alloc();
    return static_cast<T*>(pointer);
  }
  void deallocate(T* pointer, std::size_t) noexcept { lockbox_free(pointer); }

  template <typename U>
  bool operator==(const allocator<U>&) const noexcept {
    return true;
  }
  template <typename U>
  bool operator!=(const allocator<U>&) const noexcept {
    return false;
  }
};

template <typename T>
using vector = std::vector<T, allocator<T>>;

// A string whose characters are never stored in the string object itself. std::basic_string
// keeps short strings (up to 15 characters in libstdc++) inside the object, on the stack or
// wherever the object lives, so even with lockbox::allocator a short password would leave
// lockbox memory. lockbox::string keeps every character, and the terminating NUL, in a
// lockbox::vector.
class string {
 public:
  using value_type = char;
  using size_type = std::size_t;
  using iterator = char*;
  using const_iterator = const char*;
  static constexpr size_type npos = static_cast<size_type>(-1);

  string() { bytes_.push_back('\0'); }
  string(const char* text) : string(std::string_view(text)) {}
  // One allocation of the final size, zero-filled (so the NUL is there), then the characters:
  // nothing to relocate. (reserve() on the empty vector made GCC 12 warn, wrongly, that the
  // relocation of its no elements overflowed the new block: -Wstringop-overflow at -O3.)
  string(std::string_view text) : bytes_(text.size() + 1) {
    if (!text.empty()) std::memcpy(bytes_.data(), text.data(), text.size());
  }
  string(size_type count, char c) : bytes_(count + 1, c) { bytes_.back() = '\0'; }
  string(const string&) = default;
  string(string&& other) noexcept : bytes_(std::move(other.bytes_)) { other.reset_to_empty(); }
  string& operator=(const string&) = default;
  string& operator=(string&& other) noexcept {
    bytes_ = std::move(other.bytes_);
    other.reset_to_empty();
    return *this;
  }
  string& operator=(std::string_view text) { return assign(text); }

  const char* c_str() const noexcept { return bytes_.data(); }
  const char* data() const noexcept { return bytes_.data(); }
  char* data() noexcept { return bytes_.data(); }
  size_type size() const noexcept { return bytes_.size() - 1; }
  size_type length() const noexcept { return size(); }
  bool empty() const noexcept { return size() == 0; }
  size_type capacity() const noexcept { return bytes_.capacity() - 1; }
  char& operator[](size_type i) noexcept { return bytes_[i]; }
  const char& operator[](size_type i) const noexcept { return bytes_[i]; }
  char& at(size_type i) {
    if (i >= size()) throw std::out_of_range("lockbox::string::at");
    return bytes_[i];
  }
  const char& at(size_type i) const {
    if (i >= size()) throw std::out_of_range("lockbox::string::at");
    return bytes_[i];
  }
  char& back() noexcept { return bytes_[size() - 1]; }
  char* begin() noexcept { return data(); }
  char* end() noexcept { return data() + size(); }
  const char* begin() const noexcept { return data(); }
  const char* end() const noexcept { return data() + size(); }
  operator std::string_view() const noexcept { return {data(), size()}; }

  string& assign(std::string_view text) {
    bytes_.assign(text.begin(), text.end());
    bytes_.push_back('\0');
    return *this;
  }
  string& append(std::string_view text) {
    bytes_.pop_back();
    bytes_.insert(bytes_.end(), text.begin(), text.end());
    bytes_.push_back('\0');
    return *this;
  }
  string& append(size_type count, char c) {
    bytes_.pop_back();
    bytes_.insert(bytes_.end(), count, c);
    bytes_.push_back('\0');
    return *this;
  }
  string& operator+=(std::string_view text) { return append(text); }
  string& operator+=(char c) {
    push_back(c);
    return *this;
  }
  void push_back(char c) {
    bytes_.back() = c;
    bytes_.push_back('\0');
  }
  void pop_back() noexcept {
    bytes_.pop_back();
    bytes_.back() = '\0';
  }
  void clear() noexcept { bytes_.assign(1, '\0'); }
  // Shrinking cuts before the NUL and never allocates. Growing builds the new buffer at its
  // final size (zero-filled, so the NUL is there) and copies: vector's own insert would do the
  // same, but GCC 12 (-O3) wrongly reports its relocation as an overflow (-Wstringop-overflow).
  void resize(size_type count, char c = '\0') {
    if (count <= size()) {
      bytes_.erase(bytes_.begin() + static_cast<std::ptrdiff_t>(count), bytes_.end() - 1);
      return;
    }
    vector<char> grown(count + 1);
    std::memcpy(grown.data(), bytes_.data(), size());
    std::memset(grown.data() + size(), c, count - size());
    bytes_.swap(grown);  // the old buffer is zeroed as it goes back to lockbox
  }
  void reserve(size_type count) { bytes_.reserve(count + 1); }
  void shrink_to_fit() { bytes_.shrink_to_fit(); }
  string& erase(size_type position, size_type count = npos) {
    if (position > size()) throw std::out_of_range("lockbox::string::erase");
    if (count > size() - position) count = size() - position;
    bytes_.erase(bytes_.begin() + static_cast<std::ptrdiff_t>(position),
                 bytes_.begin() + static_cast<std::ptrdiff_t>(position + count));
    return *this;
  }
  string& insert(size_type position, std::string_view text) {
    if (position > size()) throw std::out_of_range("lockbox::string::insert");
    bytes_.insert(bytes_.begin() + static_cast<std::ptrdiff_t>(position), text.begin(), text.end());
    return *this;
  }
  string substr(size_type position, size_type count = npos) const {
    return string(std::string_view(*this).substr(position, count));
  }
  size_type find(std::string_view text, size_type position = 0) const noexcept {
    return std::string_view(*this).find(text, position);
  }
  int compare(std::string_view other) const noexcept {
    return std::string_view(*this).compare(other);
  }

  // Constant time in the contents for strings of equal length (the length itself is not secret).
  friend bool operator==(const string& a, const string& b) noexcept {
    return a.size() == b.size() && memeq(a.data(), b.data(), a.size());
  }
  friend bool operator!=(const string& a, const string& b) noexcept { return !(a == b); }

 private:
  void reset_to_empty() noexcept {
    try {
      bytes_.assign(1, '\0');
    } catch (...) {
      // An empty moved-from string needs one byte; without memory it stays without buffer.
    }
  }
  vector<char> bytes_;
};

#ifdef LOCKBOX_HAS_MEMORY_RESOURCE
// A std::pmr::memory_resource over lockbox, for std::pmr containers.
class memory_resource : public std::pmr::memory_resource {
 private:
  void* do_allocate(std::size_t bytes, std::size_t alignment) override {
    void* pointer = lockbox_aligned_alloc(alignment < 16 ? 16 : alignment, bytes);
    if (pointer == nullptr) throw std::bad_alloc();
    return pointer;
  }
  void do_deallocate(void* pointer, std::size_t, std::size_t) override { lockbox_free(pointer); }
  bool do_is_equal(const std::pmr::memory_resource& other) const noexcept override {
    return dynamic_cast<const memory_resource*>(&other) != nullptr;
  }
};

// The process-wide lockbox memory resource.
inline memory_resource* resource() noexcept {
  static memory_resource instance;
  return &instance;
}
#endif

// ---------------------------------------------------------------------------------------------
// Owning pointers
// ---------------------------------------------------------------------------------------------

// Runs the destructor, then zeroes and frees the memory.
template <typename T>
struct secret_deleter {
  void operator()(T* pointer) const noexcept {
    if (pointer == nullptr) return;
    pointer->~T();
    lockbox_free(pointer);  // zeroes the whole block
  }
};

template <typename T>
using unique_ptr = std::unique_ptr<T, secret_deleter<T>>;

// Constructs a T in lockbox memory.
template <typename T, typename... Args>
unique_ptr<T> make_secret(Args&&... args) {
  static_assert(!std::is_array_v<T>, "use lockbox::vector for arrays");
  void* memory =
      alignof(T) > 16 ? lockbox_aligned_alloc(alignof(T), sizeof(T)) : lockbox_malloc(sizeof(T));
  if (memory == nullptr) throw std::bad_alloc();
  try {
    return unique_ptr<T>(new (memory) T(std::forward<Args>(args)...));
  } catch (...) {
    lockbox_free(memory);
    throw;
  }
}

// ---------------------------------------------------------------------------------------------
// Guarded secrets
// ---------------------------------------------------------------------------------------------

// A T on its own locked pages between guard pages, no-access at rest. read() and write() return
// views that open the pages only while they live: any number of readers at once (read-only),
// or one writer (read-write) and no reader. A view that would break that rule throws
// std::logic_error, the way Rust's RefCell panics. Views must not outlive the secret.
template <typename T>
class secret {
  static_assert(std::is_nothrow_destructible_v<T>, "a secret's destructor must not throw");

 public:
  template <typename... Args>
  explicit secret(Args&&... args) {
    memory_ = lockbox_guarded_alloc(sizeof(T));
    if (memory_ == nullptr) throw std::bad_alloc();
    try {
      new (memory_) T(std::forward<Args>(args)...);
    } catch (...) {
      lockbox_free(memory_);
      throw;
    }
    set_protection(LOCKBOX_NOACCESS);
  }
  ~secret() {
    detail::or_abort(lockbox_protect(memory_, LOCKBOX_READWRITE), "opening a secret to destroy it");
    static_cast<T*>(memory_)->~T();
    lockbox_free(memory_);  // zeroes it
  }
  secret(const secret&) = delete;
  secret& operator=(const secret&) = delete;

  class read_view {
   public:
    const T& operator*() const noexcept { return *owner_->value(); }
    const T* operator->() const noexcept { return owner_->value(); }
    const T* get() const noexcept { return owner_->value(); }
    ~read_view() {
      if (owner_ != nullptr) owner_->end_read();
    }
    read_view(read_view&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    read_view(const read_view&) = delete;
    read_view& operator=(const read_view&) = delete;

   private:
    friend class secret;
    explicit read_view(const secret* owner) : owner_(owner) {}
    const secret* owner_;
  };

  class write_view {
   public:
    T& operator*() const noexcept { return *owner_->value(); }
    T* operator->() const noexcept { return owner_->value(); }
    T* get() const noexcept { return owner_->value(); }
    ~write_view() {
      if (owner_ != nullptr) owner_->end_write();
    }
    write_view(write_view&& other) noexcept : owner_(std::exchange(other.owner_, nullptr)) {}
    write_view(const write_view&) = delete;
    write_view& operator=(const write_view&) = delete;

   private:
    friend class secret;
    explicit write_view(secret* owner) : owner_(owner) {}
    secret* owner_;
  };

  read_view read() const {
    std::lock_guard<std::mutex> guard(mutex_);
    if (writing_) throw std::logic_error("lockbox::secret: read() while a write view is open");
    if (readers_++ == 0) set_protection(LOCKBOX_READONLY);
    return read_view(this);
  }

  write_view write() {
    std::lock_guard<std::mutex> guard(mutex_);
    if (writing_ || readers_ != 0) {
      throw std::logic_error("lockbox::secret: write() while another view is open");
    }
    writing_ = true;
    set_protection(LOCKBOX_READWRITE);
    return write_view(this);
  }

 private:
  T* value() const noexcept { return static_cast<T*>(memory_); }
  void set_protection(lockbox_protection protection) const {
    if (lockbox_protect(memory_, protection) != 0) detail::throw_lock_error();
  }
  void end_read() const noexcept {
    std::lock_guard<std::mutex> guard(mutex_);
    if (--readers_ == 0) {
      detail::or_abort(lockbox_protect(memory_, LOCKBOX_NOACCESS),
                       "closing a secret after reading");
    }
  }
  void end_write() noexcept {
    std::lock_guard<std::mutex> guard(mutex_);
    writing_ = false;
    detail::or_abort(lockbox_protect(memory_, LOCKBOX_NOACCESS), "closing a secret after writing");
  }

  void* memory_ = nullptr;
  mutable std::mutex mutex_;
  mutable std::size_t readers_ = 0;
  bool writing_ = false;
};

// ---------------------------------------------------------------------------------------------
// Sealed secrets
// ---------------------------------------------------------------------------------------------

namespace detail {
// A sealed-box call failed: EBUSY is a broken view rule (std::logic_error, as for secret<T>),
// ENOMEM std::bad_alloc, anything else std::system_error.
[[noreturn]] inline void throw_sealed_error(const char* rule) {
  if (errno == EBUSY) throw std::logic_error(rule);
  if (errno == ENOMEM) throw std::bad_alloc();
  throw std::system_error(errno, std::generic_category(), lockbox_last_error());
}

// Owns one box; the views below open and close it.
class sealed_box {
 public:
  sealed_box(const void* data, std::size_t size) : box_(lockbox_seal(data, size)) {
    if (box_ == nullptr) throw_sealed_error("lockbox::sealed: cannot seal");
  }
  ~sealed_box() { lockbox_sealed_free(box_); }
  sealed_box(sealed_box&& other) noexcept : box_(std::exchange(other.box_, nullptr)) {}
  sealed_box& operator=(sealed_box&& other) noexcept {
    std::swap(box_, other.box_);
    return *this;
  }
  sealed_box(const sealed_box&) = delete;
  sealed_box& operator=(const sealed_box&) = delete;

  std::size_t size() const noexcept { return box_ == nullptr ? 0 : lockbox_sealed_size(box_); }
  const void* open_read() const {
    const void* view = lockbox_sealed_open(box_);
    if (view == nullptr) throw_sealed_error("lockbox::sealed: read() while a write view is open");
    return view;
  }
  void* open_write() {
    void* view = lockbox_sealed_open_rw(box_);
    if (view == nullptr) throw_sealed_error("lockbox::sealed: write() while another view is open");
    return view;
  }
  void close(const void* view) const noexcept { lockbox_sealed_close(box_, view); }

 private:
  lockbox_sealed* box_;
};

// A view that closes its box when it goes: V is `const T` for reading, `T` for writing.
template <typename V>
class sealed_view {
 public:
  V& operator*() const noexcept { return *value_; }
  V* operator->() const noexcept { return value_; }
  V* get() const noexcept { return value_; }
  ~sealed_view() {
    if (box_ != nullptr) box_->close(value_);
  }
  sealed_view(sealed_view&& other) noexcept
      : box_(std::exchange(other.box_, nullptr)), value_(other.value_) {}
  sealed_view(const sealed_view&) = delete;
  sealed_view& operator=(const sealed_view&) = delete;
  sealed_view(const sealed_box* box, V* value) noexcept : box_(box), value_(value) {}

 private:
  const sealed_box* box_;
  V* value_;
};
}  // namespace detail

// A T kept encrypted in lockbox memory (lockbox_seal): its plaintext exists only while a view
// from read() or write() lives. The rules and errors are secret<T>'s: any number of readers, or
// one writer; a view that would break that throws std::logic_error. A write view seals what it
// holds when it goes. Views must not outlive the sealed object.
template <typename T>
class sealed {
  static_assert(std::is_trivially_copyable_v<T>, "a sealed value is copied as bytes");
  static_assert(alignof(T) <= 16, "views are aligned to 16 bytes");

 public:
  // A zero-initialised T: write() it in place to keep its plaintext out of the caller's memory.
  sealed() : sealed(T{}) {}
  // Seals a copy of `value`; `value` itself stays the caller's to wipe.
  explicit sealed(const T& value) : box_(&value, sizeof(T)) {}

  using read_view = detail::sealed_view<const T>;
  using write_view = detail::sealed_view<T>;
  read_view read() const { return read_view(&box_, static_cast<const T*>(box_.open_read())); }
  write_view write() { return write_view(&box_, static_cast<T*>(box_.open_write())); }

 private:
  detail::sealed_box box_;
};

// A string kept encrypted in lockbox memory. read() gives a NUL-terminated view; write() gives
// the characters to change in place (the length is fixed); assign() seals a new text.
class sealed_string {
 public:
  sealed_string() : sealed_string(std::string_view()) {}
  explicit sealed_string(std::string_view text) : box_(seal(text)) {}

  // C is `const char` for reading, `char` for writing.
  template <typename C>
  class text_view {
   public:
    C* data() const noexcept { return text_; }
    std::size_t size() const noexcept { return size_; }
    C& operator[](std::size_t i) const noexcept { return text_[i]; }
    operator std::string_view() const noexcept { return {text_, size_}; }
    // NUL-terminated (the NUL is sealed with the text).
    const char* c_str() const noexcept { return text_; }
    ~text_view() {
      if (box_ != nullptr) box_->close(text_);
    }
    text_view(text_view&& other) noexcept
        : box_(std::exchange(other.box_, nullptr)), text_(other.text_), size_(other.size_) {}
    text_view(const text_view&) = delete;
    text_view& operator=(const text_view&) = delete;

   private:
    friend class sealed_string;
    text_view(const detail::sealed_box* box, C* text, std::size_t size) noexcept
        : box_(box), text_(text), size_(size) {}
    const detail::sealed_box* box_;
    C* text_;
    std::size_t size_;
  };
  using read_view = text_view<const char>;
  using write_view = text_view<char>;

  std::size_t size() const noexcept { return box_.size() - 1; }
  bool empty() const noexcept { return size() == 0; }
  read_view read() const {
    return read_view(&box_, static_cast<const char*>(box_.open_read()), size());
  }
  write_view write() {
    return write_view(&box_, static_cast<char*>(box_.open_write()), size());
  }
  // Seals `text` in place of the old contents; throws std::logic_error while a view is open.
  void assign(std::string_view text) {
    detail::sealed_box fresh = seal(text);
    box_.close(box_.open_write());  // throws if any view is open; the old box is untouched
    box_ = std::move(fresh);        // `fresh` now holds the old box and frees it
  }

 private:
  // The text and its NUL, copied straight into a lockbox buffer, then sealed from there.
  static detail::sealed_box seal(std::string_view text) {
    vector<char> plain(text.begin(), text.end());
    plain.push_back('\0');
    return detail::sealed_box(plain.data(), plain.size());
  }
  detail::sealed_box box_;
};

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
  ~locked_buffer() { detail::or_abort(lockbox_unlock_and_zero(bytes_, N), "unlocking a buffer"); }
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
