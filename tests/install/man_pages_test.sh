#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The installed reference pages: every call lockbox.h declares has a page of its own name in
# section 3 (`man lockbox_free` works) whose NAME section lists the call; every page renders
# with man(1) without a warning; each page's header names the version being installed.
# Usage: man_pages_test.sh BUILD-DIR LOCKBOX-H   (exit 77, skipped, without man)
set -euo pipefail
build=$1 header=$2
# shellcheck source=stage.sh
source "$(dirname "$0")/stage.sh"
if ! command -v man >/dev/null; then
  echo "man is not installed: skipped"
  exit 77
fi
stage_install "$build"
mandir=$prefix/share/man
version=$(pkg-config --modversion lockbox)

declared=$(declared_calls "$header")
# The NAME section of a page: the lines between .SH NAME and the next .SH, joined.
name_section() {
  awk '/^\.SH NAME/ { inside = 1; next } /^\.SH/ { inside = 0 } inside' "$1" | tr '\n' ' '
}
documented() {
  local call=$1 page=$mandir/man3/$1.3
  [ -e "$page" ] || { echo "no page $page for $call" >&2; return 1; }
  name_section "$(readlink -f "$page")" | grep -qE "(^|[ ,])$call(,| )" ||
    { echo "$call is not in the NAME section of $(readlink -f "$page")" >&2; return 1; }
}
while read -r call; do
  check "$call has its page" documented "$call"
done <<<"$declared"

renders_cleanly() {
  local page=$1 warnings
  warnings=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || { echo "$page: $warnings" >&2; return 1; }
  LC_ALL=C.UTF-8 MANWIDTH=80 man -E UTF-8 -l "$page" 2>/dev/null | grep -q "^NAME"
}
names_this_version() {
  grep -q "^\.TH [A-Z_0-9]* [37] [0-9-]* \"lockbox $version\"" "$1" ||
    { echo "$1: its .TH line does not say lockbox $version" >&2; return 1; }
}
pages=$(find "$mandir" -type f -name '*.[37]' | sort)
[ -n "$pages" ] || { echo "no pages installed under $mandir"; exit 1; }
for page in $pages; do
  check "$(basename "$page") renders without warnings" renders_cleanly "$page"
  check "$(basename "$page") says version $version" names_this_version "$page"
done
check "lockbox(7) is installed" test -f "$mandir/man7/lockbox.7"
finish
