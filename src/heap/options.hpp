// Tunables from the environment (see options.inc), read once at start-up with secure_getenv,
// so setuid and setgid programs ignore them.
#pragma once

#include <cstddef>

#include "budget/budget.hpp"

namespace lockbox::options {

// LOCKBOX_POLICY; an unknown value keeps STRICT and says so on stderr (never a silent downgrade).
budget::Policy policy_from_environment();
// LOCKBOX_BACKEND; an unknown value keeps anon and says so on stderr.
budget::Backend backend_from_environment();

// One line per option: "NAME=values (default: x): description\n", into `buffer`.
// Returns the length the full text needs, like snprintf.
std::size_t describe(char* buffer, std::size_t capacity);

}  // namespace lockbox::options
