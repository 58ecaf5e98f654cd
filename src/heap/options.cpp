// Parses the tunables listed in options.inc.
#include "heap/options.hpp"

#include <cstdio>
#include <cstring>

#include "os/os.hpp"

namespace lockbox::options {

budget::Policy policy_from_environment() {
  const char* value = os::secure_environment("LOCKBOX_POLICY");
  if (value == nullptr || std::strcmp(value, "strict") == 0) return budget::Policy::kStrict;
  if (std::strcmp(value, "best-effort") == 0) return budget::Policy::kBestEffort;
  static const char kWarning[] =
      "lockbox: warning: LOCKBOX_POLICY must be 'strict' or 'best-effort'; using strict\n";
  os::write_stderr(kWarning, sizeof kWarning - 1);
  return budget::Policy::kStrict;
}

budget::Backend backend_from_environment() {
  const char* value = os::secure_environment("LOCKBOX_BACKEND");
  if (value == nullptr || std::strcmp(value, "anon") == 0) return budget::Backend::kAnonymous;
  if (std::strcmp(value, "secretmem") == 0) return budget::Backend::kSecretmem;
  if (std::strcmp(value, "auto") == 0) return budget::Backend::kAuto;
  static const char kWarning[] =
      "lockbox: warning: LOCKBOX_BACKEND must be 'anon', 'secretmem' or 'auto'; using anon\n";
  os::write_stderr(kWarning, sizeof kWarning - 1);
  return budget::Backend::kAnonymous;
}

namespace {

struct OptionInfo {
  const char* variable;
  const char* fallback;
  const char* values;
  const char* description;
};

constexpr OptionInfo kOptions[] = {
#define LOCKBOX_OPTION(identifier, variable, fallback, values, description) \
  {variable, fallback, values, description},
#include "heap/options.inc"
#undef LOCKBOX_OPTION
};

}  // namespace

std::size_t describe(char* buffer, std::size_t capacity) {
  std::size_t needed = 0;
  for (const OptionInfo& option : kOptions) {
    char* out = needed < capacity ? buffer + needed : nullptr;
    std::size_t room = needed < capacity ? capacity - needed : 0;
    int length = std::snprintf(out, room, "%s=%s (default: %s): %s\n", option.variable,
                               option.values, option.fallback, option.description);
    if (length > 0) needed += static_cast<std::size_t>(length);
  }
  return needed;
}

}  // namespace lockbox::options
