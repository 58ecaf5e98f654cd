// A real core dump of a crashing child: it holds a marker the child put in ordinary heap memory
// (so the core really contains the heap), and not the markers it put in lockbox memory.
#include <lockbox/lockbox.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>

#include "support/check.hpp"

namespace {

// Markers are stored XOR-ed so that the plain text exists nowhere in the child: not in the
// binary, not on its stack. Only the parent decodes them, after the child is dead.
constexpr unsigned char kKey = 0x5a;
constexpr char kHeapMarker[] = "HEAP-MARKER-4c1d8e-plain-malloc-memory-present";
constexpr char kSmallMarker[] = "LOCKBOX-SMALL-SECRET-93f0a2-must-not-be-in-core";
constexpr char kLargeMarker[] = "LOCKBOX-LARGE-SECRET-17be55-must-not-be-in-core";

template <std::size_t N>
struct Encoded {
  unsigned char bytes[N - 1];
};
template <std::size_t N>
constexpr Encoded<N> encode(const char (&text)[N]) {
  Encoded<N> out{};
  for (std::size_t i = 0; i + 1 < N; ++i) out.bytes[i] = static_cast<unsigned char>(text[i]) ^ kKey;
  return out;
}
// Only the encoded forms are odr-used by the child.
constexpr auto kHeapEncoded = encode(kHeapMarker);
constexpr auto kSmallEncoded = encode(kSmallMarker);
constexpr auto kLargeEncoded = encode(kLargeMarker);

template <typename Encoded>
__attribute__((noinline)) void write_decoded(volatile unsigned char* out, const Encoded& in) {
  for (std::size_t i = 0; i < sizeof in.bytes; ++i) out[i] = in.bytes[i] ^ kKey;
}

template <typename Encoded>
std::string decode(const Encoded& in) {
  std::string text;
  for (unsigned char c : in.bytes) text.push_back(static_cast<char>(c ^ kKey));
  return text;
}

[[noreturn]] void crash_with_secrets(const char* directory) {
  if (chdir(directory) != 0) _exit(10);
  struct rlimit unlimited {
    RLIM_INFINITY, RLIM_INFINITY
  };
  if (setrlimit(RLIMIT_CORE, &unlimited) != 0) _exit(11);
  prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  auto* heap = static_cast<unsigned char*>(std::malloc(128));
  auto* small_secret = static_cast<unsigned char*>(lockbox_malloc(128));
  auto* large_secret = static_cast<unsigned char*>(lockbox_malloc(64 * 1024));
  if (heap == nullptr || small_secret == nullptr || large_secret == nullptr) _exit(12);
  write_decoded(heap, kHeapEncoded);
  write_decoded(small_secret, kSmallEncoded);
  write_decoded(large_secret + 4096, kLargeEncoded);
  std::abort();
}

std::string read_core(const std::string& directory) {
  std::string contents;
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return contents;
  while (dirent* entry = readdir(dir)) {
    if (std::strncmp(entry->d_name, "core", 4) != 0) continue;
    std::string path = directory + "/" + entry->d_name;
    std::ifstream file(path, std::ios::binary);
    contents.assign(std::istreambuf_iterator<char>(file), std::istreambuf_iterator<char>());
    std::remove(path.c_str());
  }
  closedir(dir);
  return contents;
}

}  // namespace

int main() {
  std::ifstream pattern_file("/proc/sys/kernel/core_pattern");
  std::string pattern;
  std::getline(pattern_file, pattern);
  if (pattern.empty() || pattern[0] == '|' || pattern[0] == '/') {
    std::printf("SKIP: core_pattern is '%s'; this test needs cores in the working directory\n",
                pattern.c_str());
    return 77;
  }
  char directory[] = "/tmp/lockbox-core-XXXXXX";
  CHECK(mkdtemp(directory) != nullptr);

  pid_t pid = fork();
  if (pid == 0) crash_with_secrets(directory);
  int status = 0;
  CHECK(waitpid(pid, &status, 0) == pid);
  CHECK_MESSAGE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && WCOREDUMP(status),
                "child status 0x%x", status);

  std::string core = read_core(directory);
  rmdir(directory);
  std::printf("core file: %zu bytes\n", core.size());
  CHECK(core.size() > 0);
  CHECK_MESSAGE(core.find(decode(kHeapEncoded)) != std::string::npos,
                "the heap marker is missing: the core proves nothing");
  CHECK_MESSAGE(core.find(decode(kSmallEncoded)) == std::string::npos,
                "a small lockbox secret is in the core dump");
  CHECK_MESSAGE(core.find(decode(kLargeEncoded)) == std::string::npos,
                "a large lockbox secret is in the core dump");
  return lockbox_test::finish();
}
