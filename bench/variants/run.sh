#!/usr/bin/env bash
# Measures throwaway variants of lockbox (edits.py) against the shipped sources and mimalloc +
# sodium_memzero, on the benchmark's own 32-byte pair and mixed workloads
# (lockbox_bench --time). Every variant is built from a copy of this tree in
# /tmp/lockbox-variants/, then all of them run in turn, ROUNDS times, so that the machine's drift
# falls on each alike; the table gives the fastest round of each.
#
#   bench/variants/run.sh [--rounds N] [VARIANT...]   (VARIANT: NAME or NAME+NAME, edits.py list)
#
# Run through `./dev.sh variants`, which installs the benchmark's packages first.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
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
  local name=$1 dir=$work/$1
  rm -rf "$dir"
  mkdir -p "$dir"
  (cd "$root" && cp -r meson.build meson_options.txt src include bench tests examples fuzz "$dir/")
  [ "$name" = shipped ] || python3 "$root/bench/variants/edits.py" apply "$name" "$dir"
  # Set up from inside the copy: meson must see the copy's sources, not this tree's.
  (cd "$dir" && meson setup build -Dwerror=true -Dbuildtype=release -Dbench=true -Dtests=false >/dev/null &&
    meson compile -C build bench/lockbox_bench >/dev/null) ||
    { echo "variants: $name does not build" >&2; exit 1; }
}

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
    keep_fastest "mimalloc $workload" \
      "$("$work/shipped/build/bench/lockbox_bench" --time mimalloc "$workload")"
    for name in "${variants[@]}"; do
      keep_fastest "$name $workload" \
        "$("$work/$name/build/bench/lockbox_bench" --time lockbox "$workload")"
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
