# SPDX-License-Identifier: ISC
# Sourced by ./dev.sh oss-fuzz, not part of the OSS-Fuzz submission: the environment OSS-Fuzz's
# base-builder image gives build.sh for SANITIZER=address or undefined (its compile flags,
# coverage instrumentation, libc++ and the libFuzzer engine), so CI builds as OSS-Fuzz will.
# Usage: source flags.sh address|undefined
case "$1" in
  address)
    sanitizer_flags="-fsanitize=address -fsanitize-address-use-after-scope" ;;
  undefined)
    fatal=array-bounds,bool,builtin,enum,float-divide-by-zero,function,integer-divide-by-zero,null,object-size,return,returns-nonnull-attribute,shift,signed-integer-overflow,unreachable,vla-bound,vptr
    # unsigned-integer-overflow is reported, not fatal (and silenced at run time), as there.
    sanitizer_flags="-fsanitize=$fatal,unsigned-integer-overflow -fno-sanitize-recover=$fatal" ;;
  *)
    echo "flags.sh: address or undefined, not '$1'" >&2
    return 2 ;;
esac
export SANITIZER=$1
export CC=clang CXX=clang++
export CFLAGS="-O1 -fno-omit-frame-pointer -gline-tables-only -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION $sanitizer_flags -fsanitize=fuzzer-no-link"
export CXXFLAGS="$CFLAGS -stdlib=libc++"
# OSS-Fuzz's libFuzzer is built against libc++; Debian's is built against libstdc++, so here the
# engine brings its own standard library along (std::__1 and std:: live side by side; meson
# links --as-needed, which would drop it before the engine, linked last, needs it; and clang
# turns a plain -lstdc++ into -lc++ under -stdlib=libc++).
export LIB_FUZZING_ENGINE="-fsanitize=fuzzer -Wl,--no-as-needed -l:libstdc++.so.6 -Wl,--as-needed"
unset sanitizer_flags fatal
