#!/usr/bin/env python3
"""Runs two commands alternately (A, B, A, B, ...), WARMUP rounds unrecorded, then RUNS rounds,
and prints one JSON object: each command's min and median wall time, and the median of the RUNS
differences A - B within a round (ms). Paired rounds cancel the slow drift of a shared machine's
load, which moves two back-to-back hyperfine series apart by several milliseconds.
Usage: paired.py RUNS WARMUP 'COMMAND A' 'COMMAND B' (each run through no shell: split on spaces)."""
import json, statistics, subprocess, sys, time


def run(cmd):
    t0 = time.perf_counter()
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = (time.perf_counter() - t0) * 1000
    if p.returncode != 0:
        sys.exit(f"paired.py: {' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode(errors='replace')}")
    return dt


def main():
    runs, warmup = int(sys.argv[1]), int(sys.argv[2])
    a, b = sys.argv[3].split(), sys.argv[4].split()
    for _ in range(warmup):
        run(a), run(b)
    ta, tb = [], []
    for i in range(runs):
        # Alternate which goes first, so neither always follows the other.
        if i % 2 == 0:
            ta.append(run(a)), tb.append(run(b))
        else:
            tb.append(run(b)), ta.append(run(a))
    r = lambda v: round(v, 1)
    print(json.dumps({
        "runs": runs,
        "a": {"min": r(min(ta)), "median": r(statistics.median(ta))},
        "b": {"min": r(min(tb)), "median": r(statistics.median(tb))},
        "diff_median": r(statistics.median(x - y for x, y in zip(ta, tb))),
    }))


if __name__ == "__main__":
    main()
