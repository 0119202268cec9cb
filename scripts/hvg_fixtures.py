"""Reference values for crossomics_data::hvg (Seurat v3 highly variable genes), computed
with scanpy's `sc.pp.highly_variable_genes(flavor="seurat_v3" | "seurat_v3_paper")`.

Reproduce (from the repository root; .venv-hvg is git-ignored):

    python3 -m venv .venv-hvg
    .venv-hvg/bin/pip install -r scripts/requirements-hvg.txt
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 .venv-hvg/bin/python scripts/hvg_fixtures.py

Writes crates/data/tests/fixtures/hvg/<case>.json, one file per case:

- scicar_a549            2641 cells x 1185 genes, no batch key
- bmmc_multiome_starter  500 cells x 600 genes, no batch key
- bmmc_multiome_starter_batch  the same with batch_key="batch" (donors s1d1, s1d2)

Inputs are the shared real data (../shared/data/<name>, plain layout:
rna_counts.mtx.gz read with scipy.io.mmread, genes.tsv, cells.tsv), as float64 CSR.

Each file holds, with full float precision (JSON floats are Python's round-trip repr;
NaN is written as null):

- per gene over all cells: means, variances (ddof=1), variances_norm (mean over
  batches), and for every n_top_genes in `selections`: highly_variable_rank (null where
  scanpy has NaN), highly_variable_nbatches, highly_variable, for both flavors;
- per batch (one entry when there is no batch key): the batch's cells, per gene means,
  variances and variances_norm (scanpy run on that batch's cells alone, which is exactly
  the per-batch computation inside the batched call), the genes with non-zero variance
  the loess was fitted on (`loess_genes`) and the skmisc loess fitted log10 variances for
  surface="interpolate" (what scanpy uses) and surface="direct".
"""

from __future__ import annotations

import json
import math
import warnings
from importlib.metadata import version
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.io
import scipy.sparse as sp
from skmisc.loess import loess

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
if not SHARED.exists():
    SHARED = Path("/work/shared/data")
OUT = ROOT / "crates" / "data" / "tests" / "fixtures" / "hvg"
SPAN = 0.3

CASES = [
    # (file name, dataset folder, batch key, n_top_genes values)
    ("scicar_a549", "scicar_a549", None, [100, 300, 700, 2000]),
    ("bmmc_multiome_starter", "bmmc_multiome_starter", None, [50, 200, 2000]),
    ("bmmc_multiome_starter_batch", "bmmc_multiome_starter", "batch", [50, 150, 300, 2000]),
]


def read_plain(folder: Path) -> ad.AnnData:
    counts = sp.csr_matrix(scipy.io.mmread(folder / "rna_counts.mtx.gz"), dtype=np.float64)
    genes = [g.rstrip("\n") for g in open(folder / "genes.tsv")]
    cells = pd.read_csv(folder / "cells.tsv", sep="\t", dtype=str, keep_default_na=False)
    cells.index = cells["barcode"].to_numpy()
    assert counts.shape == (len(cells), len(genes)), (counts.shape, len(cells), len(genes))
    var = pd.DataFrame(index=pd.Index(genes))
    return ad.AnnData(X=counts, obs=cells, var=var)


def floats(a) -> list:
    return [None if math.isnan(v) else float(v) for v in np.asarray(a, dtype=np.float64)]


def hvg(a: ad.AnnData, n_top: int, batch_key: str | None, flavor: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return sc.pp.highly_variable_genes(
            a,
            flavor=flavor,
            n_top_genes=n_top,
            batch_key=batch_key,
            span=SPAN,
            inplace=False,
        )


def loess_fits(means: np.ndarray, variances: np.ndarray) -> dict:
    """The loess of scanpy's per-batch step, on exactly its inputs (the batch's
    `_get_mean_var`, which scanpy reports as means / variances when run on the batch
    alone), for both skmisc surfaces. The k-d tree of surface="interpolate" splits at
    ties of log10(mean), so inputs one ulp off (scipy's `.mean()` multiplies by 1/n)
    give a visibly different fit."""
    genes = np.flatnonzero(variances > 0)
    lx = np.log10(means[genes])
    ly = np.log10(variances[genes])
    out = {"loess_genes": genes.tolist()}
    for surface in ["interpolate", "direct"]:
        model = loess(lx, ly, span=SPAN, degree=2, surface=surface)
        model.fit()
        out[f"loess_{surface}"] = floats(model.outputs.fitted_values)
    return out


def case(name: str, folder: str, batch_key: str | None, n_tops: list[int]) -> dict:
    a = read_plain(SHARED / folder)
    first = hvg(a, n_tops[0], batch_key, "seurat_v3")
    out = {
        "dataset": folder,
        "n_cells": int(a.n_obs),
        "n_genes": int(a.n_vars),
        "span": SPAN,
        "batch_key": batch_key,
        "versions": {
            p: version(p) for p in ["scanpy", "scikit-misc", "numpy", "scipy", "pandas", "anndata"]
        },
        "means": floats(first["means"]),
        "variances": floats(first["variances"]),
        "variances_norm": floats(first["variances_norm"]),
        "selections": [],
        "batches": [],
    }
    for n_top in n_tops:
        for flavor in ["seurat_v3", "seurat_v3_paper"]:
            df = hvg(a, n_top, batch_key, flavor)
            assert np.array_equal(df["variances_norm"].to_numpy(), first["variances_norm"].to_numpy())
            nb = (
                df["highly_variable_nbatches"].to_numpy()
                if "highly_variable_nbatches" in df
                else (~np.isnan(df["highly_variable_rank"].to_numpy())).astype(int)
            )
            out["selections"].append(
                {
                    "n_top_genes": n_top,
                    "flavor": flavor,
                    "highly_variable_rank": floats(df["highly_variable_rank"]),
                    "highly_variable_nbatches": [int(v) for v in nb],
                    "highly_variable": [bool(v) for v in df["highly_variable"]],
                }
            )
    labels = (
        np.zeros(a.n_obs, dtype=int).astype(str)
        if batch_key is None
        else a.obs[batch_key].to_numpy()
    )
    for b in np.unique(labels):
        sub = a[labels == b].copy()
        df = hvg(sub, n_tops[0], None, "seurat_v3")
        entry = {
            "batch": None if batch_key is None else str(b),
            "n_cells": int(sub.n_obs),
            "means": floats(df["means"]),
            "variances": floats(df["variances"]),
            "variances_norm": floats(df["variances_norm"]),
        }
        entry.update(loess_fits(df["means"].to_numpy(), df["variances"].to_numpy()))
        out["batches"].append(entry)
    return out


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, folder, batch_key, n_tops in CASES:
        data = case(name, folder, batch_key, n_tops)
        path = OUT / f"{name}.json"
        path.write_text(json.dumps(data, allow_nan=False) + "\n")
        print(f"wrote {path.relative_to(ROOT)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
