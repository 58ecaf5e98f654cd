#!/usr/bin/env python3
# SPDX-License-Identifier: ISC
# Counts what a workload of cost_workload asks of the kernel between its two markers, under
# strace: system calls per operation, opens of /proc (or of anything), sched_yield and futex
# waits and wakes. Counts, never timings: the regression checks for issue #14's constant cost.
# Usage: syscall_count_test.py STRACE COST_WORKLOAD CASE
import collections
import os
import re
import subprocess
import sys
import tempfile

MEMORY = {"mmap", "munmap", "mprotect", "mlock", "munlock", "madvise", "mremap"}

# case: (workload arguments, operations between the markers, checks)
# A check is (what, bound): the count of `what` divided by the operations must not exceed it.
CASES = {
    # 3 rounds of 20,000 allocations and 20,000 frees (as nobody at 8 MiB, as every case): the
    # pages stay from one round to the next (the reserve is trimmed only after 100 ms over its
    # limit), so none of them makes a memory call: 0 now. When every round's frees trimmed the
    # reserve, about 0.006 per operation (and 0.022 when a commit was one call per page).
    "bulk-20000": (["bulk", "20000"], 120000, [("memory", 0.001), ("open", 0)]),
    # The same beside 64 KiB the application locked itself and 10,000 mappings: no more.
    "bulk-20000-crowded": (["bulk", "20000", "crowded"], 120000,
                           [("memory", 0.001), ("open", 0)]),
    # 150,000 keys hold 7.2 MB of the 8 MiB: the budget has no room to lock the reserve again,
    # so it goes back at once, each round (0.005 per operation), one call per run of pages,
    # never per key.
    "bulk-150000": (["bulk", "150000"], 900000, [("memory", 0.015), ("open", 0)]),
    # BEST_EFFORT past the budget: 3,000 blocks of 4,000 bytes (12 MB against 8 MiB), three
    # rounds. The pages committed unlocked stay, empty, for the next round, and the limit is
    # read once per clock tick at most: 4 memory calls in 18,000 operations. Each page used to
    # go back when it emptied and come again, and each failed charge read the limit and took
    # the large heap's lock: 0.93 memory calls and 1.56 calls in all per operation.
    "past-budget-4000": (["past-budget", "3000", "4000"], 18000,
                         [("memory", 0.01), ("all", 0.02), ("open", 0)]),
    # lockbox_lock + lockbox_unlock: mlock, munlock and the few calls around them (one hole
    # check, one MADV_COLD, two dump advices, one mlockall probe, the signal mask twice),
    # whatever the process looks like.
    "lock-1000": (["lock", "1000"], 1000, [("all", 12), ("open", 0)]),
    "lock-1000-crowded": (["lock", "1000", "crowded"], 1000, [("all", 12), ("open", 0)]),
    "lock-1000-straddling": (["lock", "1000", "straddling"], 1000, [("all", 12), ("open", 0)]),
    # A refused lock (a PROT_NONE page, EACCES) beside 10,000 mappings: the refusal is told
    # from the limit by copying a byte of each page (process_vm_readv), not by reading smaps,
    # which took one open and about 3,000 reads of 4 KiB per refusal here. Counted: the hole
    # check, MADV_COLD, mlock, munlock, the probe and the signal mask twice.
    "lock-refused-1000-crowded": (["lock-refused", "1000", "crowded"], 1000,
                                  [("all", 12), ("open", 0)]),
    # A freed 256 KiB block comes back from the cache: one mprotect each way.
    "large-262144": (["large", "262144", "200"], 200, [("memory", 2), ("open", 0)]),
    # Oversubscribed: no sched_yield at all (the locks sleep on a futex instead of spinning).
    "threads-8": (["threads", "8", "20000"], 160000, [("sched_yield", 0), ("open", 0)]),
    "threads-32": (["threads", "32", "5000"], 160000, [("sched_yield", 0), ("open", 0)]),
    # Two long-lived threads, 16 B to 64 KiB, all slots: in steady state the pages stay. 0 to
    # 0.0043 memory calls per operation in 20 runs (median 0.0015; with 40,000 operations per
    # thread a run reached 0.0085: the budget's occasional trims need a longer average); 0.0707
    # when the reserve was trimmed at half the committed pages and blocks of 56 to 64 KiB were
    # large (two mprotects per cycle).
    "threads-steady-2": (["steady", "2", "100000"], 200000, [("memory", 0.01), ("open", 0)]),
    # Eight such threads under BEST_EFFORT, with about 16 MiB live against the 8 MiB limit. A
    # shard that needed a page gave up another shard's empty locked pages to lock it, and that
    # shard did the same back: 0.78 to 0.99 memory calls and 0.15 to 0.22 futex waits per
    # operation. Now a reclaim for memory that may stay unlocked leaves a shard's reserve alone
    # while the shard draws on it: 0.0004 to 0.010 memory calls and about 0.004 futex waits in
    # 9 runs.
    "threads-steady-past-budget-8": (["steady-past-budget", "8", "20000"], 160000,
                                     [("memory", 0.05), ("futex_wait", 0.03), ("open", 0)]),
    # 200 allocations at the limit (STRICT), nearly all refused, beside 64 threads that used
    # lockbox and wait outside it: every refusal first empties their caches (a request set on
    # each, a membarrier, the request withdrawn). Withdrawing it woke each thread whether it
    # slept on the request or not: 64 futex wakes per refusal, 0 now. And each refused page was
    # made read-write before the budget was asked, and PROT_NONE again after: 8 mprotects per
    # refusal, 0 now (83 calls in all per refusal before, 11 now).
    "refused-beside-idle-64": (["refused-beside-idle", "64", "200"], 200,
                               [("futex_wake", 1), ("memory", 0.1), ("open", 0)]),
}

