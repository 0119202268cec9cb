//! Loads a paired dataset and prints its shape and non-zeros: the Rust side of
//! `scripts/bench_load.sh` (docs/performance.md, "Loading data").
//!
//! ```text
//! load h5ad RNA.h5ad ATAC.h5ad          h5ad::read_pair (what `format = "h5ad"` does)
//! load h5ad-files RNA.h5ad ATAC.h5ad    h5ad::read_with on each file, no pairing
//! load plain DIR                        plain::read_dir (MatrixMarket + tsv)
//! load convert DIR OUT_PREFIX           plain DIR -> OUT_PREFIX_rna.h5ad, OUT_PREFIX_atac.h5ad
//! load simulate OUT CELLS GENES PEAKS [THREADS]
//!                                       the same as `crossomics simulate OUT --cells CELLS
//!                                       --genes GENES --peaks PEAKS --threads THREADS`
//! ```
//!
//! The h5ad modes read with the options a config uses by default (`X`, counts required).
//! Each mode prints its result to stdout and, to stderr, the time of its steps with the
//! process's resident and peak memory after each (`phase ... (total S s) ...`); with
//! `LOAD_PHASES=1` the `h5ad` mode runs the steps of `read_pair` one by one to time them.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use crossomics_data::h5ad::{self, Matrix, ReadOptions};
use crossomics_data::pair::{PairingConfig, join};
use crossomics_data::simulate::{Calibration, Simulator, SimulatorParams, WriteOptions};
use crossomics_data::{Csr, PairedDataset, plain};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const USAGE: &str = "usage:
  load h5ad RNA.h5ad ATAC.h5ad
  load h5ad-files RNA.h5ad ATAC.h5ad
  load plain DIR
  load convert DIR OUT_PREFIX
  load simulate OUT CELLS GENES PEAKS [THREADS]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let strs: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match strs.as_slice() {
        ["h5ad", rna, atac] => h5ad_pair(Path::new(rna), Path::new(atac)),
        ["h5ad-files", rna, atac] => h5ad_files(Path::new(rna), Path::new(atac)),
        ["plain", dir] => plain_dir(Path::new(dir)),
        ["convert", dir, prefix] => convert(Path::new(dir), prefix),
        ["simulate", out, cells, genes, peaks, rest @ ..] if rest.len() <= 1 => {
            simulate(Path::new(out), cells, genes, peaks, rest.first().copied())
        }
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Times the steps of a mode and reports them with the memory after each.
struct Phases {
    start: Instant,
    last: Instant,
}

impl Phases {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            start: now,
            last: now,
        }
    }

    fn done(&mut self, what: &str) {
        let now = Instant::now();
        let (rss, hwm) = memory_mib();
        eprintln!(
            "phase {what:<28} {:>8.3} s  (total {:>8.3} s)  rss {rss:>7.0} MiB  peak {hwm:>7.0} MiB",
            (now - self.last).as_secs_f64(),
            (now - self.start).as_secs_f64(),
        );
        self.last = now;
    }
}

/// Resident and peak resident memory of this process in MiB (`/proc/self/status`; 0 elsewhere).
fn memory_mib() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn opts() -> ReadOptions {
    ReadOptions::counts(None)
}

fn print_dataset(mode: &str, d: &PairedDataset) {
    println!(
        "{mode}\t{}\tcells {}\tgenes {}\tpeaks {}\trna_nnz {}\tatac_nnz {}\tobs_columns {}",
        d.name,
        d.n_cells(),
        d.genes.len(),
        d.peaks.len(),
        d.rna.nnz(),
        d.atac.nnz(),
        d.cells.column_names().collect::<Vec<_>>().join(","),
    );
}

fn print_matrix(mode: &str, what: &str, m: &Csr) {
    println!(
        "{mode}\t{what}\t{} x {}\tnnz {}",
        m.nrows(),
        m.ncols(),
        m.nnz()
    );
}

fn h5ad_pair(rna: &Path, atac: &Path) -> Res<()> {
    let pairing = PairingConfig::default();
    let mut t = Phases::new();
    let d = if std::env::var("LOAD_PHASES").is_ok_and(|v| v == "1") {
        // the body of h5ad::read_pair, step by step
        let r = h5ad::read_with(rna, &opts())?;
        t.done("read RNA h5ad");
        let a = h5ad::read_with(atac, &opts())?;
        t.done("read ATAC h5ad");
        let a = h5ad::parse_peaks(a)?;
        t.done("parse peaks");
        let (d, _) = join("pair", r, a, &pairing)?;
        t.done("pair barcodes + copy rows");
        d
    } else {
        let d = h5ad::read_pair("pair", rna, atac, &opts(), &pairing)?.0;
        t.done("h5ad::read_pair");
        d
    };
    print_dataset("h5ad", &d);
    Ok(())
}

fn h5ad_files(rna: &Path, atac: &Path) -> Res<()> {
    let mut t = Phases::new();
    let r = h5ad::read_with(rna, &opts())?;
    t.done("read RNA h5ad");
    let a = h5ad::read_with(atac, &opts())?;
    t.done("read ATAC h5ad");
    print_matrix("h5ad-files", "rna", &r.matrix);
    print_matrix("h5ad-files", "atac", &a.matrix);
    Ok(())
}

fn plain_dir(dir: &Path) -> Res<()> {
    let mut t = Phases::new();
    let d = plain::read_dir(dir, &crossomics_limits::Limits::default())?;
    t.done("plain::read_dir");
    print_dataset("plain", &d);
    Ok(())
}

fn convert(dir: &Path, prefix: &str) -> Res<()> {
    let mut t = Phases::new();
    let d = plain::read_dir(dir, &crossomics_limits::Limits::default())?;
    t.done("plain::read_dir");
    let rna_path = PathBuf::from(format!("{prefix}_rna.h5ad"));
    let atac_path = PathBuf::from(format!("{prefix}_atac.h5ad"));
    if let Some(parent) = rna_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    h5ad::write(
        &rna_path,
        Some(Matrix::Sparse(&d.rna)),
        &d.cells,
        &d.genes,
        &[],
    )?;
    t.done("write RNA h5ad");
    let peaks: Vec<String> = d.peaks.iter().map(ToString::to_string).collect();
    h5ad::write(
        &atac_path,
        Some(Matrix::Sparse(&d.atac)),
        &d.cells,
        &peaks,
        &[],
    )?;
    t.done("write ATAC h5ad");
    print_dataset("convert", &d);
    println!("wrote {}\t{}", rna_path.display(), atac_path.display());
    Ok(())
}

fn simulate(out: &Path, cells: &str, genes: &str, peaks: &str, threads: Option<&str>) -> Res<()> {
    let params = SimulatorParams {
        n_cells: cells.parse()?,
        n_genes: genes.parse()?,
        n_peaks: peaks.parse()?,
        ..SimulatorParams::default()
    };
    let options = WriteOptions {
        threads: threads.map(str::parse).transpose()?.unwrap_or(1),
        ..WriteOptions::default()
    };
    let t = Instant::now();
    let sim = Simulator::new(&params, &Calibration::bundled()?)?;
    let s = sim.write_dir(out, &options)?;
    println!(
        "simulated {} cells x {} genes x {} peaks ({} RNA and {} ATAC entries, {:.1} MB) in {} ({:.1} s)",
        s.n_cells,
        params.n_genes,
        params.n_peaks,
        s.rna_nnz,
        s.atac_nnz,
        s.bytes as f64 / 1e6,
        s.dir.display(),
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
