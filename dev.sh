#!/usr/bin/env bash
# One entry point for newcomers and CI. Installs what is missing (Debian 12, as root), configures
# the build once, then:
#   ./dev.sh demo    build and run the demo
#   ./dev.sh test    build and run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(meson ninja-build pkg-config g++ libsodium-dev doctest-dev)

ensure_packages() {
  local missing=()
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "dev.sh: missing packages: ${missing[*]}" >&2
    echo "dev.sh: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "dev.sh: installing ${missing[*]}" >&2
  # apt-cache needs fresh lists on a new machine; update once per run that installs.
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

configure() {
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    meson setup "$BUILD_DIR" "$@"
  fi
}

# Prints the plain "N passed, N failed" line from meson's machine-readable log.
summarise_tests() {
  python3 - "$BUILD_DIR/meson-logs/testlog.json" <<'PY'
import json, sys
counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "ERROR": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0}
for line in open(sys.argv[1]):
    result = json.loads(line).get("result")
    counts[result] = counts.get(result, 0) + 1
failed = counts["FAIL"] + counts["TIMEOUT"] + counts["ERROR"] + counts["UNEXPECTEDPASS"]
print(f"tests: {counts['OK'] + counts['EXPECTEDFAIL']} passed, {failed} failed, {counts['SKIP']} skipped")
PY
}

command=${1:-}
shift || true
case "$command" in
  demo)
    ensure_packages "${PACKAGES[@]}"
    configure
    meson compile -C "$BUILD_DIR" >/dev/null
    "$BUILD_DIR/examples/demo" "$@"
    ;;
  test)
    ensure_packages "${PACKAGES[@]}"
    configure
    status=0
    meson test -C "$BUILD_DIR" --print-errorlogs "$@" || status=$?
    summarise_tests
    exit $status
    ;;
  *)
    sed -n '2,6p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