# What a case runs under besides the test's environment. The steady threads count the
# anonymous arenas' reserve: with memfd_secret arenas (the `secretmem` test setup) slots stop at
# 8 KiB, so most of that mix is large blocks, two mprotects per cycle by design.
ENVIRONMENT = {"threads-steady-2": {"LOCKBOX_BACKEND": "anon"},
               "threads-steady-past-budget-8": {"LOCKBOX_BACKEND": "anon"}}

CALL = re.compile(r"^(?:\[pid\s+\d+\]\s+|\d+\s+)?(?:<\.\.\. )?([a-z_0-9]+)[( ]")


def main():
    strace, workload, case = sys.argv[1:4]
    arguments, operations, checks = CASES[case]
    with tempfile.NamedTemporaryFile("r", suffix=".strace") as log:
        environment = dict(os.environ, **ENVIRONMENT.get(case, {}))
        run = subprocess.run([strace, "-f", "-qq", "-o", log.name, workload] + arguments,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=environment)
        if run.returncode != 0:
            print(f"FAIL: {' '.join(arguments)} exited {run.returncode}: {run.stderr.strip()}")
            return 1
        lines = log.read().splitlines()
    inside = False
    counts = collections.Counter()
    opened = []
    for line in lines:
        if '"cost:begin"' in line:
            inside = True
            continue
        if '"cost:end"' in line:
            inside = False
            continue
        if not inside or "resumed>" in line and "<... " in line:
            continue  # a call strace split in two is counted once, where it started
        match = CALL.match(line)
        if not match:
            continue
        name = match.group(1)
        counts[name] += 1
        counts["all"] += 1
        if name in MEMORY:
            counts["memory"] += 1
        if name in ("open", "openat", "openat2"):
            counts["open"] += 1
            opened.append(line)
        if name == "futex" and "FUTEX_WAIT" in line:
            counts["futex_wait"] += 1
        if name == "futex" and "FUTEX_WAKE" in line:
            counts["futex_wake"] += 1
    summary = ", ".join(f"{name} {counts[name]}" for name in
                        ["all", "memory", "open", "futex_wait", "futex_wake", "sched_yield"])
    print(f"{case}: {operations} operations; {summary}")
    failed = False
    for what, bound in checks:
        per_operation = counts[what] / operations
        verdict = "ok" if per_operation <= bound else "FAIL"
        failed |= verdict == "FAIL"
        print(f"  {what}: {per_operation:.4f} per operation (bound {bound}) {verdict}")
    for line in opened[:5]:
        print(f"  opened: {line}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
