#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The vault example end to end: round trip, wrong passphrase, corrupted, truncated and foreign
# files, missing entries, and a crash between writing the new vault and renaming it.
# Usage: vault_test.sh PATH-TO-VAULT-BINARY
set -uo pipefail
vault=$1
work=$(mktemp -d /tmp/lockbox-vault-test-XXXXXX)
trap 'rm -rf "$work"' EXIT
file=$work/test.vault
pass='correct horse battery staple'
passed=0
failed=0

# expect NAME EXIT-CODE STDERR-PATTERN STDOUT-EXPECTED INPUT -- ARGS...
expect() {
  local name=$1 code=$2 pattern=$3 expected_out=$4 input=$5
  shift 6
  local out err status=0
  out=$(printf '%b' "$input" | "$vault" "$@" 2>"$work/err") || status=$?
  err=$(cat "$work/err")
  if [ "$status" -eq "$code" ] && [[ "$err" =~ $pattern ]] && [ "$out" == "$expected_out" ]; then
    passed=$((passed + 1))
  else
    failed=$((failed + 1))
    echo "FAIL: $name: exit $status (want $code), stdout '$out' (want '$expected_out'), stderr '$err' (want /$pattern/)"
  fi
}

expect "init" 0 "created" "" "$pass\n" -- "$file" init
expect "init twice" 1 "already exists" "" "$pass\n" -- "$file" init
expect "put" 0 "^$" "" "$pass\nhunter2\n" -- "$file" put email
expect "put another" 0 "^$" "" "$pass\nPIN 4711\n" -- "$file" put bank
expect "get" 0 "^$" "hunter2" "$pass\n" -- "$file" get email
expect "replace" 0 "^$" "" "$pass\nhunter3\n" -- "$file" put email
expect "get replaced" 0 "^$" "hunter3" "$pass\n" -- "$file" get email
expect "list" 0 "^$" $'email\nbank' "$pass\n" -- "$file" list
expect "stats" 0 "lockbox: [0-9]+ allocations .* locked memory" "PIN 4711" "$pass\n" -- --stats "$file" get bank
# Both entries stay sealed; none is open once the secret is printed.
expect "entries sealed" 0 "; 2 sealed boxes, 0 open" "PIN 4711" "$pass\n" -- --stats "$file" get bank
expect "missing entry" 4 "no entry named 'nope'" "" "$pass\n" -- "$file" get nope
expect "wrong passphrase" 2 "^vault: wrong passphrase$" "" "Tr0ub4dor&3\n" -- "$file" get email
expect "usage" 1 "usage:" "" "" -- "$file" get
# --help is an answer, not a mistake: the usage on stdout, exit 0.
help_out=$("$vault" --help 2>/dev/null) && help_status=0 || help_status=$?
if [ "$help_status" -eq 0 ] && [[ "$help_out" == usage:* ]] && [[ "$help_out" == *"Exit codes"* ]]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: --help: exit $help_status (want 0), stdout '$help_out'"
fi
# No input at all is not an empty (or wrong) passphrase.
expect "no stdin: empty" 1 "^vault: no master passphrase given: standard input is at its end$" "" "" -- "$file" get email
closed_status=0
"$vault" "$file" get email 0<&- >/dev/null 2>"$work/err" || closed_status=$?
if [ "$closed_status" -eq 1 ] &&
   [ "$(cat "$work/err")" == "vault: no master passphrase given: standard input is at its end" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: no stdin: closed: exit $closed_status (want 1), stderr '$(cat "$work/err")'"
fi

# A crash between writing the new vault and renaming it leaves the old vault whole.
before=$(sha256sum "$file")
status=0
# (in its own shell, so that ours does not report the kill)
sh -c 'printf "%s\nnew secret\n" "$1" | LOCKBOX_VAULT_CRASH_BEFORE_RENAME=1 "$2" "$3" put crash' \
  _ "$pass" "$vault" "$file" 2>/dev/null || status=$?
if [ "$status" -eq 137 ] && [ "$(sha256sum "$file")" == "$before" ]; then
  passed=$((passed + 1))
else
  failed=$((failed + 1))
  echo "FAIL: crash before rename: exit $status (want 137 = SIGKILL), vault changed: $([ "$(sha256sum "$file")" == "$before" ] && echo no || echo yes)"
fi
rm -f "$file".tmp-*
expect "old vault after the crash" 0 "^$" "hunter3" "$pass\n" -- "$file" get email
expect "no trace of the crashed put" 4 "no entry named 'crash'" "" "$pass\n" -- "$file" get crash

# Damage: one flipped ciphertext byte, a truncated file, a foreign file.
cp "$file" "$work/corrupt.vault"
size=$(stat -c %s "$work/corrupt.vault")
# Flipped, not overwritten: a byte that already held the value written (one run in 256) would
# leave the file intact and the check would see a vault that opens.
byte=$(od -An -tu1 -j $((size - 5)) -N1 "$work/corrupt.vault" | tr -d ' ')
printf "\\x$(printf '%02x' $((byte ^ 0xff)))" |
  dd of="$work/corrupt.vault" bs=1 seek=$((size - 5)) conv=notrunc status=none
cmp -s "$file" "$work/corrupt.vault" && { echo "FAIL: the corrupted copy equals the vault"; exit 1; }
expect "corrupted" 3 "is corrupted: its contents fail authentication" "" "$pass\n" -- "$work/corrupt.vault" get email
head -c 60 "$file" > "$work/short.vault"
expect "truncated" 3 "is truncated \(60 bytes" "" "$pass\n" -- "$work/short.vault" get email
head -c $((size - 3)) "$file" > "$work/cut.vault"
expect "cut short" 3 "is corrupted" "" "$pass\n" -- "$work/cut.vault" get email
printf 'not a vault at all, just text\n' > "$work/foreign.vault"
expect "foreign" 3 "is not a lockbox vault" "" "$pass\n" -- "$work/foreign.vault" list
expect "the original still opens" 0 "^$" "PIN 4711" "$pass\n" -- "$file" get bank

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
