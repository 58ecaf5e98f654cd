// SPDX-License-Identifier: ISC
#include "support/core_dump.hpp"

#include <dirent.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>

namespace lockbox_test {

bool cores_land_in_working_directory() {
  std::ifstream pattern_file("/proc/sys/kernel/core_pattern");
  std::string pattern;
  std::getline(pattern_file, pattern);
  if (pattern.empty() || pattern[0] == '|' || pattern[0] == '/') {
    std::printf("SKIP: core_pattern is '%s'; this test needs cores in the working directory\n",
                pattern.c_str());
    return false;
  }
  return true;
}

bool prepare_to_dump_core(const char* directory) {
  if (chdir(directory) != 0) return false;
  struct rlimit unlimited {
    RLIM_INFINITY, RLIM_INFINITY
  };
  if (setrlimit(RLIMIT_CORE, &unlimited) != 0) return false;
  return prctl(PR_SET_DUMPABLE, 1, 0, 0, 0) == 0;
}

namespace {

// The contents of the core file in `directory` (empty if none); the file is removed.
std::string take_core(const std::string& directory) {
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

std::string core_of_crashing_child(void (*crash)(const char* directory)) {
  char directory[] = "/tmp/lockbox-core-XXXXXX";
  if (mkdtemp(directory) == nullptr) {
    std::perror("mkdtemp");
    return {};
  }
  pid_t pid = fork();
  if (pid == 0) {
    crash(directory);
    _exit(99);  // crash() must not return
  }
  int status = 0;
  std::string core;
  if (waitpid(pid, &status, 0) != pid || !WIFSIGNALED(status) || WTERMSIG(status) != SIGABRT ||
      !WCOREDUMP(status)) {
    std::fprintf(stderr, "the child did not dump core on SIGABRT (status 0x%x)\n", status);
  } else {
    core = take_core(directory);
    std::printf("core file: %zu bytes\n", core.size());
  }
  take_core(directory);  // nothing is left behind either way
  rmdir(directory);
  return core;
}

}  // namespace lockbox_test
