#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Measures throwaway variants of lockbox against the shipped build and mimalloc +
# sodium_memzero, on the benchmark's own 32-byte pair and mixed workloads
# (lockbox_bench --time). A variant is this tree built with private compile-time switches
# (src/support/bench_switches.hpp: one check compiled out, or one size changed), or another
# revision of the sources (rev:REV, e.g. rev:HEAD~3, to compare before and after a change). All
# are built in /tmp/lockbox-variants/, then run in turn, ROUNDS times, so that the machine's
# drift falls on each alike; the table gives the fastest round of each.
#
#   bench/variants/run.sh [--rounds N] [VARIANT...]   (VARIANT: NAME, NAME+NAME, or rev:REV)
#   bench/variants/run.sh --list                       the variants and what each does
#   bench/variants/run.sh --check                      fail if a variant names an unknown switch
#
# Run through `./dev.sh variants`, which installs the benchmark's packages first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
switches_header=$root/src/support/bench_switches.hpp

# name | switches | what it does
VARIANTS="
no_scan|-DLOCKBOX_BENCH_NO_SCAN=1|no write-after-free scan: a slot handed out again is not read
sampled_scan|-DLOCKBOX_BENCH_SAMPLED_SCAN=1|the first and last 32 bytes of every slot above 64 bytes, the whole slot on every 16th hand-out
no_canary|-DLOCKBOX_BENCH_NO_CANARY=1|no canary written on hand-out, none checked on free, no slack check
no_cas|-DLOCKBOX_BENCH_NO_CAS=1|no atomic double-free check: the slot word is read, then stored
no_quarantine|-DLOCKBOX_BENCH_NO_QUARANTINE=1|freed slots are eligible at once (the bins of 0.1.0)
no_random|-DLOCKBOX_BENCH_NO_RANDOM=1|the oldest eligible slot goes out, no random choice
bins16|-DLOCKBOX_BENCH_ELIGIBLE=16|16 eligible slots in every thread-cache bin up to 4 KiB
bins64|-DLOCKBOX_BENCH_ELIGIBLE=64|64 eligible slots in every thread-cache bin up to 4 KiB
"

switches_of() {  # NAME[+NAME...]
  local part flags="" found
  IFS=+ read -ra parts <<<"$1"
  for part in "${parts[@]}"; do
    found=$(printf '%s\n' "$VARIANTS" | awk -F'|' -v n="$part" '$1 == n { print $2 }')
    [ -n "$found" ] || { echo "variants: no variant named $part (see --list)" >&2; return 1; }
    flags="$flags $found"
  done
  printf '%s' "${flags# }"
}

case "${1:-}" in
  --list)
    printf '%s\n' "$VARIANTS" | awk -F'|' 'NF == 3 { printf "%-14s %s\n", $1, $3 }'
    exit 0
    ;;
  --check)
    status=0
    for macro in $(printf '%s\n' "$VARIANTS" | awk -F'|' 'NF == 3 { print $2 }' |
                   grep -o 'LOCKBOX_BENCH_[A-Z_]*'); do
      grep -q "#ifndef $macro\$" "$switches_header" ||
        { echo "variants: $macro is not a switch of $switches_header" >&2; status=1; }
    done
    [ $status -eq 0 ] && echo "variants: every switch exists"
    exit $status
    ;;
esac

rounds=5
if [ "${1:-}" = "--rounds" ]; then
  rounds=$2
  shift 2
fi
if [ $# -eq 0 ]; then
  set -- no_cas no_canary no_scan no_cas+no_canary+no_scan bins16 bins64 no_scan+bins16 \
    sampled_scan sampled_scan+bins16
fi
variants=(shipped "$@")
work=/tmp/lockbox-variants

build() {
  local name=$1 dir=$work/${1//[:\/]/_} source=$root flags=""
  rm -rf "$dir"
  mkdir -p "$dir"
  if [[ $name == rev:* ]]; then
    source=$dir/source
    mkdir -p "$source"
    git -C "$root" archive "${name#rev:}" | tar -x -C "$source"
  elif [ "$name" != shipped ]; then
    flags=$(switches_of "$name")
  fi
  (meson setup "$dir/build" "$source" -Dwerror=true -Dbuildtype=release -Dbench=enabled \
      -Dtests=disabled "-Dcpp_args=$flags" >/dev/null &&
    meson compile -C "$dir/build" bench/lockbox_bench >/dev/null) ||
    { echo "variants: $name does not build" >&2; exit 1; }
}
bench_of() { echo "$work/${1//[:\/]/_}/build/bench/lockbox_bench"; }

for name in "${variants[@]}"; do
  echo "variants: building $name" >&2
  build "$name"
done

declare -A best
keep_fastest() {  # key value
  [ -n "$2" ] || { echo "variants: timing $1 failed" >&2; exit 1; }
  local old=${best[$1]:-}
  if [ -z "$old" ] || awk -v a="$2" -v b="$old" 'BEGIN { exit !(a < b) }'; then best[$1]=$2; fi
}
for ((round = 1; round <= rounds; round++)); do
  echo "variants: round $round of $rounds" >&2
  for workload in pair mixed; do
    keep_fastest "mimalloc $workload" "$("$(bench_of shipped)" --time mimalloc "$workload")"
    for name in "${variants[@]}"; do
      keep_fastest "$name $workload" "$("$(bench_of "$name")" --time lockbox "$workload")"
    done
  done
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
echo "Fastest of $rounds interleaved rounds, ns per operation (each the benchmark's median of 7"
echo "runs); ratios to mimalloc + sodium_memzero. \`bench/variants/run.sh --rounds $rounds $*\`"
echo
echo "| build | 32 B pair | mixed 16 B-4 KiB |"
echo "|---|---|---|"
for name in "${variants[@]}" mimalloc; do
  pair=${best["$name pair"]}
  mixed=${best["$name mixed"]}
  pair_ratio=$(ratio "$pair" "${best[mimalloc pair]}")
  mixed_ratio=$(ratio "$mixed" "${best[mimalloc mixed]}")
  echo "| $name | $pair ($pair_ratio) | $mixed ($mixed_ratio) |"
done
