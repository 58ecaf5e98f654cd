#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# What a user does: install lockbox, then build programs with nothing but the installed headers
# and `pkg-config --cflags --libs lockbox`, and run them:
#   - a C++ program using <lockbox/lockbox.hpp>;
#   - README's C snippet, exactly as README prints it (with README's own pkg-config line);
#   - a C program linked statically (`pkg-config --static`, `-static`): liblockbox.a needs no
#     C++ runtime, and the .pc names what it does need.
# Usage: pkg_config_test.sh BUILD-DIR README
set -euo pipefail
build=$1 readme=$2
# shellcheck source=stage.sh
source "$(dirname "$0")/stage.sh"
stage_install "$build"
# A static-only install (default_library=static) has no liblockbox.so: then every program
# links with --static, as it must.
link_flags=(--cflags --libs)
[ -e "$libdir/liblockbox.so" ] || link_flags=(--static --cflags --libs)

cat > "$stage/user.cpp" <<'CPP'
#include <lockbox/lockbox.hpp>
#include <cstdio>
int main() {
  lockbox::string password("correct horse battery staple");
  lockbox::vector<unsigned char> key(32, 7);
  lockbox::secret<int> pin(4711);
  int value = *pin.read();
  std::printf("%s %zu %d\n", password.c_str(), key.size(), value);
  return lockbox_owns(password.data()) == 1 && value == 4711 ? 0 : 1;
}
CPP
cxx_program() {
  # shellcheck disable=SC2046
  c++ -std=c++17 "$stage/user.cpp" -o "$stage/user" $(pkg-config "${link_flags[@]}" lockbox) &&
    [ "$(LD_LIBRARY_PATH=$libdir "$stage/user")" == "correct horse battery staple 32 4711" ]
}
check "a C++ program built with pkg-config" cxx_program

# README's snippet: the C block after the line "<!-- readme-c-snippet -->", and the shell line
# that builds it (the block after "<!-- readme-c-build -->"), run as printed from $stage.
readme_block() {
  awk -v marker="<!-- $1 -->" '
    $0 == marker { found = 1; next }
    found && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$readme"
}
readme_snippet() {
  readme_block readme-c-snippet > "$stage/snippet.c"
  local build_line
  build_line=$(readme_block readme-c-build)
  [ -s "$stage/snippet.c" ] && [ -n "$build_line" ] || { echo "README has no marked snippet" >&2; return 1; }
  (cd "$stage" && eval "$build_line") &&
    LD_LIBRARY_PATH=$libdir "$stage/snippet" > "$stage/snippet.out" &&
    grep -q . "$stage/snippet.out"
}
check "README's C snippet compiles and runs as printed" readme_snippet

cat > "$stage/static.c" <<'C'
#include <lockbox/lockbox.h>
#include <stdio.h>
#include <string.h>
int main(void) {
  char* key = lockbox_malloc(32);
  if (key == NULL) return 1;
  memset(key, 0x42, 32);
  int owned = lockbox_owns(key);
  lockbox_free(key);
  printf("%s %d\n", lockbox_version(), owned);
  return owned == 1 ? 0 : 1;
}
C
static_c_program() {
  # shellcheck disable=SC2046
  cc -static "$stage/static.c" -o "$stage/static" $(pkg-config --static --cflags --libs lockbox) &&
    ! readelf -d "$stage/static" 2>/dev/null | grep -q NEEDED &&
    [ "$("$stage/static")" == "$(pkg-config --modversion lockbox) 1" ]
}
if [ -e "$libdir/liblockbox.a" ]; then
  check "a C program linked statically with pkg-config --static" static_c_program
else
  echo "no liblockbox.a (default_library=shared): the static C program is not tried"
fi
finish
