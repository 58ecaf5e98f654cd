// SPDX-License-Identifier: ISC
// Runs a fuzz target over files and directories of inputs without a fuzzing engine, so that
// every build replays the seed corpus as a regression test.
#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

int run_file(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::vector<char> bytes((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  return 1;
}

int run_path(const std::string& path) {
  struct stat info {};
  if (stat(path.c_str(), &info) != 0) {
    std::fprintf(stderr, "cannot read %s\n", path.c_str());
    return -1;
  }
  if (!S_ISDIR(info.st_mode)) return run_file(path);
  int count = 0;
  DIR* dir = opendir(path.c_str());
  while (dirent* entry = readdir(dir)) {
    if (entry->d_name[0] == '.') continue;
    int ran = run_path(path + "/" + entry->d_name);
    if (ran < 0) return ran;
    count += ran;
  }
  closedir(dir);
  return count;
}

}  // namespace

int main(int argc, char** argv) {
  int total = 0;
  for (int i = 1; i < argc; ++i) {
    int ran = run_path(argv[i]);
    if (ran < 0) return 1;
    total += ran;
  }
  if (total == 0) {
    std::fprintf(stderr, "no inputs\n");
    return 1;
  }
  // A failing input aborts before this line.
  std::printf("%d passed, 0 failed\n", total);
  return 0;
}
