//! Throughput of the minibatch loader (`crossomics_data::loader`), for docs/performance.md:
//!
//! ```text
//! OMP_NUM_THREADS=1 cargo run --release -p crossomics-benches --example loader_throughput
//! ```
//!
//! Two inputs: the sci-CAR A549 ATAC counts (read with `crossomics_data::plain`, default
//! `data/scicar_a549`; `--data DIR`, `--no-real` to skip) and a simulated
//! 50,000 x 100,000 CSR at 3% density (seeded; `--sim-cells`, `--sim-cols`, `--density`,
//! `--no-sim`). Batch 128 (`--batch`), batches from `batches::shuffled` over `--epochs`.
//!
//! For each input and both modes (`inline`: no thread; `background`: producer thread,
//! depth 2) it times:
//!
//! - `loader`: the loader alone, the consumer only reads one value of each buffer;
//! - `loader+tensor`: the consumer wraps each buffer as a tch tensor (`Tensor::from_slice`,
//!   the trainer's one copy) and runs a 128-unit first layer on it (`x.matmul(w)`), a
//!   stand-in for the model's work that the background thread overlaps with;
//!
//! and, per batch, the old tensor path (`preprocess::dense_rows` into a fresh array, then
//! a copy into the tensor) against the new one (reused loader buffer, one copy).
//! Figures are medians of `--repeats` (default 3) runs. Prints one `key=value` line each.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::Instant;

use crossomics_data::Csr;
use crossomics_data::batches;
use crossomics_data::loader::{Loader, Prefetch, Source};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{Device, Kind, Tensor};

type Error = Box<dyn std::error::Error>;
/// What is done with each batch's dense buffer (values, rows, columns).
type Consumer<'a> = dyn Fn(&[f32], usize, usize) + 'a;

