#!/usr/bin/env bash
# SPDX-License-Identifier: ISC
# The library keeps its bookkeeping on its own mappings and contains no way for an exception to
# start: it references neither the C library's heap (malloc, free, ...) nor the C++ runtime's
# allocation (operator new, delete) nor anything that throws (__cxa_throw, and std::__throw_*,
# which std::map, std::vector and std::mutex call). So a C entry point cannot let an exception
# out, and a signal handler's lockbox call cannot wait for a heap lock its thread holds.
# Usage: no_heap_no_exceptions.sh LIBRARY...
set -euo pipefail
status=0
for library in "$@"; do
  found=$(nm -C --undefined-only "$library" 2>/dev/null | awk '{print $NF}' |
    grep -E '^(malloc|calloc|realloc|free|posix_memalign|aligned_alloc|memalign|valloc)(@|$)|operator new|operator delete|__cxa_throw|__cxa_allocate_exception|__cxa_rethrow|std::__throw_' |
    sort -u || true)
  if [ -n "$found" ]; then
    echo "$library uses the C heap, the C++ runtime's allocation, or exceptions:" >&2
    echo "$found" >&2
    status=1
  else
    echo "$library: no malloc or free, no operator new or delete, no throw"
  fi
done
exit $status
