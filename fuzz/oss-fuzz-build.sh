#!/bin/bash -eu
# build.sh for lockbox's OSS-Fuzz project entry (projects/lockbox/build.sh). The base-builder
# image sets CC, CXX, CFLAGS, CXXFLAGS (sanitizer and coverage flags included),
# LIB_FUZZING_ENGINE and OUT; meson reads the compiler variables at setup. The project's
# Dockerfile installs meson, ninja-build, pkg-config and libsodium-dev.
#
# Produces in $OUT, per target: the fuzzer, <target>_seed_corpus.zip and <target>.dict.
source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir=${WORK:-/tmp}/lockbox-oss-fuzz-build

rm -rf "$build_dir"
# Static everything (the runner image has no libsodium), no unit tests, no -Werror: OSS-Fuzz's
# compilers and flags move on without us.
meson setup "$build_dir" "$source_dir" \
  --buildtype=plain \
  --default-library=static \
  -Dprefer_static=true \
  -Db_lundef=false \
  -Dwerror=false \
  -Dtests=false \
  -Dfuzzing=true \
  -Dfuzzing_engine="$LIB_FUZZING_ENGINE"
ninja -C "$build_dir"

for target in allocator_fuzzer lock_fuzzer container_fuzzer sealed_fuzzer; do
  cp "$build_dir/fuzz/$target" "$OUT/"
  cp "$source_dir/fuzz/$target.dict" "$OUT/"
  rm -f "$OUT/${target}_seed_corpus.zip"
  (cd "$source_dir/fuzz/corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
done
