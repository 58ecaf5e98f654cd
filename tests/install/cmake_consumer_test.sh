#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# A CMake project finds the installed lockbox with find_package(lockbox CONFIG) and links
# lockbox::lockbox, shared (the default) and static (lockbox_USE_STATIC); both programs run.
# Usage: cmake_consumer_test.sh BUILD-DIR
set -euo pipefail
build=$1
# shellcheck source=stage.sh
source "$(dirname "$0")/stage.sh"
if ! command -v cmake >/dev/null; then
  echo "cmake is not installed: skipped"
  exit 77
fi
stage_install "$build"
# The version this build installs (MAJOR.MINOR): before 1.0 a consumer asks for exactly that.
version=$(awk '/define LOCKBOX_VERSION_MAJOR/ {major=$3} /define LOCKBOX_VERSION_MINOR/ {minor=$3}
               END {print major "." minor}' "$build/include/lockbox/version.h")
project=$stage/consumer
mkdir -p "$project"
cat > "$project/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.16)
project(lockbox_consumer C)
find_package(lockbox $version REQUIRED CONFIG)
add_executable(consumer consumer.c)
target_link_libraries(consumer PRIVATE lockbox::lockbox)
CMAKE
cat > "$project/consumer.c" <<'C'
#include <lockbox/lockbox.h>
#include <stdio.h>
int main(void) {
  void* secret = lockbox_malloc(64);
  int owned = lockbox_owns(secret);
  lockbox_free(secret);
  printf("%s %d\n", LOCKBOX_VERSION_STRING, owned);
  return owned == 1 ? 0 : 1;
}
C
expected="$(pkg-config --modversion lockbox) 1"
consumer() {
  local kind=$1
  shift
  cmake -S "$project" -B "$project/build-$kind" -DCMAKE_PREFIX_PATH="$prefix" "$@" >/dev/null &&
    cmake --build "$project/build-$kind" >/dev/null &&
    [ "$(LD_LIBRARY_PATH=$libdir "$project/build-$kind/consumer")" == "$expected" ]
}
if [ -e "$libdir/liblockbox.so" ]; then
  check "find_package(lockbox) and lockbox::lockbox, shared" consumer shared
  check "the library it linked is lockbox's shared one" \
    sh -c "LD_LIBRARY_PATH='$libdir' ldd '$project/build-shared/consumer' | grep -q 'liblockbox.so.1 => $libdir'"
fi
if [ -e "$libdir/liblockbox.a" ]; then
  check "find_package(lockbox) and lockbox::lockbox, static" consumer static -Dlockbox_USE_STATIC=ON
  check "the static program needs no liblockbox.so" \
    sh -c "! readelf -d '$project/build-static/consumer' | grep -q liblockbox"
fi
# The version file: a package older than the one asked for is not taken.
mkdir -p "$stage/too-new"
sed "s/find_package(lockbox $version /find_package(lockbox 99.0 /" "$project/CMakeLists.txt" \
  > "$stage/too-new/CMakeLists.txt"
cp "$project/consumer.c" "$stage/too-new/"
check "find_package(lockbox 99.0) is refused" \
  sh -c "! cmake -S '$stage/too-new' -B '$stage/too-new/build' -DCMAKE_PREFIX_PATH='$prefix' >/dev/null 2>&1"
finish
