#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""Writes the seed corpora under fuzz/corpus/<target>/: hand-shaped inputs that reach every op
of each interpreter (FuzzedDataProvider takes integers from the end of the input, bytes from
the front), plus a few pseudo-random ones. Deterministic: rerun it and nothing changes."""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))


def write(target, name, data):
    folder = os.path.join(HERE, "corpus", target)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, name), "wb") as out:
        out.write(bytes(data))


def main():
    rng = random.Random(20261123)
    for target in ("allocator_fuzzer", "lock_fuzzer", "container_fuzzer", "sealed_fuzzer"):
        for n in range(6):
            write(target, f"random-{n}", [rng.randrange(256) for _ in range(64 << n)])
        # Runs of one op value: many allocations, then many frees or locks.
        for op in range(9):
            write(target, f"op-{op}", [op, 0x20, 0x00, 0x10] * 64)
    # Sizes at the class boundaries and around a page.
    sizes = [0, 1, 8, 24, 40, 2040, 4088, 4096, 8184, 8185, 65536, 100001]
    data = []
    for size in sizes:
        data += list(size.to_bytes(4, "little")) + [0, 0x55]
    write("allocator_fuzzer", "class-boundaries", data * 4)
    # Strings across std::string's 15-character inline buffer and the size classes.
    text = b"correct horse battery staple " * 8
    write("container_fuzzer", "long-text", list(text) + [0, 1, 2, 3, 4, 5] * 16)
    # Seal, open twice, write, close, rekey, in a cycle over a few boxes.
    write("sealed_fuzzer", "cycle", list(text) + [0, 0, 1, 1, 3, 3, 2, 4, 5, 6] * 24)


if __name__ == "__main__":
    main()
