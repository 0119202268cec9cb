#!/usr/bin/env python3
"""The Python side of scripts/bench_load.sh: read an RNA and an ATAC .h5ad with
anndata.read_h5ad (fully into memory, as crossomics does) and print shape and nnz.

    bench_load_anndata.py RNA.h5ad ATAC.h5ad

Run with the venv .venv-anndata (scripts/requirements-anndata.txt). The time of each
read_h5ad (after the imports) goes to stderr, in the format of the Rust example's phases.
"""

import sys
import time

import anndata as ad


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out = []
    start = last = time.perf_counter()
    for what, path in zip(("rna", "atac"), sys.argv[1:]):
        a = ad.read_h5ad(path)
        now = time.perf_counter()
        print(
            f"phase read {what} h5ad {now - last:.3f} s  (total {now - start:.3f} s)",
            file=sys.stderr,
        )
        last = now
        out.append((what, a))
    for what, a in out:
        x = a.X
        print(
            f"anndata\t{what}\t{a.n_obs} x {a.n_vars}\tnnz {x.nnz}\t{type(x).__name__} "
            f"{x.dtype} indices {x.indices.dtype}\tobs_columns {','.join(a.obs.columns)}"
        )


if __name__ == "__main__":
    main()
