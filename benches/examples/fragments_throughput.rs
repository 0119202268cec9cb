//! Throughput and peak memory of counting a 10x ATAC fragments file into peaks
//! (`crossomics_data::fragments::count`), for docs/performance.md:
//!
//! ```text
//! cargo run --release -p crossomics-benches --example fragments_throughput -- --lines 20000000
//! ```
//!
//! Writes a seeded synthetic BGZF fragments file first (not timed): `--lines` fragments
//! sorted by position over chr1-22, lengths drawn from a nucleosomal mix (70% 40-147 bp,
//! 25% 180-250 bp, 5% 330-450 bp), half of them starting inside a peak, barcodes drawn
//! from `--cells` cells plus as many
//! barcodes that are not cells (skipped by the counter, as in real files), peaks of 500 bp
//! every 10 kb (`--peaks`), `#` header lines as 10x writes them. Then counts it once and
//! prints one `key=value` line: lines, file bytes, seconds, lines/s, MB/s (compressed),
//! non-zeros, and the process's peak resident memory (`VmHWM`), which should follow the
//! non-zeros (cells x peaks hit), not the file size: compare two `--lines` at the same
//! `--cells` and `--peaks`. `--keep PATH` keeps the file (`--no-count` to only write it).

use std::io::Write;
use std::path::PathBuf;
use std::time::Instant;

use crossomics_data::genome::Peak;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

type Error = Box<dyn std::error::Error>;

struct Args {
    lines: u64,
    cells: usize,
    peaks: usize,
    keep: Option<PathBuf>,
    count: bool,
}

fn args() -> Result<Args, Error> {
    let mut a = Args {
        lines: 2_000_000,
        cells: 10_000,
        peaks: 100_000,
        keep: None,
        count: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{k} needs a value"));
        match k.as_str() {
            "--lines" => a.lines = value()?.parse()?,
            "--cells" => a.cells = value()?.parse()?,
            "--peaks" => a.peaks = value()?.parse()?,
            "--keep" => a.keep = Some(PathBuf::from(value()?)),
            "--no-count" => a.count = false,
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    Ok(a)
}

/// Peak resident memory of this process in MiB (`VmHWM`).
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn main() -> Result<(), Error> {
    let a = args()?;
    let dir = tempfile_dir()?;
    let path = a
        .keep
        .clone()
        .unwrap_or_else(|| dir.join("fragments.tsv.gz"));
    // peaks: 500 bp every 10 kb, spread over chr1-22
    let per_chrom = a.peaks.div_ceil(22);
    let peaks: Vec<Peak> = (0..a.peaks)
        .map(|i| {
            let (c, j) = (i / per_chrom, (i % per_chrom) as u64);
            Peak {
                chrom: format!("chr{}", c + 1),
                start: 1_000_000 + j * 10_000,
                end: 1_000_500 + j * 10_000,
            }
        })
        .collect();
    let cells: Vec<String> = (0..a.cells).map(|i| format!("CELL{i:07}-1")).collect();
    let started = Instant::now();
    {
        let file = std::fs::File::create(&path)?;
        let mut w = std::io::BufWriter::with_capacity(
            1 << 20,
            noodles_bgzf::io::Writer::new(std::io::BufWriter::new(file)),
        );
        writeln!(
            w,
            "# id=synthetic\n# description=crossomics fragments_throughput"
        )?;
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let lines_per_chrom = a.lines.div_ceil(22);
        let span = per_chrom as u64 * 10_000;
        let mut written = 0u64;
        for c in 1..=22 {
            let n = lines_per_chrom.min(a.lines - written);
            for k in 0..n {
                // half the fragments start inside the nearest peak (a FRiP near 0.5)
                let pos = k * span / n.max(1);
                let start = if rng.gen_bool(0.5) {
                    1_000_000 + pos / 10_000 * 10_000 + rng.gen_range(0..450)
                } else {
                    1_000_000 - 5_000 + pos + rng.gen_range(0..50)
                };
                let r: f64 = rng.r#gen();
                let len = if r < 0.7 {
                    rng.gen_range(40..147)
                } else if r < 0.95 {
                    rng.gen_range(180..250)
                } else {
                    rng.gen_range(330..450)
                };
                let b = rng.gen_range(0..2 * a.cells);
                let dup = 1 + u32::from(rng.gen_range(0..10) == 0);
                if b < a.cells {
                    writeln!(w, "chr{c}\t{start}\t{}\t{}\t{dup}", start + len, cells[b])?;
                } else {
                    writeln!(w, "chr{c}\t{start}\t{}\tNOISE{b:07}-1\t{dup}", start + len)?;
                }
            }
            written += n;
        }
        w.into_inner()
            .map_err(|e| e.into_error())?
            .finish()?
            .flush()?;
    }
    let bytes = std::fs::metadata(&path)?.len();
    eprintln!(
        "wrote {} ({} lines, {:.1} MB) in {:.1} s",
        path.display(),
        a.lines,
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );
    if a.count {
        let limits = crossomics_limits::Limits::default();
        let clock = Instant::now();
        let m = crossomics_data::fragments::count(&path, &cells, &peaks, &limits)?;
        let s = clock.elapsed().as_secs_f64();
        println!(
            "lines={} file_mb={:.1} cells={} peaks={} seconds={s:.2} lines_per_s={:.0} mb_per_s={:.1} nonzeros={} peak_rss_mib={:.0}",
            a.lines,
            bytes as f64 / 1e6,
            a.cells,
            a.peaks,
            a.lines as f64 / s,
            bytes as f64 / 1e6 / s,
            m.nnz(),
            peak_rss_mib()
        );
    }
    if a.keep.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

fn tempfile_dir() -> Result<PathBuf, Error> {
    let d = std::env::temp_dir().join(format!("crossomics-fragments-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}
