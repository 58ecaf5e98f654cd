// SPDX-License-Identifier: ISC
// Parses and describes the tunables listed in options.inc.
#include "heap/options.hpp"

#include <cstdio>
#include <cstring>

#include "os/os.hpp"

namespace lockbox::options {
namespace {

struct Option {
  const char* identifier;
  const char* variable;
  const char* description;
};
struct Choice {
  const char* option;  // the option's identifier
  const char* text;
  int value;
};

constexpr Option kOptions[] = {
#define LOCKBOX_OPTION(identifier, variable, type, description) \
  {#identifier, variable, description},
#define LOCKBOX_CHOICE(identifier, text, value)
#include "heap/options.inc"
#undef LOCKBOX_CHOICE
#undef LOCKBOX_OPTION
};

constexpr Choice kChoices[] = {
#define LOCKBOX_OPTION(identifier, variable, type, description)
#define LOCKBOX_CHOICE(identifier, text, value) {#identifier, text, static_cast<int>(value)},
#include "heap/options.inc"
#undef LOCKBOX_CHOICE
#undef LOCKBOX_OPTION
};

const Option* option_named(const char* identifier) {
  for (const Option& option : kOptions) {
    if (std::strcmp(option.identifier, identifier) == 0) return &option;
  }
  return nullptr;
}

bool is_choice_of(const Choice& choice, const Option& option) {
  return std::strcmp(choice.option, option.identifier) == 0;
}

// The first choice of the option: its default.
const Choice& default_of(const Option& option) {
  for (const Choice& choice : kChoices) {
    if (is_choice_of(choice, option)) return choice;
  }
  __builtin_unreachable();  // every option lists at least one choice (options.inc)
}

// "VARIABLE=a | b | c" or "a, b or c" into `out` (always NUL-terminated). No allocation: this
// runs at start-up, inside malloc's first call.
void list_choices(const Option& option, const char* separator, char* out, std::size_t room) {
  out[0] = '\0';
  bool first = true;
  for (const Choice& choice : kChoices) {
    if (!is_choice_of(choice, option)) continue;
    if (!first) std::strncat(out, separator, room - std::strlen(out) - 1);
    std::strncat(out, choice.text, room - std::strlen(out) - 1);
    first = false;
  }
}

int read_option(const char* identifier) {
  const Option& option = *option_named(identifier);
  const Choice& fallback = default_of(option);
  const char* text = os::secure_environment(option.variable);
  int value = fallback.value;
  if (text == nullptr || parse(option.variable, text, &value)) return value;
  char choices[160];
  list_choices(option, ", ", choices, sizeof choices);
  char warning[320];
  int length = std::snprintf(warning, sizeof warning,
                             "lockbox: warning: %s must be one of %s; using %s\n",
                             option.variable, choices, fallback.text);
  if (length > 0) {
    os::write_stderr(warning, static_cast<std::size_t>(length) < sizeof warning
                                  ? static_cast<std::size_t>(length)
                                  : sizeof warning - 1);
  }
  return fallback.value;
}

}  // namespace

#define LOCKBOX_OPTION(identifier, variable, type, description) \
  type identifier##_from_environment() { return static_cast<type>(read_option(#identifier)); }
#define LOCKBOX_CHOICE(identifier, text, value)
#include "heap/options.inc"
#undef LOCKBOX_CHOICE
#undef LOCKBOX_OPTION

bool parse(const char* variable, const char* text, int* value) {
  for (const Option& option : kOptions) {
    if (std::strcmp(option.variable, variable) != 0) continue;
    for (const Choice& choice : kChoices) {
      if (is_choice_of(choice, option) && std::strcmp(choice.text, text) == 0) {
        *value = choice.value;
        return true;
      }
    }
  }
  return false;
}

std::size_t describe(char* buffer, std::size_t capacity) {
  std::size_t needed = 0;
  for (const Option& option : kOptions) {
    char choices[160];
    list_choices(option, " | ", choices, sizeof choices);
    char* out = needed < capacity ? buffer + needed : nullptr;
    std::size_t room = needed < capacity ? capacity - needed : 0;
    int length = std::snprintf(out, room, "%s=%s (default: %s): %s\n", option.variable, choices,
                               default_of(option).text, option.description);
    if (length > 0) needed += static_cast<std::size_t>(length);
  }
  return needed;
}

}  // namespace lockbox::options
