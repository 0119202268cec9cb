//! Criterion benchmarks: `cargo bench -p crossomics-benches` (figures in docs/performance.md).
//!
//! - loss terms at the SAILERX minibatch size (B = 200, d = 50), forward + backward
//! - one SAILERX-style training step's data path: CSR rows -> dense tensor
//! - reading and preprocessing the bundled sample
//! - metrics on 2,000-cell embeddings

use criterion::{Criterion, criterion_group, criterion_main};
use ndarray::Array2;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};
use tch::{Device, Kind, Tensor};

fn losses(c: &mut Criterion) {
    tch::manual_seed(0);
    let opts = (Kind::Float, Device::Cpu);
    let mu = Tensor::randn([200, 50], opts).set_requires_grad(true);
    let logvar = (Tensor::randn([200, 50], opts) * 0.1).set_requires_grad(true);
    let p = Tensor::randn([200, 50], opts);
    let w = Tensor::rand([200], opts);
    let mut g = c.benchmark_group("losses_b200_d50");
    g.bench_function("pairwise_kl_invariance_fwd_bwd", |b| {
        b.iter(|| crossomics_losses::kl::invariance(&mu, &logvar).backward())
    });
    g.bench_function("structural_similarity_fwd_bwd", |b| {
        b.iter(|| crossomics_losses::similarity::structural(&p, &mu, Some(&w)).backward())
    });
    g.finish();
}

fn data(c: &mut Criterion) {
    let mut g = c.benchmark_group("data");
    g.sample_size(20);
    g.bench_function("read_bundled_sample", |b| {
        b.iter(|| crossomics_data::sample::bmmc_multiome_starter().unwrap())
    });
    let d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    g.bench_function("normalize_log1p_pca30", |b| {
        b.iter(|| {
            let n = crossomics_data::preprocess::normalize_log1p(&d.rna, None).unwrap();
            crossomics_data::pca::fit(crossomics_data::preprocess::to_dense(&n).view(), 30, 0)
                .unwrap()
        })
    });
    let rows: Vec<usize> = (0..200).collect();
    g.bench_function("dense_rows_200", |b| {
        b.iter(|| crossomics_data::preprocess::dense_rows(&d.atac, &rows))
    });
    g.finish();
}

fn embedding(n: usize, d: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((n, d), |_| StandardNormal.sample(&mut rng))
}

fn metrics(c: &mut Criterion) {
    let a = embedding(2000, 30, 1);
    let b = &a + &embedding(2000, 30, 2).mapv(|v| 0.3 * v);
    let labels: Vec<usize> = (0..2000).map(|i| i % 10).collect();
    let mut g = c.benchmark_group("metrics_n2000_d30");
    g.sample_size(10);
    g.bench_function("foscttm", |bch| {
        bch.iter(|| crossomics_metrics::alignment::foscttm(a.view(), b.view()).unwrap())
    });
    g.bench_function("silhouette", |bch| {
        bch.iter(|| crossomics_metrics::silhouette::silhouette_score(a.view(), &labels).unwrap())
    });
    g.bench_function("kmeans_k10", |bch| {
        bch.iter(|| crossomics_metrics::clustering::kmeans(a.view(), 10, 0).unwrap())
    });
    g.finish();
}

criterion_group!(benches, losses, data, metrics);
criterion_main!(benches);
