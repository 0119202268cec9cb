//! Criterion benchmarks of crossomics-metrics at the sizes of its issue
//! (`cargo bench -p crossomics-benches --bench metrics`; figures in docs/performance.md):
//!
//! - FOSCTTM on 10,000 x 10,000 cells (50 dimensions)
//! - silhouette on 50,000 cells (50 dimensions, 20 clusters)
//! - kNN graph (k = 15, `KnnMethod::default()`: exact at this size) + umap connectivities
//!   + Leiden on 100,000 cells
//! - per-cell AUROC over a 5,000 x 100,000 matrix
//!
//! Inputs are seeded Gaussian mixtures generated here (ChaCha8), of the same shapes and
//! distributions as `scripts/bench_metrics_reference.py gen` (not the same numbers: the
//! whole-process comparison with the Python references uses `examples/metrics_cli.rs` on
//! the script's .npy files). `CROSSOMICS_BENCH_SCALE=0.1` shrinks every n tenfold for a
//! quick run. Single-threaded (the HNSW index, rayon, is only used above 200,000 cells).

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use crossomics_metrics::alignment::foscttm;
use crossomics_metrics::community::{ClusterParams, WeightedGraph, leiden};
use crossomics_metrics::knn::{KnnMethod, knn_graph};
use crossomics_metrics::prediction::{Along, auroc};
use crossomics_metrics::silhouette::silhouette_score;
use ndarray::Array2;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Beta, Distribution, StandardNormal};

const DIM: usize = 50;
const N_CLUSTERS: usize = 20;

fn scaled(n: usize) -> usize {
    let s: f64 = std::env::var("CROSSOMICS_BENCH_SCALE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1.0);
    ((n as f64 * s).round() as usize).max(100)
}

/// Gaussian mixture: centres ~ N(0, 2^2 I), unit noise; returns points and labels.
fn clustered(n: usize, seed: u64) -> (Array2<f32>, Vec<usize>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((N_CLUSTERS, DIM), |_| {
        2.0 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
    });
    let labels: Vec<usize> = (0..n).map(|_| rng.gen_range(0..N_CLUSTERS)).collect();
    let x = Array2::from_shape_fn((n, DIM), |(i, j)| {
        centres[[labels[i], j]]
            + <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
    });
    (x, labels)
}

fn bench_foscttm(c: &mut Criterion) {
    let n = scaled(10_000);
    let (a, _) = clustered(n, 1);
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let b = a.mapv(|v| {
        v + 0.7 * <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng)
    });
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function(format!("foscttm_{n}x{n}_d{DIM}"), |bch| {
        bch.iter(|| foscttm(a.view(), b.view()).unwrap())
    });
    g.finish();
}

fn bench_silhouette(c: &mut Criterion) {
    let n = scaled(50_000);
    let (x, labels) = clustered(n, 3);
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.bench_function(format!("silhouette_{n}_d{DIM}"), |bch| {
        bch.iter(|| silhouette_score(x.view(), &labels).unwrap())
    });
    g.finish();
}

fn bench_leiden(c: &mut Criterion) {
    let n = scaled(100_000);
    let (x, _) = clustered(n, 4);
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10).measurement_time(Duration::from_secs(60));
    g.bench_function(format!("knn15_umap_leiden_{n}_d{DIM}"), |bch| {
        bch.iter(|| {
            let nn = knn_graph(x.view(), 15, &KnnMethod::default()).unwrap();
            let graph = WeightedGraph::umap_connectivities(&nn);
            leiden(&graph, &ClusterParams::default()).unwrap()
        })
    });
    let nn = knn_graph(x.view(), 15, &KnnMethod::default()).unwrap();
    let graph = WeightedGraph::umap_connectivities(&nn);
    g.bench_function(format!("leiden_only_{n}"), |bch| {
        bch.iter(|| leiden(&graph, &ClusterParams::default()).unwrap())
    });
    g.finish();
}

fn bench_auroc(c: &mut Criterion) {
    let cells = scaled(5_000);
    let peaks = scaled(100_000);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let beta = Beta::new(0.5f32, 8.0).unwrap();
    let rate: Vec<f32> = (0..peaks).map(|_| beta.sample(&mut rng)).collect();
    let depth: Vec<f32> = (0..cells).map(|_| rng.gen_range(0.5..1.5)).collect();
    let truth = Array2::from_shape_fn((cells, peaks), |(i, j)| {
        f32::from(u8::from(rng.r#gen::<f32>() < (rate[j] * depth[i]).min(1.0)))
    });
    let pred = Array2::from_shape_fn((cells, peaks), |(i, j)| {
        let r = rate[j].clamp(1e-6, 1.0 - 1e-6);
        let logit = (r / (1.0 - r)).ln()
            + 1.5 * truth[[i, j]]
            + <StandardNormal as Distribution<f32>>::sample(&StandardNormal, &mut rng);
        (1000.0 / (1.0 + (-logit).exp())).round() / 1000.0
    });
    let mut g = c.benchmark_group("metrics");
    g.sample_size(10).measurement_time(Duration::from_secs(30));
    g.bench_function(format!("auroc_per_cell_{cells}x{peaks}"), |bch| {
        bch.iter(|| auroc(truth.view(), pred.view(), Along::PerCell).unwrap())
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_foscttm,
    bench_silhouette,
    bench_leiden,
    bench_auroc
);
criterion_main!(benches);
