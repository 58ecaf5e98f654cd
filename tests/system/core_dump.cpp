// SPDX-License-Identifier: ISC
// A real core dump of a crashing child: it holds a marker the child put in ordinary heap memory
// (so the core really contains the heap), and not the markers it put in lockbox memory.
#include <lockbox/lockbox.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "support/check.hpp"
#include "support/core_dump.hpp"
#include "support/marker.hpp"

namespace {

using lockbox_test::decode_marker;
using lockbox_test::encode_marker;
using lockbox_test::write_decoded;

// Only the encoded forms are odr-used by the child.
constexpr auto kHeapEncoded = encode_marker("HEAP-MARKER-4c1d8e-plain-malloc-memory-present");
constexpr auto kSmallEncoded = encode_marker("LOCKBOX-SMALL-SECRET-93f0a2-must-not-be-in-core");
constexpr auto kLargeEncoded = encode_marker("LOCKBOX-LARGE-SECRET-17be55-must-not-be-in-core");

[[noreturn]] void crash_with_secrets(const char* directory) {
  if (!lockbox_test::prepare_to_dump_core(directory)) _exit(10);
  auto* heap = static_cast<unsigned char*>(std::malloc(128));
  auto* small_secret = static_cast<unsigned char*>(lockbox_malloc(128));
  auto* large_secret = static_cast<unsigned char*>(lockbox_malloc(64 * 1024));
  if (heap == nullptr || small_secret == nullptr || large_secret == nullptr) _exit(12);
  write_decoded(heap, kHeapEncoded);
  write_decoded(small_secret, kSmallEncoded);
  write_decoded(large_secret + 4096, kLargeEncoded);
  std::abort();
}

}  // namespace

int main() {
  if (!lockbox_test::cores_land_in_working_directory()) return 77;
  std::string core = lockbox_test::core_of_crashing_child(&crash_with_secrets);
  CHECK(core.size() > 0);
  CHECK_MESSAGE(core.find(decode_marker(kHeapEncoded)) != std::string::npos,
                "the heap marker is missing: the core proves nothing");
  CHECK_MESSAGE(core.find(decode_marker(kSmallEncoded)) == std::string::npos,
                "a small lockbox secret is in the core dump");
  CHECK_MESSAGE(core.find(decode_marker(kLargeEncoded)) == std::string::npos,
                "a large lockbox secret is in the core dump");
  return lockbox_test::finish();
}
