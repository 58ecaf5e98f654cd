# SPDX-License-Identifier: ISC
# Sourced by the install tests: installs the build BUILD-DIR into a fresh staging directory
# as a packager would (meson install --destdir), removed again when the test exits, and points
# pkg-config and CMake at it. Sets: stage, prefix (the staged prefix), libdir.
stage_install() {
  local build=$1
  stage=$(mktemp -d /tmp/lockbox-install-XXXXXX)
  trap 'rm -rf "$stage"' EXIT
  meson install -C "$build" --destdir "$stage" --quiet >/dev/null
  local pc
  pc=$(find "$stage" -name lockbox.pc | head -1)
  libdir=$(dirname "$(dirname "$pc")")
  prefix=$stage$(meson introspect "$build" --buildoptions |
    python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
  export PKG_CONFIG_PATH=$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$stage
}

# declared_calls LOCKBOX-H: every call the header declares (LOCKBOX_API ... lockbox_x(...);),
# one per line, sorted.
declared_calls() {
  python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
names = set()
for declaration in re.findall(r"LOCKBOX_API\b([^;{]*);", text, re.S):
    match = re.search(r"\b(lockbox_\w+)\s*\(", declaration)
    if match:
        names.add(match.group(1))
print("\n".join(sorted(names)))
PY
}

# check NAME COMMAND...: runs the check, counts it, and says which failed.
passed=0
failed=0
check() {
  local name=$1
  shift
  if "$@"; then
    passed=$((passed + 1))
  else
    echo "FAILED: $name" >&2
    failed=$((failed + 1))
  fi
}
finish() {
  echo "$passed passed, $failed failed"
  [ "$failed" -eq 0 ]
}
