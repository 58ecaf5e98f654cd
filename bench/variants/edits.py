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
HEAP = "src/heap/heap.cpp"

LIMITS = """      limits[c] = slot <= 256    ? ClassLimits{16, 16}
                  : slot <= 1024 ? ClassLimits{8, 8}
                  : slot <= 4096 ? ClassLimits{4, 4}
                                 : ClassLimits{4, 2};"""
RING = "static constexpr std::uint32_t kRingSlots = 32;"
SCAN = """  if (!detail::all_zero(slot.address, slot_size)) {
    report::fatal_write_after_free(operation, slot.address);
  }"""
CANARY_WRITE = ("  write_slot_canary(slot.address, "
                "slot_canary(size, slot_size, slot_canary_key(kept)));")
CANARY_CHECK = ("  if (!slot_canary_intact(bytes, canary)) "
                "report::fatal_canary_broken(operation, pointer);")
SLACK_CHECK = ("  if (!slot_slack_zero(bytes, canary, slot_size)) "
               "report::fatal_slack_written(operation, pointer);")
CAS = """      !slot.compare_exchange_strong(word, slot_word(kSlotCached, class_index, 0, word),
                                    std::memory_order_acq_rel)) {"""
RANDOM_PICK = "bin.take_eligible(static_cast<std::uint32_t>(cache.random.below_buffered(bin.eligible())));"


def bins(slots):
    """Every bin up to 4 KiB holds `slots` eligible slots besides its quarantine."""
    ring = 32 if slots <= 16 else 128
    return [
        (CACHE, LIMITS,
         f"      limits[c] = slot <= 256 ? ClassLimits{{16, {slots}}} : slot <= 1024 ? "
         f"ClassLimits{{8, {slots}}} : slot <= 4096 ? ClassLimits{{4, {slots}}} : "
         "ClassLimits{4, 2};"),
        (CACHE, RING, f"static constexpr std::uint32_t kRingSlots = {ring};"),
    ]


EDITS = {
    "no_scan": ("no write-after-free scan: a slot handed out again is not read",
                [(SLOT, SCAN, "  (void)operation;")]),
    "sampled_scan": (
        "a sampled scan: the first and last 32 bytes of every slot above 64 bytes, the whole "
        "slot on every 16th hand-out of the thread",
        [(SLOT, SCAN, """  static thread_local unsigned t_hand_outs = 0;
  bool whole = slot_size <= 64 || (++t_hand_outs & 15) == 0;
  bool zero = whole ? detail::all_zero(slot.address, slot_size)
                    : detail::all_zero(slot.address, 32) &&
                          detail::all_zero(slot.address + slot_size - 32, 32);
  if (!zero) report::fatal_write_after_free(operation, slot.address);""")]),
    "no_canary": ("no canary: none written on hand-out, none checked on free, no slack check",
                  [(SLOT, CANARY_WRITE, ""), (SLOT, CANARY_CHECK, "  (void)canary;"),
                   (SLOT, SLACK_CHECK, "")]),
    "no_cas": ("no atomic double-free check: the slot word is read, then stored",
               [(SLOT, CAS, """      (slot.store(slot_word(kSlotCached, class_index, 0, word),
                  std::memory_order_relaxed),
       false)) {""")]),
    "no_quarantine": ("freed slots are eligible at once (the bins of 0.1.0: 16, 8, 4, 2 slots)",
                      [(CACHE, LIMITS, """      limits[c] = slot <= 256    ? ClassLimits{0, 16}
                  : slot <= 1024 ? ClassLimits{0, 8}
                  : slot <= 4096 ? ClassLimits{0, 4}
                                 : ClassLimits{0, 2};""")]),
    "no_random": ("the oldest eligible slot goes out, no random choice",
                  [(HEAP, RANDOM_PICK, "bin.take_eligible(0);")]),
    "bins16": ("16 eligible slots in every thread-cache bin up to 4 KiB", bins(16)),
    "bins64": ("64 eligible slots in every thread-cache bin up to 4 KiB", bins(64)),
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
