//! Micro-benchmark of the first ATAC layer: dense `mm` on densified rows against the
//! sparse kernels on CSR rows, forward + backward (weight gradient), batch by batch.
//!
//! ```sh
//! cargo run -p crossomics-encoders --example sparse_bench            # both cases, every batch
//! cargo run -p crossomics-encoders --example sparse_bench -- 40      # at most 40 batches per case
//! ```
//!
//! Cases: scicar-like (2,641 cells x 52,761 peaks) and 50,000 cells x 100,000 peaks,
//! 3% density, batch 128, 64 hidden units; the layer as one `Linear(peaks -> 64)` and
//! as the chromosome-split block layer over 25 groups (`G * 64` outputs). The dense
//! timing includes densifying the CSR rows. Random batches are generated outside the
//! timed region; the CPU bag sort of the split layer is inside it.

use std::time::{Duration, Instant};

use crossomics_encoders::{ChromGroups, CsrBatch, SparseKernel, SparseLinear};
use tch::{Device, Kind, nn};

const BATCH: usize = 128;
const WIDTH: i64 = 64;
const DENSITY: f64 = 0.03;

struct Rng(u64);

impl Rng {
    fn uniform(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

struct Batch {
    nrows: usize,
    ncols: usize,
    indptr: Vec<i64>,
    indices: Vec<i64>,
    values: Vec<f32>,
}

impl Batch {
    /// Binary rows at `DENSITY`, sorted columns (geometric gaps between entries).
    fn random(rng: &mut Rng, nrows: usize, ncols: usize) -> Self {
        let log_q = (1.0 - DENSITY).ln();
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for _ in 0..nrows {
            let mut c = -1i64;
            loop {
                c += 1 + ((1.0 - rng.uniform()).ln() / log_q).floor() as i64;
                if c >= ncols as i64 {
                    break;
                }
                indices.push(c);
            }
            indptr.push(indices.len() as i64);
        }
        let values = vec![1f32; indices.len()];
        Self {
            nrows,
            ncols,
            indptr,
            indices,
            values,
        }
    }

    fn csr(&self) -> CsrBatch<'_> {
        CsrBatch::new(
            self.nrows,
            self.ncols,
            &self.indptr,
            &self.indices,
            &self.values,
        )
        .unwrap()
    }
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Dense,
    Sparse(SparseKernel),
}

/// 25 chromosome-like groups with scicar's relative sizes (chr1 largest, `other` small).
fn chromosome_groups(n_peaks: usize) -> ChromGroups {
    let sizes = [
        4385, 4376, 3401, 2954, 2931, 2741, 2684, 2651, 2587, 2440, 2396, 2269, 2162, 2131, 2024,
        1682, 1647, 1622, 1341, 1283, 939, 748, 737, 420, 230,
    ];
    let total: usize = sizes.iter().sum();
    let mut chroms = Vec::with_capacity(n_peaks);
    let mut acc = 0;
    for (g, s) in sizes.iter().enumerate() {
        let end = if g + 1 == sizes.len() {
            n_peaks
        } else {
            (acc + s) * n_peaks / total
        };
        chroms.extend(std::iter::repeat_n(format!("c{g}"), end - chroms.len()));
        acc += s;
    }
    ChromGroups::from_chromosomes(&chroms, 0).unwrap()
}

/// One forward + backward; returns the time of each.
fn step(layer: &SparseLinear, method: Method, batch: &Batch) -> (Duration, Duration) {
    layer.weight().shallow_clone().zero_grad();
    layer.bias().shallow_clone().zero_grad();
    let t = Instant::now();
    let y = match method {
        Method::Dense => layer.forward_dense(&batch.csr().to_dense(Device::Cpu)),
        Method::Sparse(_) => layer.forward_csr(&batch.csr()),
    };
    let forward = t.elapsed();
    let t = Instant::now();
    y.sum(Kind::Float).backward();
    (forward, t.elapsed())
}

fn bench(name: &str, n_cells: usize, n_peaks: usize, max_batches: usize) {
    let n_batches = n_cells.div_ceil(BATCH).min(max_batches);
    // the same batches for every method, generated on the fly (the large case would
    // hold 150 million entries)
    let batches = || {
        let mut rng = Rng(42);
        (0..n_batches)
            .map(move |b| Batch::random(&mut rng, BATCH.min(n_cells - b * BATCH), n_peaks))
    };
    let (mut cells, mut nnz) = (0, 0);
    for b in batches() {
        cells += b.nrows;
        nnz += b.indices.len();
    }
    println!(
        "\n### {name}: {n_cells} cells x {n_peaks} peaks, {n_batches} batches of {BATCH} \
         ({cells} cells timed), density {:.2}%",
        100.0 * nnz as f64 / (cells * n_peaks) as f64
    );
    println!(
        "| layer | method | forward ms | backward ms | ms/batch | cells/s | speed-up vs dense |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    for (label, groups) in [
        ("Linear(peaks -> 64)", ChromGroups::single(n_peaks)),
        ("split, 25 groups -> 25 x 64", chromosome_groups(n_peaks)),
    ] {
        let mut dense_ms = f64::NAN;
        for method in [
            Method::Dense,
            Method::Sparse(SparseKernel::EmbeddingBag),
            Method::Sparse(SparseKernel::CooMm),
            Method::Sparse(SparseKernel::CsrMm),
        ] {
            tch::manual_seed(0);
            let vs = nn::VarStore::new(Device::Cpu);
            let kernel = match method {
                Method::Sparse(k) => k,
                Method::Dense => SparseKernel::EmbeddingBag,
            };
            let layer = SparseLinear::new(&vs.root(), &groups, WIDTH, kernel);
            for b in batches().take(2) {
                step(&layer, method, &b);
            }
            let (mut forward, mut backward) = (Duration::ZERO, Duration::ZERO);
            for b in batches() {
                let (f, b) = step(&layer, method, &b);
                forward += f;
                backward += b;
            }
            let total = forward + backward;
            let per_batch = |d: Duration| d.as_secs_f64() * 1e3 / n_batches as f64;
            let ms = per_batch(total);
            if let Method::Dense = method {
                dense_ms = ms;
            }
            let method = match method {
                Method::Dense => "dense mm (incl. densify)".to_string(),
                Method::Sparse(k) => format!("{k:?}"),
            };
            println!(
                "| {label} | {method} | {:.2} | {:.2} | {ms:.2} | {:.0} | {:.1}x |",
                per_batch(forward),
                per_batch(backward),
                cells as f64 / total.as_secs_f64(),
                dense_ms / ms
            );
        }
    }
}

fn main() {
    let max_batches = std::env::args()
        .nth(1)
        .map(|a| {
            a.parse::<usize>()
                .expect("the argument is a number of batches")
        })
        .unwrap_or(usize::MAX);
    println!(
        "tch threads: {} (OMP_NUM_THREADS={})",
        tch::get_num_threads(),
        std::env::var("OMP_NUM_THREADS").unwrap_or_default()
    );
    bench("scicar-like", 2_641, 52_761, max_batches);
    bench("large", 50_000, 100_000, max_batches);
}
