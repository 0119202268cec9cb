//! One crossomics-metrics computation on the inputs of `scripts/bench_metrics_reference.py`,
//! for whole-process comparisons with the Python references (docs/performance.md):
//!
//! ```text
//! python scripts/bench_metrics_reference.py gen all            # writes the .npy inputs
//! cargo run --release -p crossomics-benches --example metrics_cli -- foscttm 10000
//! cargo run --release -p crossomics-benches --example metrics_cli -- silhouette 50000
//! cargo run --release -p crossomics-benches --example metrics_cli -- leiden 100000
//! cargo run --release -p crossomics-benches --example metrics_cli -- auroc 5000
//! ```
//!
//! Options: `--dir DIR` (default `/tmp/crossomics-metrics-bench`). Prints
//! `metric=<name> n=<n> value=<v> seconds=<metric time>` (time excludes reading the files).
//! Single-threaded: `leiden` uses `KnnMethod::default()`, exact up to 200,000 cells; above
//! that the HNSW index build runs on rayon (`RAYON_NUM_THREADS`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use crossomics_metrics::community::{ClusterParams, WeightedGraph, leiden};
use crossomics_metrics::knn::{KnnMethod, knn_graph};
use crossomics_metrics::prediction::{Along, auroc};
use crossomics_metrics::{alignment, silhouette};
use ndarray::{Array1, Array2};
use ndarray_npy::read_npy;

/// Neighbours other than the cell itself (scanpy's `n_neighbors = 16`).
const K: usize = 15;

type Error = Box<dyn std::error::Error>;

fn load_f32(dir: &Path, name: &str) -> Result<Array2<f32>, Error> {
    let p = dir.join(name);
    read_npy(&p).map_err(|e| {
        format!(
            "{}: {e} (run scripts/bench_metrics_reference.py gen)",
            p.display()
        )
        .into()
    })
}

fn run(metric: &str, n: usize, dir: &Path) -> Result<(f64, f64), Error> {
    Ok(match metric {
        "foscttm" => {
            let a = load_f32(dir, &format!("foscttm_a_{n}.npy"))?;
            let b = load_f32(dir, &format!("foscttm_b_{n}.npy"))?;
            let t = Instant::now();
            let v = alignment::foscttm(a.view(), b.view())?;
            (v, t.elapsed().as_secs_f64())
        }
        "silhouette" => {
            let x = load_f32(dir, &format!("silhouette_x_{n}.npy"))?;
            let p = dir.join(format!("silhouette_labels_{n}.npy"));
            let labels: Array1<i64> = read_npy(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let labels: Vec<usize> = labels.iter().map(|&l| l as usize).collect();
            let t = Instant::now();
            let v = silhouette::silhouette_score(x.view(), &labels)?;
            (v, t.elapsed().as_secs_f64())
        }
        "leiden" => {
            let x = load_f32(dir, &format!("leiden_x_{n}.npy"))?;
            let t = Instant::now();
            let nn = knn_graph(x.view(), K, &KnnMethod::default())?;
            let graph = WeightedGraph::umap_connectivities(&nn);
            let t_knn = t.elapsed().as_secs_f64();
            let r = leiden(&graph, &ClusterParams::default())?;
            let total = t.elapsed().as_secs_f64();
            println!(
                "knn_seconds={t_knn:.3} leiden_seconds={:.3} clusters={} modularity={:.6}",
                total - t_knn,
                r.n_clusters,
                r.modularity
            );
            (r.n_clusters as f64, total)
        }
        "auroc" => {
            let p = dir.join(format!("auroc_truth_{n}.npy"));
            let truth: Array2<u8> = read_npy(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            let truth = truth.mapv(f32::from);
            let pred = load_f32(dir, &format!("auroc_pred_{n}.npy"))?;
            let t = Instant::now();
            let s = auroc(truth.view(), pred.view(), Along::PerCell)?;
            println!("scored={} skipped={}", s.n_scored, s.n_skipped);
            (s.value, t.elapsed().as_secs_f64())
        }
        other => return Err(format!("unknown metric {other}").into()),
    })
}

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: metrics_cli <foscttm|silhouette|leiden|auroc> [n] [--dir DIR]";
    let metric = args.next().ok_or(usage)?;
    let mut n = None;
    let mut dir = PathBuf::from("/tmp/crossomics-metrics-bench");
    while let Some(a) = args.next() {
        if a == "--dir" {
            dir = PathBuf::from(args.next().ok_or(usage)?);
        } else {
            n = Some(a.parse::<usize>().map_err(|_| usage)?);
        }
    }
    let n = n.unwrap_or(match metric.as_str() {
        "foscttm" => 10_000,
        "silhouette" => 50_000,
        "leiden" => 100_000,
        _ => 5_000,
    });
    let (value, secs) = run(&metric, n, &dir)?;
    println!("metric={metric} n={n} value={value:.10} seconds={secs:.3}");
    Ok(())
}
