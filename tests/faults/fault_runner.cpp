// SPDX-License-Identifier: ISC
// Runs one fault program and checks how it died: by the expected signal, with stderr exactly
// one line "<message> at <address>", where <address> is what the program said it expected.
// Usage: fault_runner ABRT|SEGV "<message>" program source
//        fault_runner ASAN "<report>" program source   (AddressSanitizer caught the bug first:
//        death by SIGABRT with abort_on_error=1, and a report naming <report> and a line of
//        `source`, the program's file under tests/faults/)
//        fault_runner EXIT "<line>" program source   (no fault: the program exits 0 and prints
//        <line>, as string_overflow does)
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>

namespace {

std::string read_all(int fd) {
  std::string text;
  char buffer[4096];
  for (;;) {
    ssize_t got = read(fd, buffer, sizeof buffer);
    if (got <= 0) break;
    text.append(buffer, static_cast<std::size_t>(got));
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: fault_runner ABRT|SEGV|ASAN|EXIT message program source\n");
    return 2;
  }
  int expected_signal = std::strcmp(argv[1], "SEGV") == 0 ? SIGSEGV : SIGABRT;
  bool sanitizer_report = std::strcmp(argv[1], "ASAN") == 0;
  bool clean_exit = std::strcmp(argv[1], "EXIT") == 0;
  std::string message = argv[2];
  int out_pipe[2], err_pipe[2];
  if (pipe(out_pipe) != 0 || pipe(err_pipe) != 0) return 2;
  pid_t child = fork();
  if (child == 0) {
    // The program is meant to crash: no core file in the build tree.
    struct rlimit no_core {
      0, 0
    };
    setrlimit(RLIMIT_CORE, &no_core);
    dup2(out_pipe[1], STDOUT_FILENO);
    dup2(err_pipe[1], STDERR_FILENO);
    close(out_pipe[0]);
    close(err_pipe[0]);
    execl(argv[3], argv[3], static_cast<char*>(nullptr));
    _exit(127);
  }
  close(out_pipe[1]);
  close(err_pipe[1]);
  std::string out = read_all(out_pipe[0]);
  std::string err = read_all(err_pipe[0]);
  int status = 0;
  waitpid(child, &status, 0);

  int failures = 0;
  if (clean_exit) {
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 ||
        out.find("\n" + message + "\n") == std::string::npos || !err.empty()) {
      std::fprintf(stderr, "FAIL: status 0x%x, stdout\n%s\nstderr\n%s\nexpected exit 0 and '%s'\n",
                   status, out.c_str(), err.c_str(), message.c_str());
      ++failures;
    }
  } else if (!WIFSIGNALED(status) || WTERMSIG(status) != expected_signal) {
    std::fprintf(stderr, "FAIL: expected death by signal %d, got status 0x%x\n", expected_signal,
                 status);
    ++failures;
  }
  const std::string prefix = "expect ";
  std::string address;
  if (out.compare(0, prefix.size(), prefix) == 0) {
    address = out.substr(prefix.size(), out.find('\n') - prefix.size());
  } else {
    std::fprintf(stderr, "FAIL: the program did not say which address to expect: '%s'\n",
                 out.c_str());
    ++failures;
  }
  if (clean_exit) {
    // checked above
  } else if (sanitizer_report) {
    // The report must name the bug and the faulting line of the program (its source file: one
    // source may build several programs).
    std::string source = std::string("faults/") + argv[4] + ":";
    if (err.find(message) == std::string::npos || err.find(source) == std::string::npos) {
      std::fprintf(stderr, "FAIL: stderr was\n%s\nexpected a report of '%s' in %s\n", err.c_str(),
                   message.c_str(), source.c_str());
      ++failures;
    }
  } else {
    // "expect -": a fault found at start-up, about no address.
    std::string expected_err = message + (address == "-" ? "" : " at " + address) + "\n";
    if (err != expected_err) {
      std::fprintf(stderr, "FAIL: stderr was\n  '%s'\nexpected exactly\n  '%s'\n", err.c_str(),
                   expected_err.c_str());
      ++failures;
    }
  }
  std::printf("%d passed, %d failed\n", 3 - failures, failures);
  return failures == 0 ? 0 : 1;
}
