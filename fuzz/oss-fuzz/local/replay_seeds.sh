#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# Used by ./dev.sh oss-fuzz, not part of the OSS-Fuzz submission: runs every fuzzer build.sh
# left in OUT on its seed corpus (<target>_seed_corpus.zip) with the run-time options of
# OSS-Fuzz's base-runner, twice: as is, and as an ordinary user (nobody, no capabilities) whose
# RLIMIT_MEMLOCK is 64 KiB, where an exhausted budget is a normal outcome and not a crash.
# Usage: replay_seeds.sh OUT
set -euo pipefail
out=$1
export ASAN_OPTIONS=alloc_dealloc_mismatch=0:allocator_may_return_null=1:check_malloc_usable_size=0:detect_container_overflow=1:detect_leaks=1:detect_stack_use_after_return=1:handle_abort=1:handle_segv=1:strict_memcmp=1:symbolize=1:dedup_token_length=3
export UBSAN_OPTIONS=print_stacktrace=1:print_summary=1:silence_unsigned_overflow=1:halt_on_error=1
status=0
for dict in "$out"/*.dict; do
  target=$(basename "$dict" .dict)
  # Where nobody can read them: the fuzzer, its dictionary and its seeds.
  seeds=$(mktemp -d /tmp/lockbox-seeds-XXXXXX)
  unzip -q "$out/${target}_seed_corpus.zip" -d "$seeds/corpus"
  cp "$out/$target" "$dict" "$seeds/"
  chmod -R a+rX "$seeds"
  count=$(find "$seeds/corpus" -type f | wc -l)
  for who in as-is nobody-64KiB; do
    log=$(mktemp /tmp/lockbox-replay-XXXXXX)
    chmod a+rw "$log"
    if [ "$who" == as-is ]; then
      runner=()
    else
      runner=(prlimit --memlock=65536:65536 setpriv --reuid=65534 --regid=65534 --clear-groups
              --inh-caps=-all --bounding-set=-all --)
    fi
    if (cd /tmp && "${runner[@]}" "$seeds/$target" -runs=0 -dict="$seeds/$target.dict" "$seeds/corpus" >"$log" 2>&1); then
      echo "$target: $count seeds, $who: no finding"
    else
      echo "$target: $count seeds, $who: FAILED" >&2
      grep -E "ERROR|runtime error|SUMMARY|lockbox: fatal|==[0-9]+==" "$log" | head -20 >&2 || tail -20 "$log" >&2
      status=1
    fi
    rm -f "$log"
  done
  rm -rf "$seeds"
done
exit $status
