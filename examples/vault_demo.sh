#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The quick-start demo: a scripted session with the vault example. Passphrases come from
# standard input here; at a terminal the vault asks for them without echo.
# Usage: vault_demo.sh PATH-TO-VAULT-BINARY
set -euo pipefail
exec 2>&1  # the vault's messages in order with the rest
vault=$1
work=$(mktemp -d /tmp/lockbox-vault-demo-XXXXXX)
trap 'rm -rf "$work"' EXIT
file=$work/demo.vault
pass='correct horse battery staple'

step() { printf '\n$ %s\n' "$*"; }

step "vault $file init"
printf '%s\n' "$pass" | "$vault" "$file" init
step "vault put email; vault put bank"
printf '%s\n%s\n' "$pass" 'hunter2' | "$vault" "$file" put email
printf '%s\n%s\n' "$pass" 'PIN 4711, account 0042' | "$vault" "$file" put bank
step "vault list"
printf '%s\n' "$pass" | "$vault" "$file" list
step "vault --stats get bank    (the secret, then what lockbox held while it worked)"
printf '%s\n' "$pass" | "$vault" --stats "$file" get bank
step "od -c $file | head -4     (on disk: a header, then ciphertext)"
od -c "$file" | head -4
step "vault get email, with the wrong passphrase"
status=0
printf 'Tr0ub4dor&3\n' | "$vault" "$file" get email || status=$?
echo "(exit code $status)"
step "vault get nothing-here"
status=0
printf '%s\n' "$pass" | "$vault" "$file" get nothing-here || status=$?
echo "(exit code $status)"
