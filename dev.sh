#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# One entry point for newcomers and CI. Installs what is missing (Debian 12, as root), configures
# the build once, then:
#   ./dev.sh demo             build and run the demo: a scripted session with the vault example
#   ./dev.sh test             build and run the whole test suite
#   ./dev.sh sanitize         the whole suite under ASan+UBSan, the unit tests under TSan
#   ./dev.sh fuzz [SECONDS]   each fuzz target with libFuzzer+ASan+UBSan (default 60 s each)
#   ./dev.sh builds           what packagers build: gcc and clang release, static only, no doctest
#   ./dev.sh oss-fuzz         fuzz/oss-fuzz/build.sh with OSS-Fuzz's flags, each target on its
#                             seeds as an ordinary user at RLIMIT_MEMLOCK 64 KiB
#   ./dev.sh coverage         clang source coverage of src/ from the seed corpora and tests
#   ./dev.sh bench [--quick]  lockbox against its peers; writes bench/results/
#   ./dev.sh variants [--rounds N] [VARIANT...]  what each check costs (bench/variants/run.sh)
set -euo pipefail
cd "$(dirname "$0")"

BUILD_DIR=${BUILD_DIR:-build}
PACKAGES=(meson ninja-build pkg-config g++ libsodium-dev doctest-dev libgcrypt20-dev valgrind man-db strace)
FUZZ_PACKAGES=(clang libclang-rt-14-dev llvm-14 zip unzip libc++-14-dev libc++abi-14-dev)
FUZZ_TARGETS=(allocator_fuzzer lock_fuzzer container_fuzzer sealed_fuzzer)
BENCH_PACKAGES=(libssl-dev libgcrypt20-dev libbotan-2-dev libmimalloc-dev libclang-rt-14-dev gnuplot-nox strace)

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

# configure DIR [meson options...]: set up DIR once. Warnings are errors here and in CI, never
# in meson.build's defaults: a packager's compiler is not ours.
configure() {
  local dir=$1
  shift
  if [ ! -f "$dir/build.ninja" ]; then
    meson setup "$dir" -Dwerror=true -Ddefault_library=both "$@"
  fi
}

# Prints the plain "N passed, N failed" line from meson's machine-readable log of DIR
# (testlog.json, or testlog-SETUP.json for a test setup).
summarise_tests() {
  python3 - "$1/meson-logs" <<'PY'
import glob, json, os, sys
logs = glob.glob(os.path.join(sys.argv[1], "testlog*.json"))
if not logs:
    print("tests: 0 passed, 1 failed (the build failed)")
    sys.exit(0)
sys.argv[1] = logs[0]
counts = {"OK": 0, "FAIL": 0, "SKIP": 0, "TIMEOUT": 0, "ERROR": 0, "EXPECTEDFAIL": 0, "UNEXPECTEDPASS": 0}
for line in open(sys.argv[1]):
    result = json.loads(line).get("result")
    counts[result] = counts.get(result, 0) + 1
failed = counts["FAIL"] + counts["TIMEOUT"] + counts["ERROR"] + counts["UNEXPECTEDPASS"]
print(f"tests: {counts['OK'] + counts['EXPECTEDFAIL']} passed, {failed} failed, {counts['SKIP']} skipped")
PY
}

# run_tests DIR [meson test options...]: runs, summarises, and returns meson's status.
run_tests() {
  local dir=$1 status=0
  shift
  rm -f "$dir"/meson-logs/testlog*.json  # a failed build must not report the last run's results
  meson test -C "$dir" --print-errorlogs "$@" || status=$?
  summarise_tests "$dir"
  return $status
}

