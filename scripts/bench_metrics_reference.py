#!/usr/bin/env python3
"""Python references for the crossomics-metrics benchmarks (docs/performance.md).

Two steps, both seeded so the Rust side (`cargo run --release -p crossomics-benches
--example metrics_cli`) reads exactly the same inputs:

    python scripts/bench_metrics_reference.py gen all --dir /tmp/crossomics-metrics-bench
    python scripts/bench_metrics_reference.py foscttm 10000 --dir /tmp/crossomics-metrics-bench

`gen` writes .npy files (outside the repository); every other command loads them, runs one
reference and prints `metric=<name> n=<n> value=<v> seconds=<metric time>` (the time excludes
imports and loading). References:

- foscttm:     scglue's `metrics.foscttm` (a full scipy `cdist` matrix, O(n^2) memory),
               rescaled by n/(n-1) to SCOT's denominator (crossomics' convention)
- silhouette:  `sklearn.metrics.silhouette_score` (Euclidean, chunked by sklearn)
- leiden:      `scanpy.pp.neighbors(n_neighbors=k+1, use_rep="X")` (umap connectivities,
               pynndescent above 4,096 cells) + `scanpy.tl.leiden(flavor="leidenalg",
               n_iterations=-1, directed=False)`
- auroc:       `sklearn.metrics.roc_auc_score` per cell (row), mean over cells with both classes

Environment: numpy, scipy, scikit-learn; scanpy + leidenalg + igraph for `leiden`
(`pip install scanpy leidenalg igraph`). Thread counts come from the environment
(OMP_NUM_THREADS, OPENBLAS_NUM_THREADS, MKL_NUM_THREADS, NUMBA_NUM_THREADS).
"""

import argparse
import os
import sys
import time

import numpy as np

DEFAULT_DIR = "/tmp/crossomics-metrics-bench"
DEFAULT_N = {"foscttm": 10_000, "silhouette": 50_000, "leiden": 100_000, "auroc": 5_000}
DIM = 50
N_CLUSTERS = 20
AUROC_PEAKS = 100_000
K = 15  # neighbours other than the cell itself


def clustered(n, d, k, seed):
    """Gaussian mixture: k centres ~ N(0, 2^2 I), unit within-cluster noise; labels 0..k-1."""
    rng = np.random.default_rng(seed)
    centres = 2.0 * rng.standard_normal((k, d))
    labels = rng.integers(0, k, size=n)
    x = centres[labels] + rng.standard_normal((n, d))
    return x.astype(np.float32), labels.astype(np.int64)


def path(d, name):
    return os.path.join(d, name)


def gen(which, n, d):
    os.makedirs(d, exist_ok=True)
    if which in ("foscttm", "all"):
        m = n or DEFAULT_N["foscttm"]
        z, _ = clustered(m, DIM, N_CLUSTERS, 1)
        rng = np.random.default_rng(2)
        b = z + 3.0 * rng.standard_normal(z.shape).astype(np.float32)
        np.save(path(d, f"foscttm_a_{m}.npy"), z)
        np.save(path(d, f"foscttm_b_{m}.npy"), b.astype(np.float32))
    if which in ("silhouette", "all"):
        m = n or DEFAULT_N["silhouette"]
        x, lab = clustered(m, DIM, N_CLUSTERS, 3)
        np.save(path(d, f"silhouette_x_{m}.npy"), x)
        np.save(path(d, f"silhouette_labels_{m}.npy"), lab)
    if which in ("leiden", "all"):
        m = n or DEFAULT_N["leiden"]
        x, lab = clustered(m, DIM, N_CLUSTERS, 4)
        np.save(path(d, f"leiden_x_{m}.npy"), x)
    if which in ("auroc", "all"):
        m = n or DEFAULT_N["auroc"]
        rng = np.random.default_rng(5)
        # peak accessibility rates (sparse, heterogeneous) and cell depth
        rate = rng.beta(0.5, 8.0, size=AUROC_PEAKS).astype(np.float32)
        depth = rng.uniform(0.5, 1.5, size=m).astype(np.float32)
        truth = np.lib.format.open_memmap(
            path(d, f"auroc_truth_{m}.npy"), mode="w+", dtype=np.uint8, shape=(m, AUROC_PEAKS))
        pred = np.lib.format.open_memmap(
            path(d, f"auroc_pred_{m}.npy"), mode="w+", dtype=np.float32, shape=(m, AUROC_PEAKS))
        for s in range(0, m, 250):
            e = min(m, s + 250)
            p = np.clip(rate[None, :] * depth[s:e, None], 0.0, 1.0)
            t = rng.random((e - s, AUROC_PEAKS), dtype=np.float32) < p
            truth[s:e] = t
            # a noisy predictor: logit of the rate plus signal on true peaks, rounded to
            # 3 decimals of probability so that tied scores occur (as in real predictions)
            logit = np.log(rate / (1 - rate))[None, :] + 1.5 * t
            logit += rng.standard_normal((e - s, AUROC_PEAKS), dtype=np.float32)
            pred[s:e] = np.round(1.0 / (1.0 + np.exp(-logit)), 3)
        truth.flush()
        pred.flush()
        del truth, pred
    print(f"wrote {which} inputs to {d}")


