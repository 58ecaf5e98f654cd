#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
"""lockbox driven from Python through ctypes, which loads it with dlopen.
Usage: ctypes_test.py PATH-TO-liblockbox.so"""
import ctypes
import sys


def main(path):
    lib = ctypes.CDLL(path, use_errno=True)
    lib.lockbox_malloc.restype = ctypes.c_void_p
    lib.lockbox_malloc.argtypes = [ctypes.c_size_t]
    lib.lockbox_free.argtypes = [ctypes.c_void_p]
    lib.lockbox_last_error.restype = ctypes.c_char_p
    lib.lockbox_seal.restype = ctypes.c_void_p
    lib.lockbox_seal.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.lockbox_sealed_open.restype = ctypes.c_void_p
    lib.lockbox_sealed_open.argtypes = [ctypes.c_void_p]
    lib.lockbox_sealed_close.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    lib.lockbox_sealed_free.argtypes = [ctypes.c_void_p]
    lib.lockbox_memeq.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]

    failures = []

    def expect(condition, what):
        if not condition:
            failures.append(what)

    key = lib.lockbox_malloc(32)
    expect(key is not None, "lockbox_malloc(32) returned NULL")
    ctypes.memset(key, 0x42, 32)
    other = lib.lockbox_malloc(32)
    ctypes.memset(other, 0x42, 32)
    expect(lib.lockbox_memeq(key, other, 32) == 1, "memeq of equal keys")
    lib.lockbox_free(key)
    lib.lockbox_free(other)

    ctypes.set_errno(0)
    expect(lib.lockbox_malloc(2**63) is None, "a huge request succeeded")
    expect(ctypes.get_errno() == 12, f"errno {ctypes.get_errno()}, not ENOMEM")
    expect(b"more than lockbox can ever provide" in lib.lockbox_last_error(),
           "no reason for the huge request")

    secret = ctypes.create_string_buffer(b"hunter2")
    box = lib.lockbox_seal(secret, len(secret.value))
    ctypes.memset(secret, 0, len(secret))
    expect(box is not None, "lockbox_seal failed")
    view = lib.lockbox_sealed_open(box)
    expect(ctypes.string_at(view, 7) == b"hunter2", "the box did not give its secret back")
    lib.lockbox_sealed_close(box, view)
    lib.lockbox_sealed_free(box)

    for failure in failures:
        print("FAIL:", failure)
    print("ctypes: all passed" if not failures else "ctypes: FAILED")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
