// This thread's last failure, as a readable sentence: lockbox_last_error() returns it.
#pragma once

namespace lockbox {

void set_last_error(const char* format, ...) __attribute__((format(printf, 1, 2)));
const char* last_error();

}  // namespace lockbox
