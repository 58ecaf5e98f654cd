#!/bin/bash -eu
# SPDX-License-Identifier: ISC
# OSS-Fuzz's build script for lockbox (projects/lockbox/build.sh). The base-builder image sets
# CC, CXX, CFLAGS, CXXFLAGS (sanitizer and coverage flags included), LIB_FUZZING_ENGINE, SRC, WORK
# and OUT; meson reads the compiler variables at setup. It runs as $SRC/build.sh with the source
# in $SRC/lockbox (the Dockerfile's WORKDIR), or from the tree as fuzz/oss-fuzz/build.sh.
#
# Produces in $OUT, per target: the fuzzer, <target>_seed_corpus.zip and <target>.dict.
set -eu
if [ -n "${SRC:-}" ] && [ -f "$SRC/lockbox/meson.build" ]; then
  source_dir=$SRC/lockbox
elif [ -f "$(dirname "${BASH_SOURCE[0]}")/../../meson.build" ]; then
  source_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
elif [ -f meson.build ]; then
  source_dir=$PWD
else
  echo "build.sh: cannot find lockbox's source (\$SRC/lockbox, or this script's tree)" >&2
  exit 1
fi
build_dir=${WORK:-/tmp}/lockbox-oss-fuzz-build

rm -rf "$build_dir"
# Static everything (the runner image has no libsodium), no tests or examples, no -Werror:
# OSS-Fuzz's compilers and flags move on without us.
meson setup "$build_dir" "$source_dir" \
  --buildtype=plain \
  --default-library=static \
  -Dprefer_static=true \
  -Db_lundef=false \
  -Dwerror=false \
  -Dtests=disabled \
  -Dexamples=disabled \
  -Dvalgrind=disabled \
  -Dfuzzing=true \
  -Dfuzzing_engine="$LIB_FUZZING_ENGINE"
ninja -C "$build_dir"

for target in allocator_fuzzer lock_fuzzer container_fuzzer sealed_fuzzer; do
  cp "$build_dir/fuzz/$target" "$OUT/"
  cp "$source_dir/fuzz/$target.dict" "$OUT/"
  rm -f "$OUT/${target}_seed_corpus.zip"
  (cd "$source_dir/fuzz/corpus/$target" && zip -q -r "$OUT/${target}_seed_corpus.zip" .)
done
