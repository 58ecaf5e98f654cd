// SPDX-License-Identifier: ISC
// Markers for tests that look for a secret in memory or in a core file: the plain text exists
// only XOR-ed in the binary (not in it, not on the stack), is decoded straight into the memory
// under test, and is searched for only by the process that does not hold it (or as its encoded
// form).
#pragma once

#include <cstddef>
#include <string>

namespace lockbox_test {

inline constexpr unsigned char kMarkerKey = 0x5a;

template <std::size_t N>
struct EncodedMarker {
  unsigned char bytes[N - 1];
  static constexpr std::size_t size() { return N - 1; }
};

template <std::size_t N>
constexpr EncodedMarker<N> encode_marker(const char (&text)[N]) {
  EncodedMarker<N> out{};
  for (std::size_t i = 0; i + 1 < N; ++i) {
    out.bytes[i] = static_cast<unsigned char>(text[i]) ^ kMarkerKey;
  }
  return out;
}

template <typename Encoded>
__attribute__((noinline)) void write_decoded(volatile unsigned char* out, const Encoded& in) {
  for (std::size_t i = 0; i < sizeof in.bytes; ++i) out[i] = in.bytes[i] ^ kMarkerKey;
}

template <typename Encoded>
std::string decode_marker(const Encoded& in) {
  std::string text;
  for (unsigned char c : in.bytes) text.push_back(static_cast<char>(c ^ kMarkerKey));
  return text;
}

}  // namespace lockbox_test
