#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# lockbox as a meson subproject of a small consumer project: dependency('lockbox') finds it
# (meson.override_dependency), the subproject builds the library and nothing else (no
# examples, tests or benchmark), imposes no warning flags on its parent, and follows the
# parent's default_library (static: the program needs no liblockbox.so).
# Usage: subproject_test.sh SOURCE-DIR
set -euo pipefail
source_dir=$1
# shellcheck source=stage.sh
source "$(dirname "$0")/stage.sh"
work=$(mktemp -d /tmp/lockbox-subproject-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/consumer/subprojects/lockbox"
# The tree as a clean clone has it (no build directories, no .git).
(cd "$source_dir" && tar --exclude='./build*' --exclude=./.git -cf - .) |
  tar -xf - -C "$work/consumer/subprojects/lockbox"
cat > "$work/consumer/meson.build" <<'MESON'
project('consumer', 'c')
lockbox = dependency('lockbox', fallback : 'lockbox')
executable('consumer', 'consumer.c', dependencies : lockbox)
MESON
cat > "$work/consumer/consumer.c" <<'C'
#include <lockbox/lockbox.h>
#include <stdio.h>
int main(void) {
  char* secret = lockbox_strdup("swordfish");
  int owned = lockbox_owns(secret);
  lockbox_free(secret);
  printf("%d\n", owned);
  return owned == 1 ? 0 : 1;
}
C

consumer_builds() {
  local kind=$1 dir=$work/build-$1
  meson setup "$dir" "$work/consumer" --wrap-mode=forcefallback -Ddefault_library="$kind" \
    >"$work/setup-$kind.log" 2>&1 && meson compile -C "$dir" >"$work/compile-$kind.log" 2>&1 &&
    [ "$("$dir/consumer")" == "1" ] || { cat "$work/setup-$kind.log" "$work/compile-$kind.log" >&2; return 1; }
}
only_the_library() {
  local targets
  targets=$(meson introspect "$work/build-$1" --targets |
    python3 -c 'import json,sys; print(" ".join(sorted(t["name"] for t in json.load(sys.stdin))))')
  case " $targets " in
    *" demo "*|*" vault "*|*" unit_tests "*|*" lockbox_bench "*|*_fuzzer*)
      echo "the subproject built more than the library: $targets" >&2; return 1 ;;
  esac
  [[ " $targets " == *" lockbox "* ]]
}
no_werror() {
  meson introspect "$work/build-shared" --buildoptions | python3 -c '
import json, sys
options = {o["name"]: o["value"] for o in json.load(sys.stdin)}
sys.exit(0 if options.get("lockbox:werror") is False and options.get("werror") is False else 1)'
}
check "a consumer builds and runs with lockbox as a subproject (shared)" consumer_builds shared
check "the subproject builds only the library" only_the_library shared
check "the subproject turns no warnings into errors" no_werror
check "a consumer builds with default_library=static" consumer_builds static
check "default_library=static links lockbox statically" \
  sh -c "! readelf -d '$work/build-static/consumer' | grep -q liblockbox"
finish
