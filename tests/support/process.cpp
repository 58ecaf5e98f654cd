// SPDX-License-Identifier: ISC
// /proc readers and privilege dropping for the system tests.
#include "support/process.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lockbox_test {
namespace {

bool ipc_lock_effective() {
  __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  if (syscall(SYS_capget, &header, data) != 0) return true;  // assume the worst
  return (data[CAP_IPC_LOCK / 32].effective & (1u << (CAP_IPC_LOCK % 32))) != 0;
}

// Calls visit(VmFlags line) for each VMA overlapping the range; returns false if a part of the
// range is in no VMA.
template <typename Visit>
bool for_each_vma(const void* address, std::size_t length, Visit visit) {
  auto first = reinterpret_cast<std::uintptr_t>(address) & ~std::uintptr_t{4095};
  auto last = reinterpret_cast<std::uintptr_t>(address) + length;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  std::uintptr_t start = 0, end = 0, covered = first;
  bool overlapping = false, gap = false;
  while (std::getline(smaps, line)) {
    unsigned long a = 0, b = 0;
    char dash = 0;
    std::istringstream header(line);
    if (line.find("VmFlags:") == 0) {
      if (overlapping) {
        if (start > covered) gap = true;
        if (end > covered) covered = end;
        visit(line);
      }
      overlapping = false;
    } else if ((header >> std::hex >> a >> dash >> b) && dash == '-') {
      start = a;
      end = b;
      overlapping = start < last && end > first;
    }
  }
  return !gap && covered >= last;
}

// One line of /proc/self/maps: the range, the permissions ("rw-p"), and the whole line.
struct Mapping {
  std::uintptr_t start;
  std::uintptr_t end;
  std::string perms;
  std::string line;
};

std::vector<Mapping> mappings() {
  std::vector<Mapping> all;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    unsigned long start = 0, end = 0;
    char dash = 0;
    std::string perms;
    std::istringstream fields(line);
    if (fields >> std::hex >> start >> dash >> end >> perms)
      all.push_back({start, end, perms, line});
  }
  return all;
}

int g_saved_stderr = -1;
std::FILE* g_capture = nullptr;

}  // namespace

int kernel_mlock(const void* address, std::size_t length) {
  return static_cast<int>(syscall(SYS_mlock, address, length));
}

int kernel_munlock(const void* address, std::size_t length) {
  return static_cast<int>(syscall(SYS_munlock, address, length));
}

bool crowd_the_process() {
  static unsigned char own[64 * 1024];
  std::memset(own, 1, sizeof own);
  if (kernel_mlock(own, sizeof own) != 0) return false;
  for (int i = 0; i < 10000; ++i) {
    void* p = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED || mprotect(p, 4096, PROT_READ) != 0) return false;
  }
  return true;
}

long long status_bytes(const char* field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  std::string prefix = std::string(field) + ":";
  while (std::getline(status, line)) {
    if (line.rfind(prefix, 0) == 0) return std::atoll(line.c_str() + prefix.size()) * 1024;
  }
  return -1;
}

long long vmlck_bytes() { return status_bytes("VmLck"); }

std::size_t mapping_count() { return mappings().size(); }

bool has_flag(const std::string& vm_flags, const char* flag) {
  return vm_flags.find(std::string(" ") + flag) != std::string::npos;
}

bool kernel_says_locked(const void* address, std::size_t length) {
  bool all_locked = true;
  bool mapped = for_each_vma(
      address, length, [&](const std::string& flags) { all_locked &= has_flag(flags, "lo"); });
  return mapped && all_locked;
}

bool kernel_says_unlocked(const void* address, std::size_t length) {
  bool any_locked = false;
  for_each_vma(address, length,
               [&](const std::string& flags) { any_locked |= has_flag(flags, "lo"); });
  return !any_locked;
}

std::string page_protection(const void* address) {
  auto target = reinterpret_cast<std::uintptr_t>(address);
  for (const Mapping& mapping : mappings()) {
    if (target >= mapping.start && target < mapping.end) return mapping.perms.substr(0, 3);
  }
  return "";
}

std::vector<std::pair<std::uintptr_t, std::uintptr_t>> readable_ranges() {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  for (const Mapping& mapping : mappings()) {
    // [vvar] and friends are readable in name only.
    if (mapping.perms[0] == 'r' && mapping.line.find("[vvar") == std::string::npos &&
        mapping.line.find("[vsyscall]") == std::string::npos) {
      ranges.emplace_back(mapping.start, mapping.end);
    }
  }
  return ranges;
}

std::vector<std::pair<std::uintptr_t, std::uintptr_t>> all_ranges() {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  for (const Mapping& mapping : mappings()) {
    if (mapping.line.find("[vvar") == std::string::npos &&
        mapping.line.find("[vsyscall]") == std::string::npos) {
      ranges.emplace_back(mapping.start, mapping.end);
    }
  }
  return ranges;
}

std::vector<std::pair<std::uintptr_t, std::uintptr_t>> locked_ranges() {
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> ranges;
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  std::uintptr_t start = 0, end = 0;
  while (std::getline(smaps, line)) {
    unsigned long a = 0, b = 0;
    char dash = 0;
    std::istringstream header(line);
    if (line.rfind("VmFlags:", 0) == 0) {
      if (has_flag(line, "lo")) ranges.emplace_back(start, end);
    } else if ((header >> std::hex >> a >> dash >> b) && dash == '-') {
      start = a;
      end = b;
    }
  }
  return ranges;
}

bool kernel_says_dont_dump(const void* address, std::size_t length) {
  bool all = true;
  bool mapped = for_each_vma(address, length,
                             [&](const std::string& flags) { all &= has_flag(flags, "dd"); });
  return mapped && all;
}

std::string become_unprivileged(std::size_t memlock_bytes) {
  struct rlimit limit {
    memlock_bytes, memlock_bytes
  };
  if (setrlimit(RLIMIT_MEMLOCK, &limit) != 0) {
    return std::string("setrlimit(RLIMIT_MEMLOCK) failed: ") + std::strerror(errno);
  }
  if (geteuid() == 0) {
    const gid_t nobody_group = 65534;
    const uid_t nobody = 65534;
    if (setgroups(0, nullptr) != 0 || setresgid(nobody_group, nobody_group, nobody_group) != 0 ||
        setresuid(nobody, nobody, nobody) != 0) {
      return std::string("cannot become nobody: ") + std::strerror(errno);
    }
    // Changing credentials clears "dumpable"; the tests read /proc/self and may dump core.
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
  }
  if (ipc_lock_effective()) return "CAP_IPC_LOCK is still effective";
  struct rlimit now {};
  getrlimit(RLIMIT_MEMLOCK, &now);
  if (now.rlim_cur != memlock_bytes) return "RLIMIT_MEMLOCK did not take";
  return "";
}

void start_capturing_stderr() {
  std::fflush(stderr);
  g_capture = std::tmpfile();
  g_saved_stderr = dup(STDERR_FILENO);
  dup2(fileno(g_capture), STDERR_FILENO);
}

std::string stop_capturing_stderr() {
  std::fflush(stderr);
  dup2(g_saved_stderr, STDERR_FILENO);
  close(g_saved_stderr);
  std::string text;
  std::rewind(g_capture);
  char buffer[512];
  std::size_t got;
  while ((got = std::fread(buffer, 1, sizeof buffer, g_capture)) > 0) text.append(buffer, got);
  std::fclose(g_capture);
  return text;
}

}  // namespace lockbox_test