def run_foscttm(n, d):
    from scipy.spatial.distance import cdist

    a = np.load(path(d, f"foscttm_a_{n}.npy"))
    b = np.load(path(d, f"foscttm_b_{n}.npy"))
    t0 = time.perf_counter()
    # scglue.metrics.foscttm
    dist = cdist(a, b)
    fx = (dist < np.expand_dims(np.diag(dist), axis=1)).mean(axis=1)
    fy = (dist < np.expand_dims(np.diag(dist), axis=0)).mean(axis=0)
    value = (fx.mean() + fy.mean()) / 2 * n / (n - 1)
    return value, time.perf_counter() - t0


def run_silhouette(n, d):
    from sklearn.metrics import silhouette_score

    x = np.load(path(d, f"silhouette_x_{n}.npy"))
    lab = np.load(path(d, f"silhouette_labels_{n}.npy"))
    t0 = time.perf_counter()
    value = silhouette_score(x, lab, metric="euclidean")
    return value, time.perf_counter() - t0


def run_leiden(n, d):
    import anndata as ad
    import scanpy as sc

    x = np.load(path(d, f"leiden_x_{n}.npy"))
    adata = ad.AnnData(x)
    t0 = time.perf_counter()
    sc.pp.neighbors(adata, n_neighbors=K + 1, use_rep="X", random_state=0)
    t1 = time.perf_counter()
    sc.tl.leiden(adata, resolution=1.0, flavor="leidenalg", n_iterations=-1,
                 directed=False, random_state=0)
    t2 = time.perf_counter()
    n_clusters = adata.obs["leiden"].nunique()
    print(f"knn_seconds={t1 - t0:.3f} leiden_seconds={t2 - t1:.3f} clusters={n_clusters}")
    return n_clusters, t2 - t0


def run_auroc(n, d):
    from sklearn.metrics import roc_auc_score

    truth = np.load(path(d, f"auroc_truth_{n}.npy"))
    pred = np.load(path(d, f"auroc_pred_{n}.npy"))
    t0 = time.perf_counter()
    scores = []
    for t, p in zip(truth, pred):
        npos = int(t.sum())
        if 0 < npos < t.size:
            scores.append(roc_auc_score(t, p))
    value = float(np.mean(scores))
    print(f"scored={len(scores)} skipped={truth.shape[0] - len(scores)}")
    return value, time.perf_counter() - t0


RUN = {"foscttm": run_foscttm, "silhouette": run_silhouette, "leiden": run_leiden,
       "auroc": run_auroc}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("metric", choices=["gen", *RUN])
    ap.add_argument("arg", nargs="?", help="gen: foscttm|silhouette|leiden|auroc|all; else n")
    ap.add_argument("n_gen", nargs="?", type=int, help="gen: n (default per metric)")
    ap.add_argument("--dir", default=DEFAULT_DIR)
    args = ap.parse_args()
    if args.metric == "gen":
        gen(args.arg or "all", args.n_gen, args.dir)
        return
    n = int(args.arg) if args.arg else DEFAULT_N[args.metric]
    value, secs = RUN[args.metric](n, args.dir)
    threads = os.environ.get("OMP_NUM_THREADS", "unset")
    print(f"metric={args.metric} n={n} value={value:.10g} seconds={secs:.3f} "
          f"omp_threads={threads}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
