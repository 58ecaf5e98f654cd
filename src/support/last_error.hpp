// SPDX-License-Identifier: ISC
// This thread's last failure, as a readable sentence: lockbox_last_error() returns it.
#pragma once

namespace lockbox {

void set_last_error(const char* format, ...) __attribute__((format(printf, 1, 2)));
const char* last_error();
// The thread is exiting: its message page goes (support/thread_exit.hpp).
void release_last_error_message();

}  // namespace lockbox
