"""Reference values for crossomics_metrics::stats::paired_t_test, from scipy.

Reproduce (from the repository root; .venv is git-ignored):

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/paired_test_fixture.py

Writes crates/metrics/tests/fixtures/paired_t.json: seeded pairs of score vectors of 2 to
10 seeds (as a table's model and baseline rows) with scipy.stats.ttest_rel's statistic
and two-sided p-value. Rerunning gives an identical file.
"""

import json
from pathlib import Path

import numpy as np
from scipy import stats

rng = np.random.default_rng(18)
cases = []
for n in [2, 3, 5, 5, 7, 10]:
    base = rng.uniform(0.5, 0.9, n)
    shift = rng.normal(0.0, 0.02)
    a = base + shift + rng.normal(0.0, 0.01, n)
    r = stats.ttest_rel(a, base)
    cases.append(
        {"a": a.tolist(), "b": base.tolist(), "t": float(r.statistic), "p": float(r.pvalue)}
    )
out = Path(__file__).resolve().parent.parent / "crates/metrics/tests/fixtures/paired_t.json"
out.write_text(json.dumps({"generator": "scipy.stats.ttest_rel", "cases": cases}, indent=1) + "\n")
print(f"wrote {out} ({len(cases)} cases)")