#[derive(Debug)]
struct Args {
    data: PathBuf,
    real: bool,
    sim: bool,
    sim_cells: usize,
    sim_cols: usize,
    density: f64,
    batch: usize,
    epochs: Option<usize>,
    repeats: usize,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        data: PathBuf::from("data/scicar_a549"),
        real: true,
        sim: true,
        sim_cells: 50_000,
        sim_cols: 100_000,
        density: 0.03,
        batch: 128,
        epochs: None,
        repeats: 3,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--data" => a.data = PathBuf::from(value()?),
            "--no-real" => a.real = false,
            "--no-sim" => a.sim = false,
            "--sim-cells" => a.sim_cells = value()?.parse()?,
            "--sim-cols" => a.sim_cols = value()?.parse()?,
            "--density" => a.density = value()?.parse()?,
            "--batch" => a.batch = value()?.parse()?,
            "--epochs" => a.epochs = Some(value()?.parse()?),
            "--repeats" => a.repeats = value()?.parse()?,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// A cells x cols CSR with each entry present with probability `density` (value 1),
/// drawn by geometric skips: O(non-zeros), sorted columns.
fn simulate(cells: usize, cols: usize, density: f64, seed: u64) -> Result<Csr, Error> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let log_q = (1.0 - density).ln();
    let expected = (cells as f64 * cols as f64 * density * 1.01) as usize;
    let mut offsets = Vec::with_capacity(cells + 1);
    let mut indices = Vec::with_capacity(expected);
    offsets.push(0);
    for _ in 0..cells {
        let mut j = 0usize;
        loop {
            let u: f64 = 1.0 - rng.r#gen::<f64>(); // (0, 1]
            j += (u.ln() / log_q) as usize;
            if j >= cols {
                break;
            }
            indices.push(j);
            j += 1;
        }
        offsets.push(indices.len());
    }
    let values = vec![1.0f32; indices.len()];
    Ok(Csr::try_from_csr_data(
        cells, cols, offsets, indices, values,
    )?)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn plan(n: usize, batch: usize, epochs: usize) -> Vec<Vec<usize>> {
    let cells: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    (0..epochs)
        .flat_map(|_| batches::shuffled(&cells, batch, &mut rng))
        .collect()
}

/// Seconds to run the plan through the loader; `work` is the consumer's per-batch work.
fn time_run(
    loader: &Loader<'_>,
    plan: &[Vec<usize>],
    prefetch: Prefetch,
    work: &dyn Fn(&[f32], usize, usize),
) -> f64 {
    let started = Instant::now();
    loader.run(plan.iter().cloned(), prefetch, |batches| {
        for b in batches {
            let d = b.dense(0).expect("dense source");
            work(d.values, d.nrows, d.ncols);
        }
    });
    started.elapsed().as_secs_f64()
}

fn bench(name: &str, m: &Csr, args: &Args, epochs: usize) {
    let n = m.nrows();
    let d = m.ncols();
    let nnz = m.nnz();
    let p = plan(n, args.batch, epochs);
    let cells_total: usize = p.iter().map(Vec::len).sum();
    println!(
        "dataset={name} cells={n} cols={d} nnz={nnz} density={:.4} batch={} epochs={epochs} batches={}",
        nnz as f64 / (n as f64 * d as f64),
        args.batch,
        p.len()
    );
    let loader = Loader::new([Source::new(m)]).expect("one source");
    let weight = Tensor::randn([d as i64, 128], (Kind::Float, Device::Cpu)) * 0.01;
    let only_read = |v: &[f32], _: usize, _: usize| {
        black_box(v.first());
    };
    let to_tensor = |v: &[f32], rows: usize, cols: usize| {
        let x = Tensor::from_slice(v).view([rows as i64, cols as i64]);
        let _ = black_box(x.matmul(&weight));
    };
    let consumers: [(&str, &Consumer); 2] = [("loader", &only_read), ("loader+tensor", &to_tensor)];
    for (consumer, work) in consumers {
        for (mode, prefetch) in [
            ("inline", Prefetch::Inline),
            ("background", Prefetch::Background),
        ] {
            let secs = median(
                (0..args.repeats)
                    .map(|_| time_run(&loader, &p, prefetch, work))
                    .collect(),
            );
            println!(
                "dataset={name} consumer={consumer} mode={mode} seconds={secs:.3} cells_per_s={:.0} ms_per_batch={:.3}",
                cells_total as f64 / secs,
                1e3 * secs / p.len() as f64
            );
        }
    }
    // the consumer's work alone, for reading the overlap
    let x = Tensor::zeros([args.batch as i64, d as i64], (Kind::Float, Device::Cpu));
    let layer = median(
        (0..args.repeats.max(3))
            .map(|_| {
                let t = Instant::now();
                for _ in 0..20 {
                    let _ = black_box(x.matmul(&weight));
                }
                t.elapsed().as_secs_f64() / 20.0
            })
            .collect(),
    );
    println!("dataset={name} first_layer_matmul_ms={:.3}", 1e3 * layer);
    // per-batch tensor build: old two-copy path against the loader buffer + one copy
    let rows = &p[0];
    let reps = 30;
    let old = median(
        (0..args.repeats)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    let a = crossomics_data::preprocess::dense_rows(m, rows);
                    let s = a.as_slice().expect("standard layout");
                    let _ = black_box(Tensor::from_slice(s).view([rows.len() as i64, d as i64]));
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .collect(),
    );
    let mut buf = Vec::new();
    let new = median(
        (0..args.repeats)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    crossomics_data::loader::densify_rows(m, rows, &mut buf);
                    let _ = black_box(Tensor::from_slice(&buf).view([rows.len() as i64, d as i64]));
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .collect(),
    );
    let densify = median(
        (0..args.repeats)
            .map(|_| {
                let t = Instant::now();
                for _ in 0..reps {
                    crossomics_data::loader::densify_rows(m, rows, &mut buf);
                    black_box(buf.first());
                }
                t.elapsed().as_secs_f64() / reps as f64
            })
            .collect(),
    );
    println!(
        "dataset={name} per_batch_ms densify_reused_buffer={:.3} tensor_old_dense_rows_then_copy={:.3} tensor_new_buffer_one_copy={:.3}",
        1e3 * densify,
        1e3 * old,
        1e3 * new
    );
}

fn main() -> Result<(), Error> {
    let args = args()?;
    tch::manual_seed(0);
    println!(
        "threads: cores={} OMP_NUM_THREADS={} torch_threads={}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::var("OMP_NUM_THREADS").unwrap_or_else(|_| "unset".into()),
        tch::get_num_threads()
    );
    if args.real {
        let t = Instant::now();
        let data =
            crossomics_data::plain::read_dir(&args.data, &crossomics_limits::Limits::default())?;
        println!(
            "read {} in {:.1} s",
            args.data.display(),
            t.elapsed().as_secs_f64()
        );
        bench(
            "scicar_a549_atac",
            &data.atac,
            &args,
            args.epochs.unwrap_or(20),
        );
    }
    if args.sim {
        let t = Instant::now();
        let m = simulate(args.sim_cells, args.sim_cols, args.density, 1)?;
        println!("simulated in {:.1} s", t.elapsed().as_secs_f64());
        bench("simulated", &m, &args, args.epochs.unwrap_or(1));
    }
    Ok(())
}
