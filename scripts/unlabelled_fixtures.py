#!/usr/bin/env python3
"""Writes crates/runner/tests/fixtures/unlabelled/bmmc_unlabelled.h5mu: the bundled BMMC
sample (crates/data/data/bmmc_multiome_starter, 500 cells, 600 genes, 600 peaks, raw
counts) as a MuData file the way Python mudata writes one for a fresh 10x Multiome run:
modalities `rna` and `atac`, raw counts in X (CSR, gzip), cell barcodes only, no cell annotation
at all. The runner's tests run integration and translation on it without labels.

Run once (the file is committed):
    python3 -m venv /tmp/muvenv
    /tmp/muvenv/bin/pip install mudata==0.3.2 anndata==0.12.19 scipy
    /tmp/muvenv/bin/python scripts/unlabelled_fixtures.py
"""
import gzip
from pathlib import Path

import anndata as ad
import mudata as md
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "crates/data/data/bmmc_multiome_starter"
OUT = ROOT / "crates/runner/tests/fixtures/unlabelled/bmmc_unlabelled.h5mu"


def mtx(name):
    with gzip.open(SRC / name, "rb") as f:
        return sp.csr_matrix(scipy.io.mmread(f), dtype=np.float32)


def lines(name):
    return [l.rstrip("\n") for l in (SRC / name).read_text().splitlines()]


barcodes = [l.split("\t")[0] for l in lines("cells.tsv")[1:]]
obs = pd.DataFrame(index=pd.Index(barcodes, name=None))
rna = ad.AnnData(X=mtx("rna_counts.mtx.gz"), obs=obs.copy(), var=pd.DataFrame(index=lines("genes.tsv")))
atac = ad.AnnData(X=mtx("atac_counts.mtx.gz"), obs=obs.copy(), var=pd.DataFrame(index=lines("peaks.tsv")))
mdata = md.MuData({"rna": rna, "atac": atac})
OUT.parent.mkdir(parents=True, exist_ok=True)
mdata.write(OUT, compression="gzip")
print(OUT, OUT.stat().st_size, "bytes", mdata)
