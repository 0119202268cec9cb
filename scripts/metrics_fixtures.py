"""Reference values for crossomics-metrics, computed with scikit-learn / scipy / networkx.

Reproduce (from the repository root; .venv is git-ignored):

    python3 -m venv .venv
    .venv/bin/pip install -r scripts/requirements-fixtures.txt
    .venv/bin/python scripts/metrics_fixtures.py

Writes crates/metrics/tests/fixtures/: small float32 .npy inputs, label JSON and
reference.json with every expected value. The Rust tests in crates/metrics/tests/
compare against them at 1e-6. Everything is seeded; rerunning gives identical files.

Inputs:
- seeded random labelings (clustering agreement);
- a REAL embedding: 20-component PCA of log1p size-factor-normalised RNA of
  shared/data/bmmc_multiome_starter (500 cells, 21 cell types, 2 donor batches);
- a noisy copy of that embedding (alignment);
- real log1p-normalised RNA and binarised ATAC blocks with noisy predictions.

Where scib / harmonypy are not installable here, their formulas are re-implemented in
numpy below, line by line from the published code (functions scib_* and harmony_*).
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import networkx as nx
import numpy as np
import scipy
import sklearn
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import distance_matrix
from scipy.stats import pearsonr, spearmanr
from sklearn.cluster import KMeans
from sklearn.metrics import (
    accuracy_score,
    adjusted_mutual_info_score,
    adjusted_rand_score,
    average_precision_score,
    f1_score,
    mean_absolute_error,
    mean_squared_error,
    normalized_mutual_info_score,
    roc_auc_score,
    silhouette_samples,
    silhouette_score,
)
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "bmmc_multiome_starter"
if not DATA.exists():
    DATA = Path("/work/shared/data/bmmc_multiome_starter")
OUT = ROOT / "crates" / "metrics" / "tests" / "fixtures"


def read_mtx(path: Path) -> np.ndarray:
    """Dense cells x features from a gzipped MatrixMarket coordinate file."""
    with gzip.open(path, "rt") as f:
        header = f.readline()
        assert header.startswith("%%MatrixMarket matrix coordinate")
        line = f.readline()
        while line.startswith("%"):
            line = f.readline()
        nr, nc, _ = (int(v) for v in line.split())
        data = np.loadtxt(f, dtype=np.int64, ndmin=2)
    m = coo_matrix((data[:, 2], (data[:, 0] - 1, data[:, 1] - 1)), shape=(nr, nc))
    return m.toarray().astype(np.float64)


def read_cells(path: Path) -> dict[str, list[str]]:
    lines = path.read_text().rstrip("\n").split("\n")
    header = lines[0].split("\t")
    cols = {h: [] for h in header}
    for line in lines[1:]:
        for h, v in zip(header, line.split("\t")):
            cols[h].append(v)
    return cols


def codes(values: list[str]) -> list[int]:
    uniq = sorted(set(values))
    return [uniq.index(v) for v in values]


def log1p_size_factor(counts: np.ndarray) -> np.ndarray:
    """scanpy.pp.normalize_total (target = median library size) followed by log1p."""
    lib = counts.sum(axis=1, keepdims=True)
    target = np.median(lib[lib > 0])
    lib[lib == 0] = 1.0
    return np.log1p(counts / lib * target)


def pca(x: np.ndarray, n: int) -> np.ndarray:
    """Centred PCA scores by SVD, signs fixed so each component's largest |loading| is positive."""
    xc = x - x.mean(axis=0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    signs = np.sign(vt[np.arange(n), np.argmax(np.abs(vt[:n]), axis=1)])
    return u[:, :n] * s[:n] * signs


# ---------------------------------------------------------------- scib / harmony formulas


def scib_silhouette_batch(x, batch, labels):
    """scib.metrics.silhouette_batch(scale=True), returning (asw, n_skipped)."""
    means = []
    skipped = 0
    for t in np.unique(labels):
        m = labels == t
        n_b = len(np.unique(batch[m]))
        if n_b == 1 or n_b == m.sum():
            skipped += 1
            continue
        sil = silhouette_samples(x[m], batch[m], metric="euclidean")
        means.append(np.mean(1.0 - np.abs(sil)))
    return float(np.mean(means)), skipped


def scib_graph_connectivity(adjacency: csr_matrix, labels):
    """scib.metrics.graph_connectivity on a given graph."""
    res = []
    for t in np.unique(labels):
        m = np.where(labels == t)[0]
        _, comp = connected_components(adjacency[m][:, m], connection="strong")
        counts = np.bincount(comp)
        res.append(counts.max() / counts.sum())
    return float(np.mean(res))


def harmony_compute_simpson(distances, indices, labels, n_categories, perplexity, tol=1e-5):
    """harmonypy.lisi.compute_simpson (distances/indices are neighbours x cells)."""
    n = distances.shape[1]
    simpson = np.zeros(n)
    logU = np.log(perplexity)
    for i in range(n):
        beta = 1
        betamin = -np.inf
        betamax = np.inf
        P = np.exp(-distances[:, i] * beta)
        P_sum = np.sum(P)
        if P_sum == 0:
            H = 0
            P = np.zeros(distances.shape[0])
        else:
            H = np.log(P_sum) + beta * np.sum(distances[:, i] * P) / P_sum
            P = P / P_sum
        Hdiff = H - logU
        n_tries = 50
        for t in range(n_tries):
            if abs(Hdiff) < tol:
                break
            if Hdiff > 0:
                betamin = beta
                if not np.isfinite(betamax):
                    beta *= 2
                else:
                    beta = (beta + betamax) / 2
            else:
                betamax = beta
                if not np.isfinite(betamin):
                    beta /= 2
                else:
                    beta = (beta + betamin) / 2
            P = np.exp(-distances[:, i] * beta)
            P_sum = np.sum(P)
            if P_sum == 0:
                H = 0
                P = np.zeros(distances.shape[0])
            else:
                H = np.log(P_sum) + beta * np.sum(distances[:, i] * P) / P_sum
                P = P / P_sum
            Hdiff = H - logU
        if H == 0:
            simpson[i] = -1
        for c in range(n_categories):
            q = labels[indices[:, i]] == c
            if np.any(q):
                s = np.sum(P[q])
                simpson[i] += s * s
    return simpson


def harmony_compute_lisi(x, labels, perplexity):
    """harmonypy.lisi.compute_lisi for one label column."""
    knn = NearestNeighbors(n_neighbors=int(perplexity * 3), algorithm="kd_tree").fit(x)
    distances, indices = knn.kneighbors(x)
    indices = indices[:, 1:]
    distances = distances[:, 1:]
    simpson = harmony_compute_simpson(distances.T, indices.T, labels, labels.max() + 1, perplexity)
    return 1 / simpson


# ---------------------------------------------------------------- fixtures


def clustering_cases(rng):
    cases = []
    specs = [
        ("balanced_10_vs_15", 1000, 10, 15, 0.0),
        ("unbalanced_3_vs_7", 300, 3, 7, 0.0),
        ("correlated_8_vs_8", 800, 8, 8, 0.7),
        ("many_small_50_vs_40", 400, 50, 40, 0.5),
        ("two_vs_two_small", 12, 2, 2, 0.0),
        ("identical_relabelled", 200, 6, 6, 1.0),
    ]
    for name, n, kt, kp, agree in specs:
        if name == "unbalanced_3_vs_7":
            t = rng.choice(kt, size=n, p=[0.8, 0.15, 0.05])
        else:
            t = rng.integers(0, kt, size=n)
        p = rng.integers(0, kp, size=n)
        keep = rng.random(n) < agree
        perm = rng.permutation(max(kt, kp))
        p[keep] = perm[t[keep] % kp] if kp >= kt else perm[t[keep]] % kp
        # arbitrary, non-contiguous codes: only equality matters
        t = t * 3 + 5
        p = p * 7 + 1
        cases.append(
            {
                "name": name,
                "labels_true": t.tolist(),
                "labels_pred": p.tolist(),
                "ari": adjusted_rand_score(t, p),
                "nmi": normalized_mutual_info_score(t, p),
                "ami": adjusted_mutual_info_score(t, p),
            }
        )
    return cases


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(20240605)
    ref: dict = {
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": sklearn.__version__, "networkx": nx.__version__},
    }

    ref["clustering"] = clustering_cases(rng)

    # ---- real embedding
    cells = read_cells(DATA / "cells.tsv")
    rna = read_mtx(DATA / "rna_counts.mtx.gz")
    atac = read_mtx(DATA / "atac_counts.mtx.gz")
    logn = log1p_size_factor(rna)
    emb = pca(logn, 20).astype(np.float32)
    np.save(OUT / "bmmc_pca20.npy", emb)
    x = emb.astype(np.float64)  # the exact metric of the stored f32 values
    cell_type = np.array(codes(cells["cell_type"]))
    batch = np.array(codes(cells["batch"]))
    labels = {"cell_type": cell_type.tolist(), "batch": batch.tolist()}
    (OUT / "bmmc_labels.json").write_text(json.dumps(labels))

    emb_ref = {}
    emb_ref["silhouette_cell_type"] = float(silhouette_score(x, cell_type, metric="euclidean"))
    emb_ref["cell_type_asw"] = (emb_ref["silhouette_cell_type"] + 1) / 2
    emb_ref["silhouette_batch_raw"] = float(silhouette_score(x, batch))
    emb_ref["silhouette_samples_first10"] = silhouette_samples(x, cell_type)[:10].tolist()
    asw, skipped = scib_silhouette_batch(x, batch, cell_type)
    emb_ref["batch_asw"] = asw
    emb_ref["batch_asw_n_skipped"] = skipped

    # graph connectivity on the kNN union (scanpy n_neighbors=15 counts the cell: 14 others)
    k = 14
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    _, idx = nn.kneighbors(x)
    rows = np.repeat(np.arange(len(x)), k)
    cols = idx[:, 1:].ravel()
    adj = csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(x), len(x)))
    adj = ((adj + adj.T) > 0).astype(np.float64)
    emb_ref["graph_connectivity_k14"] = scib_graph_connectivity(adj, cell_type)
    # networkx modularity of the cell types on that graph, resolutions 1 and 0.5
    g = nx.from_scipy_sparse_array(adj)
    comms = [set(np.where(cell_type == t)[0].tolist()) for t in np.unique(cell_type)]
    emb_ref["modularity_knn14_cell_type_res1"] = nx.community.modularity(g, comms, resolution=1.0)
    emb_ref["modularity_knn14_cell_type_res0.5"] = nx.community.modularity(g, comms, resolution=0.5)
    louv = nx.community.louvain_communities(g, resolution=1.0, seed=0)
    emb_ref["networkx_louvain_modularity_knn14"] = nx.community.modularity(g, louv)

    # LISI (harmonypy) with scib scaling, perplexity 30 and 10
    for perp in (30, 10):
        il = harmony_compute_lisi(x, batch, perp)
        cl = harmony_compute_lisi(x, cell_type, perp)
        emb_ref[f"lisi_batch_p{perp}_first10"] = il[:10].tolist()
        emb_ref[f"lisi_batch_p{perp}_mean"] = float(np.mean(il))
        emb_ref[f"lisi_cell_type_p{perp}_mean"] = float(np.mean(cl))
        emb_ref[f"ilisi_p{perp}"] = float((np.median(il) - 1) / (len(np.unique(batch)) - 1))
        nl = len(np.unique(cell_type))
        emb_ref[f"clisi_p{perp}"] = float((nl - np.median(cl)) / (nl - 1))

    # kNN label transfer: train = batch s1d1, test = s1d2 (the competition's split)
    tr, te = batch == 0, batch == 1
    for kk in (1, 5, 15):
        clf = KNeighborsClassifier(n_neighbors=kk, algorithm="brute").fit(x[tr], cell_type[tr])
        pred = clf.predict(x[te])
        emb_ref[f"knn_k{kk}_accuracy"] = float(accuracy_score(cell_type[te], pred))
        emb_ref[f"knn_k{kk}_macro_f1"] = float(f1_score(cell_type[te], pred, average="macro"))
        emb_ref[f"knn_k{kk}_pred"] = pred.tolist()

    # exact neighbours (for the kNN search itself)
    nn10 = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(x)
    d10, i10 = nn10.kneighbors(x)
    emb_ref["knn10_indices_first20"] = i10[:20, 1:].tolist()
    emb_ref["knn10_distances_first20"] = d10[:20, 1:].tolist()

    # k-means: sklearn's best inertia over 10 k-means++ restarts (ours must be as good)
    for kk in (5, 21):
        km = KMeans(n_clusters=kk, n_init=10, random_state=0).fit(x)
        emb_ref[f"kmeans_k{kk}_inertia"] = float(km.inertia_)
    ref["bmmc_embedding"] = emb_ref

    # ---- alignment: a noisy second view of the same cells
    noisy = (emb + rng.normal(scale=2.0, size=emb.shape)).astype(np.float32)
    np.save(OUT / "bmmc_pca20_noisy.npy", noisy)
    y = noisy.astype(np.float64)
    d = distance_matrix(x, y)
    n = len(x)
    fx = (d < np.diag(d)[:, None]).sum(axis=1) / (n - 1)
    fy = (d < np.diag(d)[None, :]).sum(axis=0) / (n - 1)
    ali = {
        "foscttm": float((fx.mean() + fy.mean()) / 2),
        "foscttm_a_first10": fx[:10].tolist(),
        "foscttm_b_first10": fy[:10].tolist(),
        "foscttm_scglue_mean_over_n": float(((d < np.diag(d)[:, None]).mean(axis=1).mean() + (d < np.diag(d)[None, :]).mean(axis=0).mean()) / 2),
    }
    rank_a = (d < np.diag(d)[:, None]).sum(axis=1)
    rank_b = (d < np.diag(d)[None, :]).sum(axis=0)
    for kk in (1, 5, 20):
        ali[f"top{kk}_matching"] = float(((rank_a < kk).sum() + (rank_b < kk).sum()) / (2 * n))
    ref["alignment"] = ali

    # ---- RNA prediction: 120 cells x 80 genes of real log1p-normalised values
    cells_sel = rng.choice(n, size=120, replace=False)
    genes_sel = rng.choice(rna.shape[1], size=80, replace=False)
    truth = logn[np.ix_(cells_sel, genes_sel)].astype(np.float32)
    truth[:, 0] = 0.0  # a constant (unexpressed) gene
    truth[:, 1] = 1.5  # a constant non-zero gene
    pred = (truth + rng.normal(scale=0.5, size=truth.shape)).clip(min=0)
    pred[:, 3] = 0.7  # a constant prediction column
    pred[5, :] = 0.0  # a constant prediction row
    pred = np.round(pred, 2).astype(np.float32)  # ties, as real sparse predictions have
    np.save(OUT / "rna_truth.npy", truth)
    np.save(OUT / "rna_pred.npy", pred)
    t64, p64 = truth.astype(np.float64), pred.astype(np.float64)

    def per_axis(fn, axis):
        vals, skipped = [], 0
        for i in range(t64.shape[axis]):
            a = t64[i] if axis == 0 else t64[:, i]
            b = p64[i] if axis == 0 else p64[:, i]
            if np.all(a == a[0]) or np.all(b == b[0]):
                skipped += 1
                continue
            vals.append(fn(a, b)[0])
        return {"value": float(np.mean(vals)), "n_scored": len(vals), "n_skipped": skipped}

    rna_ref = {
        "pearson_flat": float(pearsonr(t64.ravel(), p64.ravel())[0]),
        "spearman_flat": float(spearmanr(t64.ravel(), p64.ravel())[0]),
        "pearson_per_cell": per_axis(pearsonr, 0),
        "pearson_per_gene": per_axis(pearsonr, 1),
        "spearman_per_cell": per_axis(spearmanr, 0),
        "spearman_per_gene": per_axis(spearmanr, 1),
        "rmse": float(np.sqrt(mean_squared_error(t64.ravel(), p64.ravel()))),
        "mae": float(mean_absolute_error(t64.ravel(), p64.ravel())),
    }
    ref["rna_prediction"] = rna_ref

    # ---- ATAC prediction: 120 cells x 100 peaks, binarised real peaks and noisy scores
    peaks_sel = np.argsort(-(atac > 0).sum(axis=0))[:100]  # most accessible peaks
    peaks_sel = np.sort(rng.choice(peaks_sel, size=100, replace=False))
    a_truth = (atac[np.ix_(cells_sel, peaks_sel)] > 0).astype(np.float32) * 2  # counts-like 0/2
    a_truth[:, 0] = 0  # never accessible peak
    a_truth[:, 1] = 1  # always accessible peak
    a_truth[7, :] = 0  # cell with no accessible peak
    logits = 1.5 * (a_truth > 0) + rng.normal(size=a_truth.shape)
    a_pred = np.round(1 / (1 + np.exp(-logits)), 2).astype(np.float32)
    np.save(OUT / "atac_truth.npy", a_truth)
    np.save(OUT / "atac_pred.npy", a_pred)
    tb, ps = (a_truth > 0).astype(int), a_pred.astype(np.float64)

    def per_axis_auc(fn, axis):
        vals, skipped = [], 0
        for i in range(tb.shape[axis]):
            a = tb[i] if axis == 0 else tb[:, i]
            b = ps[i] if axis == 0 else ps[:, i]
            if a.min() == a.max():
                skipped += 1
                continue
            vals.append(fn(a, b))
        return {"value": float(np.mean(vals)), "n_scored": len(vals), "n_skipped": skipped}

    ref["atac_prediction"] = {
        "auroc_flat": float(roc_auc_score(tb.ravel(), ps.ravel())),
        "auprc_flat": float(average_precision_score(tb.ravel(), ps.ravel())),
        "auroc_per_cell": per_axis_auc(roc_auc_score, 0),
        "auroc_per_peak": per_axis_auc(roc_auc_score, 1),
        "auprc_per_cell": per_axis_auc(average_precision_score, 0),
        "auprc_per_peak": per_axis_auc(average_precision_score, 1),
    }

    (OUT / "reference.json").write_text(json.dumps(ref, indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {len(list(OUT.iterdir()))} files, {total / 1024:.0f} KiB, to {OUT}")


if __name__ == "__main__":
    main()