fuzz() {
  local seconds=${1:-60} dir=build-fuzz status=0
  CC=clang CXX=clang++ configure "$dir" -Dfuzzing=true -Dtests=disabled \
    -Db_sanitize=address,undefined -Db_lundef=false
  meson compile -C "$dir" >/dev/null
  for target in "${FUZZ_TARGETS[@]}"; do
    # The corpus grows in /tmp; the committed seeds stay as they are.
    local corpus findings
    corpus=$(mktemp -d /tmp/lockbox-$target-XXXXXX)
    # A directory of this run's own: an artifact left by an earlier run is not a new finding.
    findings=$(mktemp -d /tmp/lockbox-$target-findings-XXXXXX)
    cp fuzz/corpus/$target/* "$corpus/"
    echo "== $target: $seconds s"
    # Undefined behaviour is a finding too: stop at the first report.
    (cd /tmp && UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      "$OLDPWD/$dir/fuzz/$target" -max_total_time="$seconds" -print_final_stats=1 \
      -dict="$OLDPWD/fuzz/$target.dict" -artifact_prefix="$findings/" "$corpus" 2>&1) |
      grep -E "^stat::(number_of_executed_units|average_exec_per_sec|new_units_added|peak_rss_mb)|^Done|ERROR|SUMMARY|Test unit written" || true
    # libFuzzer leaves crash-* / leak-* / timeout-* artifacts when it finds something.
    if [ -n "$(ls -A "$findings")" ]; then
      echo "dev.sh: $target found a bug: $(ls "$findings"/*)" >&2
      status=1
    else
      rmdir "$findings"
    fi
    rm -rf "$corpus"
  done
  return $status
}

# The builds others make, each from scratch: release with gcc and with clang (everything,
# tests included, and the unit and fault suites run), static only (the whole suite), and a
# plain `meson setup` on a machine without doctest (the library, no tests, no error).
builds() {
  local status=0 compiler dir
  for compiler in gcc clang; do
    dir=build-release-$compiler
    rm -rf "$dir"
    echo "== --buildtype=release with $compiler"
    local cxx=g++
    [ "$compiler" == clang ] && cxx=clang++
    CC=$compiler CXX=$cxx configure "$dir" --buildtype=release
    { meson compile -C "$dir" >/dev/null && run_tests "$dir" --suite unit --suite faults; } || status=1
  done
  echo "== -Ddefault_library=static: the whole suite"
  rm -rf build-static
  configure build-static -Ddefault_library=static
  run_tests build-static || status=1
  echo "== plain meson setup without doctest installed (hidden in a private mount namespace)"
  rm -rf build-no-doctest
  mkdir -p /tmp/lockbox-no-doctest
  if unshare --mount sh -c 'mount --bind /tmp/lockbox-no-doctest /usr/include/doctest &&
        meson setup build-no-doctest >build-no-doctest.log 2>&1 &&
        meson compile -C build-no-doctest >>build-no-doctest.log 2>&1'; then
    if grep -q "doctest not found: the test suite is not built" build-no-doctest.log &&
       [ -e build-no-doctest/liblockbox.so ] && [ ! -e build-no-doctest/tests/unit_tests ]; then
      echo "the library built; the test suite was skipped, and meson said why"
    else
      echo "dev.sh: the build without doctest did not skip the tests as it should:" >&2
      cat build-no-doctest.log >&2
      status=1
    fi
  else
    echo "dev.sh: meson setup failed without doctest:" >&2
    cat build-no-doctest.log >&2
    status=1
  fi
  rm -f build-no-doctest.log
  return $status
}

# OSS-Fuzz's build, as its base-builder image runs it (fuzz/oss-fuzz/build.sh copied to $SRC,
# the source in $SRC/lockbox), with its ASan and its UBSan flags; then each target replays its
# seed corpus as an ordinary user whose RLIMIT_MEMLOCK is 64 KiB (a common container default).
oss_fuzz() {
  local status=0 sanitizer root
  for sanitizer in address undefined; do
    root=$(mktemp -d /tmp/lockbox-oss-fuzz-XXXXXX)
    mkdir -p "$root/src/lockbox" "$root/out" "$root/work"
    git ls-files -z | xargs -0 cp --parents -t "$root/src/lockbox"
    cp fuzz/oss-fuzz/build.sh "$root/src/build.sh"
    echo "== OSS-Fuzz build.sh, SANITIZER=$sanitizer"
    # shellcheck source=fuzz/oss-fuzz/local/flags.sh
    if (source fuzz/oss-fuzz/local/flags.sh "$sanitizer" && cd "$root/src/lockbox" &&
        SRC=$root/src OUT=$root/out WORK=$root/work bash "$root/src/build.sh") \
        >"$root/build.log" 2>&1; then
      bash fuzz/oss-fuzz/local/replay_seeds.sh "$root/out" || status=1
    else
      tail -30 "$root/build.log" >&2; cp "$root/build.log" /tmp/oss-fuzz-last-build.log
      status=1
    fi
    rm -rf "$root"
  done
  return $status
}

coverage() {
  local dir=build-coverage
  CC=clang CXX=clang++ configure "$dir" -Db_coverage=false \
    -Dc_args=-fprofile-instr-generate\ -fcoverage-mapping \
    -Dcpp_args=-fprofile-instr-generate\ -fcoverage-mapping \
    -Dc_link_args=-fprofile-instr-generate -Dcpp_link_args=-fprofile-instr-generate
  rm -rf "$dir/profiles"
  mkdir -p "$dir/profiles"
  LLVM_PROFILE_FILE="$PWD/$dir/profiles/%p.profraw" meson test -C "$dir" --suite fuzz >/dev/null
  llvm-profdata-14 merge -sparse "$dir"/profiles/*.profraw -o "$dir/fuzz.profdata"
  echo "== coverage of src/ from the fuzz seed corpora"
  llvm-cov-14 report "$dir/fuzz/allocator_fuzzer_replay" -object "$dir/fuzz/lock_fuzzer_replay" \
    -instr-profile="$dir/fuzz.profdata" "$PWD/src" 2>/dev/null | grep TOTAL
  rm -rf "$dir/profiles"
  mkdir -p "$dir/profiles"
  LLVM_PROFILE_FILE="$PWD/$dir/profiles/%p.profraw" meson test -C "$dir" >/dev/null || true
  llvm-profdata-14 merge -sparse "$dir"/profiles/*.profraw -o "$dir/all.profdata"
  echo "== coverage of src/ from the whole test suite"
  llvm-cov-14 report "$dir/tests/unit_tests" -object "$dir/liblockbox.so" \
    -instr-profile="$dir/all.profdata" "$PWD/src" 2>/dev/null | grep TOTAL
}

command=${1:-}
shift || true
case "$command" in
  demo)
    ensure_packages "${PACKAGES[@]}"
    configure "$BUILD_DIR"
    meson compile -C "$BUILD_DIR" >/dev/null
    bash examples/vault_demo.sh "$BUILD_DIR/examples/vault"
    ;;
  test)
    # clang provides FuzzedDataProvider.h, so the fuzz targets replay their corpora here too.
    ensure_packages "${PACKAGES[@]}" clang
    configure "$BUILD_DIR"
    echo "== the suite with anonymous arenas (the default backend)"
    anon_status=0
    run_tests "$BUILD_DIR" "$@" || anon_status=$?
    echo "== the suite again with LOCKBOX_BACKEND=auto (memfd_secret arenas)"
    secretmem_status=0
    run_tests "$BUILD_DIR" --setup secretmem "$@" || secretmem_status=$?
    [ $anon_status -eq 0 ] && [ $secretmem_status -eq 0 ]
    ;;
  sanitize)
    ensure_packages "${PACKAGES[@]}" clang
    configure build-asan -Db_sanitize=address,undefined -Db_lundef=false
    asan_status=0
    run_tests build-asan "$@" || asan_status=$?
    configure build-tsan -Db_sanitize=thread -Db_lundef=false
    # The multi-threaded tests live in the unit suite; TSan cannot run mlock-heavy system tests
    # any better than ASan already does.
    tsan_status=0
    run_tests build-tsan --suite unit "$@" || tsan_status=$?
    [ $asan_status -eq 0 ] && [ $tsan_status -eq 0 ]
    ;;
  fuzz)
    ensure_packages "${PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
    fuzz "$@"
    ;;
  builds)
    ensure_packages "${PACKAGES[@]}" clang
    builds
    ;;
  oss-fuzz)
    ensure_packages "${PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
    oss_fuzz
    ;;
  coverage)
    ensure_packages "${PACKAGES[@]}" "${FUZZ_PACKAGES[@]}"
    coverage
    ;;
  bench)
    ensure_packages "${PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
    configure build-bench -Dbench=enabled -Dtests=disabled -Dbuildtype=release
    meson compile -C build-bench >/dev/null
    mkdir -p bench/results
    build-bench/bench/lockbox_bench --out bench/results "$@"
    gnuplot -c bench/chart.gp bench/results/results.csv bench/results/chart.png
    gnuplot -c bench/bulk_chart.gp bench/results/bulk.csv bench/results/bulk_chart.png
    # Steady state makes no mmap/mprotect/mlock/munlock/madvise: ten times the operations, the
    # same system calls (all of them from start-up and warm-up).
    for operations in 100000 1000000; do
      strace -f -c -e trace=mmap,munmap,mprotect,mlock,munlock,madvise -o "bench/results/.strace" \
        build-bench/bench/lockbox_bench --steady $operations >/dev/null
      echo "$operations operations: $(grep total bench/results/.strace | awk '{print $4}') memory system calls"
    done | tee bench/results/syscalls.txt
    rm -f bench/results/.strace
    # The least a large-block cycle costs under #12's promises, whatever the allocator (floors.cpp).
    build-bench/bench/lockbox_floors | tee bench/results/floors.txt
    echo "bench: results in bench/results/ (results.md, results.csv, chart.png, bulk.csv, bulk_chart.png, syscalls.txt, floors.txt)"
    ;;
  variants)
    ensure_packages "${PACKAGES[@]}" "${BENCH_PACKAGES[@]}"
    bench/variants/run.sh "$@"
    ;;
  *)
    # The header comment, up to the first line of code.
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
    exit 2
    ;;
esac
