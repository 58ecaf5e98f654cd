#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The installed shared library's ABI: its soname is liblockbox.so.N; it exports exactly the
# calls lockbox.h declares, every one under the version node LOCKBOX_N and nothing else (no
# C++ internals, no libsodium); the installed version.h says the version pkg-config says.
# Usage: abi_test.sh BUILD-DIR LOCKBOX-H
set -euo pipefail
build=$1 header=$2
# shellcheck source=stage.sh
source "$(dirname "$0")/stage.sh"
stage_install "$build"
library=$libdir/liblockbox.so
if [ ! -e "$library" ]; then
  echo "no liblockbox.so (default_library=static): skipped"
  exit 77
fi

soname=$(readelf -d "$library" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
abi=${soname#liblockbox.so.}
check "the soname is liblockbox.so.N ($soname)" sh -c "[ -n '$abi' ] && [ '$abi' -ge 1 ] 2>/dev/null"
check "the soname's file is installed" test -e "$libdir/$soname"

exported=$(nm -D --defined-only "$library" | awk '{print $3}' | sort)
declared=$(declared_calls "$header")
expected=$( (echo "LOCKBOX_$abi"; sed "s/\$/@@LOCKBOX_$abi/" <<<"$declared") | sort)
exactly_declared() {
  if [ "$exported" != "$expected" ]; then
    echo "exported symbols differ from lockbox.h's declarations (< exported, > expected):" >&2
    diff <(echo "$exported") <(echo "$expected") >&2 || true
    return 1
  fi
}
check "exactly lockbox.h's $(wc -l <<<"$declared") calls are exported, each @@LOCKBOX_$abi" exactly_declared

header_version=$(sed -n 's/^#define LOCKBOX_VERSION_STRING "\(.*\)"/\1/p' "$prefix/include/lockbox/version.h")
check "version.h says $header_version, pkg-config says $(pkg-config --modversion lockbox)" \
  test "$header_version" == "$(pkg-config --modversion lockbox)"
finish
