// SPDX-License-Identifier: ISC
// Real core dumps for the system tests: whether this machine writes them where a test can read
// them, and reading (then removing) the one a crashed child left.
#pragma once

#include <string>

namespace lockbox_test {

// True if /proc/sys/kernel/core_pattern writes cores into the crashing process's working
// directory; otherwise prints a SKIP line naming the pattern.
bool cores_land_in_working_directory();

// Makes this process dump core when it crashes, into `directory`. Returns false on failure.
bool prepare_to_dump_core(const char* directory);

// Forks a child that runs `crash(directory)` (which must prepare_to_dump_core(directory) and
// abort), waits for it, and returns its core file's contents: empty, with the reason on stderr,
// if the child did not die of SIGABRT with a core.
std::string core_of_crashing_child(void (*crash)(const char* directory));

}  // namespace lockbox_test
