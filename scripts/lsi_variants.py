"""The ATAC LSI forms compared on SNARE-seq (data/snare_mouse_cortex): which TF-IDF and
SVD the `atac_lsi` step follows (docs/models.md, "Value spaces").

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/lsi_variants.py

Peaks open in >= 10 cells, binarized; 50 components after dropping the first; scored by
k-means (k = 15 cell types, 10 starts) NMI / ARI over all cells and 15-NN label transfer
from a seeded 70% of the cells to the last 15%. About 5 minutes on 2 cores.
"""

import csv
import gzip
from pathlib import Path

import numpy as np
import scipy.io
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA, TruncatedSVD
from sklearn.feature_extraction.text import TfidfTransformer
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score
from sklearn.neighbors import KNeighborsClassifier

data = Path(__file__).resolve().parent.parent / "data/snare_mouse_cortex"
X = scipy.io.mmread(gzip.open(data / "atac_counts.mtx.gz")).tocsr().astype(np.float32)
cells = list(csv.DictReader(open(data / "cells.tsv"), delimiter="\t"))
if X.shape[0] != len(cells):
    X = X.T.tocsr()
y = np.unique([c["cell_type"] for c in cells], return_inverse=True)[1]
B = (X > 0).astype(np.float32)
B = B[:, np.asarray(B.sum(0)).ravel() >= 10].tocsr()
n = B.shape[0]
perm = np.random.default_rng(0).permutation(n)
train, test = perm[: int(0.7 * n)], perm[int(0.85 * n) :]
print(f"{n} cells x {B.shape[1]} peaks")


def score(name, Z):
    km = KMeans(15, n_init=10, random_state=0).fit_predict(Z)
    acc = KNeighborsClassifier(15).fit(Z[train], y[train]).score(Z[test], y[test])
    nmi, ari = normalized_mutual_info_score(y, km), adjusted_rand_score(y, km)
    print(f"{name}: NMI {nmi:.3f} ARI {ari:.3f} kNN accuracy {acc:.3f}", flush=True)


def svd(M, drop=1):
    return TruncatedSVD(50 + drop, algorithm="arpack", random_state=0).fit_transform(M)[:, drop:]


df = np.asarray(B.sum(0)).ravel()
tf = (sp.diags(1 / np.maximum(np.asarray(B.sum(1)).ravel(), 1)) @ B).tocsr()
# muon.atac.pp.tfidf defaults (log_tf, log_idf), lsi without scaling: the atac_lsi step
muon = tf.copy()
muon.data = np.log1p(muon.data)
muon = (muon @ sp.diags(np.log1p(n / df))).tocsr()
score("muon TF-IDF, truncated SVD (atac_lsi)", svd(muon))
Z = svd(muon)
score("muon TF-IDF, truncated SVD, components standardized", (Z - Z.mean(0)) / Z.std(0))
# Signac RunTFIDF method 1
signac = (tf @ sp.diags(n / df)).tocsr()
signac.data = np.log1p(signac.data * 1e4)
score("Signac TF-IDF, truncated SVD (tfidf = \"signac\")", svd(signac))
P = PCA(51, svd_solver="arpack", random_state=0).fit_transform(signac.toarray())[:, 1:]
score("Signac TF-IDF, centred PCA (the step before)", P)
score("scikit-learn TfidfTransformer + TruncatedSVD", svd(TfidfTransformer().fit_transform(B)))
