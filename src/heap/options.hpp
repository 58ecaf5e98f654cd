// SPDX-License-Identifier: ISC
// Tunables from the environment, as options.inc lists them, read once at start-up with
// secure_getenv, so setuid and setgid programs ignore them.
#pragma once

#include <cstddef>

#include "budget/budget.hpp"
#include "pages/secretmem_pool.hpp"

namespace lockbox::options {

// One reader per option, e.g. policy_from_environment(): the value the variable names, or the
// default when it is unset; an unknown value keeps the default and says so on stderr (never a
// silent downgrade).
#define LOCKBOX_OPTION(identifier, variable, type, description) \
  type identifier##_from_environment();
#define LOCKBOX_CHOICE(identifier, text, value)
#include "heap/options.inc"
#undef LOCKBOX_CHOICE
#undef LOCKBOX_OPTION

// The value (as an int) that `text` names for the option read from `variable`; false if the
// option has no such value (or there is no such option).
bool parse(const char* variable, const char* text, int* value);

// One line per option: "NAME=a | b (default: a): description\n", into `buffer`.
// Returns the length the full text needs, like snprintf.
std::size_t describe(char* buffer, std::size_t capacity);

}  // namespace lockbox::options
