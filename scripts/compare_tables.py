#!/usr/bin/env python3
"""Compare the experiment tables of two output folders value by value.

Used to check that a change gives the same numbers: run the same experiment files with
the binary before and after it, each into its own folder, then

    scripts/compare_tables.py BEFORE_DIR AFTER_DIR [EXPERIMENT ...]

(default: every experiment folder BEFORE_DIR holds). Prints, per experiment, the rows
and values compared and every value that differs by more than 1e-9 (relative); exits 1
when any differs or a row is missing.
"""
import csv
import math
import sys
from pathlib import Path


def load(path):
    with open(path, newline="") as f:
        return {(r["method"], r["variant"]): r for r in csv.DictReader(f)}


def main(argv):
    if len(argv) < 3:
        print(__doc__)
        return 2
    before, after = Path(argv[1]), Path(argv[2])
    names = argv[3:] or sorted(p.parent.name for p in before.glob("*/table.csv"))
    bad = False
    for name in names:
        a, b = load(before / name / "table.csv"), load(after / name / "table.csv")
        diffs, n = [], 0
        for key, ra in a.items():
            rb = b.get(key)
            if rb is None:
                diffs.append((key, "row missing after"))
                continue
            for col, va in ra.items():
                if col in ("method", "variant", "dataset"):
                    continue
                vb = rb.get(col)
                n += 1
                if va == vb:
                    continue
                try:
                    fa, fb = float(va), float(vb)
                    same = (math.isnan(fa) and math.isnan(fb)) or abs(fa - fb) <= 1e-9 * max(1.0, abs(fa))
                except (TypeError, ValueError):
                    same = False
                if not same:
                    diffs.append((key, col, va, vb))
        extra = [k for k in b if k not in a]
        print(f"{name}: {len(a)} rows, {n} values compared, {len(diffs)} differ, rows only after: {extra}")
        for d in diffs[:20]:
            print("   ", d)
        bad |= bool(diffs) or bool(extra)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
