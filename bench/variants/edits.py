#!/usr/bin/env python3
"""Throwaway variants of lockbox, for measuring what each check and each size costs.

A variant is a copy of the sources with one or more named edits applied (NAME+NAME applies
several). None of them is an option of the library: each weakens a promise of SECURITY.md or
spends more locked memory, and exists only so that README's "where the time goes" tables can be
reproduced by `./dev.sh variants`.

  edits.py list                 the edits and what each does
  edits.py apply NAME[+NAME] DIR  apply them to the copy of the sources in DIR
  edits.py check DIR            fail if any edit no longer applies to the sources in DIR

Each edit replaces exact text; when the sources change under it, `check` (run by the test
suite) fails, and the edit must be brought up to date with them.
"""
import sys
from pathlib import Path

SLOT = "src/small/slot.hpp"
CACHE = "src/heap/thread_cache.hpp"

CAPACITY = "capacity[c] = slot <= 256 ? 16 : slot <= 1024 ? 8 : slot <= 4096 ? 4 : 2;"
MAX_SLOTS = "static constexpr std::size_t kMaxSlots = 16;"
SCAN = ("  if (!detail::all_zero(slot.address, slot_size)) "
        "report::fatal_write_after_free(slot.address);")
CANARY_WRITE = "  write_slot_canary(slot.address, slot_canary(size, slot_size));"
CANARY_CHECK = "  if (!slot_canary_intact(bytes, canary)) report::fatal_canary_broken(pointer);"
CAS = """      !slot.compare_exchange_strong(
          word, slot_word(kSlotCached, class_index, 0, word & kSlotOnUnlockedPages),
          std::memory_order_acq_rel)) {"""


def bins(slots):
    """Every bin up to 4 KiB holds `slots` slots (shipped: 16, 8 or 4 by size)."""
    return [
        (CACHE, CAPACITY,
         f"capacity[c] = slot <= 4096 ? {slots} : 2;"),
        (CACHE, MAX_SLOTS, f"static constexpr std::size_t kMaxSlots = {max(slots, 16)};"),
    ]


EDITS = {
    "no_scan": ("no write-after-free scan: a slot handed out again is not read",
                [(SLOT, SCAN, "")]),
    "sampled_scan": (
        "a sampled scan: the first and last 32 bytes of every slot above 64 bytes, the whole "
        "slot on every 16th hand-out of the thread",
        [(SLOT, SCAN, """  static thread_local unsigned t_hand_outs = 0;
  bool whole = slot_size <= 64 || (++t_hand_outs & 15) == 0;
  bool zero = whole ? detail::all_zero(slot.address, slot_size)
                    : detail::all_zero(slot.address, 32) &&
                          detail::all_zero(slot.address + slot_size - 32, 32);
  if (!zero) report::fatal_write_after_free(slot.address);""")]),
    "no_canary": ("no canary: none written on hand-out, none checked on free",
                  [(SLOT, CANARY_WRITE, ""), (SLOT, CANARY_CHECK, "  (void)canary;")]),
    "no_cas": ("no atomic double-free check: the slot word is read, then stored",
               [(SLOT, CAS, """      (slot.store(slot_word(kSlotCached, class_index, 0, word & kSlotOnUnlockedPages),
                  std::memory_order_relaxed),
       false)) {""")]),
    "bins16": ("16 slots in every thread-cache bin up to 4 KiB (up to 464 KiB cached per thread, "
               "shipped: 191 KiB)", bins(16)),
    "bins64": ("64 slots in every thread-cache bin up to 4 KiB (up to 1.7 MiB cached per thread)",
               bins(64)),
}


def apply(names, root, write):
    for name in names:
        if name not in EDITS:
            sys.exit(f"edits.py: no edit named {name!r} (see `edits.py list`)")
        for path, old, new in EDITS[name][1]:
            file = Path(root) / path
            text = file.read_text()
            if text.count(old) != 1:
                sys.exit(f"edits.py: edit {name!r} no longer applies: {path} has "
                         f"{text.count(old)} copies of the text it replaces, not 1")
            if write:
                file.write_text(text.replace(old, new))


def main(argv):
    if len(argv) == 2 and argv[1] == "list":
        for name, (what, _) in EDITS.items():
            print(f"{name:13} {what}")
    elif len(argv) == 4 and argv[1] == "apply":
        apply(argv[2].split("+"), argv[3], write=True)
    elif len(argv) == 3 and argv[1] == "check":
        apply(list(EDITS), argv[2], write=False)
        print(f"edits.py: all {len(EDITS)} edits apply")
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
