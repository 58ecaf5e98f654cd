#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Runs one faulty program under valgrind memcheck and checks that memcheck's report names the
# error as it would for malloc: lockbox tells memcheck about its blocks (src/support/sanitizers.hpp).
# Usage: memcheck_test.sh PROGRAM MODE SIZE   (exit 77, skipped, without valgrind)
set -euo pipefail
program=$1 mode=$2 size=$3
if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed: skipped"
  exit 77
fi
report=$(mktemp /tmp/lockbox-memcheck-XXXXXX)
trap 'rm -f "$report"' EXIT
# The program's own exit status does not matter (a large block's read after free also meets
# its PROT_NONE quarantine); memcheck's report does.
# Every mapping above 4 GiB: memcheck's leak scan takes any word that falls inside a block for a
# pointer into it, and below 4 GiB (where valgrind maps by default) ordinary numbers do. ld.so's
# relocate_time, a TSC difference of some 80 million cycles under valgrind, fell inside the
# leaked 100,000-byte block about once in a hundred runs, which made it "possibly lost".
valgrind --aspace-minaddr=0x100000000 --leak-check=full --errors-for-leak-kinds=definite \
  --log-file="$report" "$program" "$mode" "$size" >/dev/null 2>&1 || true

expect() {
  if ! grep -qE "$1" "$report"; then
    echo "memcheck did not say: $1"
    echo "--- its report:"
    cat "$report"
    exit 1
  fi
}
# memcheck writes 100000 as 100,000.
bytes=$(echo "$size" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta')
case "$mode" in
  read-after-free) expect "Invalid read of size 1"
                   expect "inside a block of size ($size|$bytes) free'd" ;;
  canary-overflow) expect "Invalid read of size 1"
                   expect "0 bytes after a block of size ($size|$bytes) alloc'd" ;;
  leak)            expect "definitely lost: ($size|$bytes) bytes in 1 blocks" ;;
  clean)           expect "ERROR SUMMARY: 0 errors" ;;
  *) echo "unknown mode $mode"; exit 2 ;;
esac
echo "1 passed, 0 failed: memcheck named the $mode of a $size-byte lockbox block"
