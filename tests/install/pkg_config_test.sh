#!/usr/bin/env bash
# What a user does: install lockbox, then build a C++ program with nothing but
# `#include <lockbox/lockbox.hpp>` and `pkg-config --cflags --libs lockbox`, and run it.
# Usage: pkg_config_test.sh BUILD-DIR
set -euo pipefail
build=$1
stage=$(mktemp -d /tmp/lockbox-install-XXXXXX)
trap 'rm -rf "$stage"' EXIT
meson install -C "$build" --destdir "$stage" --quiet >/dev/null
pc=$(find "$stage" -name lockbox.pc | head -1)
export PKG_CONFIG_PATH=$(dirname "$pc") PKG_CONFIG_SYSROOT_DIR=$stage
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
# shellcheck disable=SC2046
c++ -std=c++17 "$stage/user.cpp" -o "$stage/user" $(pkg-config --cflags --libs lockbox)
libdir=$(dirname "$(find "$stage" -name 'liblockbox.so' | head -1)")
out=$(LD_LIBRARY_PATH=$libdir "$stage/user")
if [ "$out" == "correct horse battery staple 32 4711" ]; then
  echo "1 passed, 0 failed"
else
  echo "unexpected output: $out"
  echo "0 passed, 1 failed"
  exit 1
fi
