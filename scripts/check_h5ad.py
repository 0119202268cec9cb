#!/usr/bin/env python3
"""The Python side of the h5ad round trip in crates/data/tests/h5ad.rs.

    check_h5ad.py dump FILE    read FILE with anndata.read_h5ad and print what it holds
    check_h5ad.py write FILE   write a small AnnData in the current anndata encoding

`dump` prints one tab-separated record a line, so that the Rust test can compare
without a JSON parser:

    shape      n_obs n_vars
    x_format   csr | csc | dense | none
    obs_names  name ...
    var_names  name ...
    obs        column value ...          (values as str(); categoricals by category name)
    obsm       key rows cols value ...   (row-major, repr of float)
    x          row col value             (one line per non-zero, row-major, repr of float)

`write` builds the AnnData described in `expected()` below: CSC float64 X, an int32
`counts` layer, categorical / bool / float / nullable-integer / string obs columns, a
float32 obsm embedding. Run with the venv the test makes (.venv-anndata, pinned by
scripts/requirements-anndata.txt).
"""

import sys

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp


def dump(path):
    a = ad.read_h5ad(path)
    out = []
    out.append(["shape", a.n_obs, a.n_vars])
    x = a.X
    if x is None:
        fmt = "none"
    elif sp.issparse(x):
        fmt = x.format
    else:
        fmt = "dense"
    out.append(["x_format", fmt])
    out.append(["obs_names", *a.obs_names])
    out.append(["var_names", *a.var_names])
    for col in a.obs.columns:
        out.append(["obs", col, *[str(v) for v in a.obs[col]]])
    for key in a.obsm.keys():
        m = np.asarray(a.obsm[key])
        out.append(["obsm", key, m.shape[0], m.shape[1], *[repr(float(v)) for v in m.ravel()]])
    if x is not None:
        dense = x.toarray() if sp.issparse(x) else np.asarray(x)
        for r, c in zip(*np.nonzero(dense)):
            out.append(["x", r, c, repr(float(dense[r, c]))])
    for rec in out:
        print("\t".join(str(v) for v in rec))


def write(path):
    # 4 cells x 3 genes; the Rust test checks exactly these values
    x = np.array([[0, 1.5, 0], [2, 0, 0], [0, 0, 0], [0.25, 0, 7]], dtype=np.float64)
    counts = np.array([[0, 3, 0], [5, 0, 0], [0, 0, 0], [1, 0, 9]], dtype=np.int32)
    obs = pd.DataFrame(
        {
            "cell_type": pd.Categorical(["T", "B", "T", "NK"]),
            "is_train": [True, False, True, True],
            "depth": [1.0, 2.5, float("nan"), 4.0],
            "n_genes": pd.array([1, None, 0, 2], dtype="Int64"),
            "donor": ["d1", "d1", "d2", "d2"],
        },
        index=pd.Index(["AAAC-1", "AAAG-1", "AACT-1", "AAGT-1"]),
    )
    var = pd.DataFrame(index=pd.Index(["CD3E", "MS4A1", "NKG7"]))
    a = ad.AnnData(X=sp.csc_matrix(x), obs=obs, var=var)
    a.layers["counts"] = sp.csr_matrix(counts)
    a.obsm["X_umap"] = np.arange(8, dtype=np.float32).reshape(4, 2) / 4
    a.write_h5ad(path)


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("dump", "write"):
        sys.exit(__doc__)
    {"dump": dump, "write": write}[sys.argv[1]](sys.argv[2])


if __name__ == "__main__":
    main()
