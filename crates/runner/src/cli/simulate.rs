//! `crossomics` CLI: Simulate paired counts into a plain-layout folder.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context, Result};

/// Simulate paired RNA + ATAC counts calibrated to a real dataset, streamed to a
/// plain-layout folder (cell_type and batch known; gene-peak links in links.tsv).
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// Output folder.
    pub out: PathBuf,
    /// Simulator parameters as TOML (`n_cells`, `n_genes`, `n_peaks`, `n_types`,
    /// `n_batches`, `seed`, `batch_effect`, `link_fraction`, ...); flags below override.
    #[arg(long)]
    pub params: Option<PathBuf>,
    #[arg(long)]
    pub cells: Option<usize>,
    #[arg(long)]
    pub genes: Option<usize>,
    #[arg(long)]
    pub peaks: Option<usize>,
    #[arg(long)]
    pub types: Option<usize>,
    #[arg(long)]
    pub batches: Option<usize>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Fit the calibration to this plain-layout folder (default: the bundled sample).
    #[arg(long)]
    pub calibrate_from: Option<PathBuf>,
    /// Cell-type column of the calibration data.
    #[arg(long, default_value = "cell_type")]
    pub type_column: String,
    /// Worker threads (0 = all cores); the counts do not depend on it.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

impl SimulateArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            out,
            params,
            cells,
            genes,
            peaks,
            types,
            batches,
            seed,
            calibrate_from,
            type_column,
            threads,
        } = self;
        use crossomics_data::simulate::{Calibration, Simulator, SimulatorParams, WriteOptions};
        let mut p: SimulatorParams = match &params {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("{}: invalid simulator parameters", path.display()))?
            }
            None => SimulatorParams::default(),
        };
        p.n_cells = cells.unwrap_or(p.n_cells);
        p.n_genes = genes.unwrap_or(p.n_genes);
        p.n_peaks = peaks.unwrap_or(p.n_peaks);
        p.n_types = types.unwrap_or(p.n_types);
        p.n_batches = batches.unwrap_or(p.n_batches);
        p.seed = seed.unwrap_or(p.seed);
        let calibration = match &calibrate_from {
            Some(dir) => Calibration::fit(
                &crossomics_data::plain::read_dir(dir, &crossomics_limits::Limits::default())?,
                Some(&type_column),
            )?,
            None => Calibration::bundled()?,
        };
        let sim = Simulator::new(&p, &calibration)?;
        let bar = indicatif::ProgressBar::new(p.n_cells as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} cells ({per_sec}, eta {eta})",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        if !std::io::stderr().is_terminal() {
            bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
        }
        let options = WriteOptions {
            threads,
            ..WriteOptions::default()
        };
        let summary = sim.write_dir_with_progress(&out, &options, &mut |done, _| {
            bar.set_position(done as u64)
        })?;
        bar.finish_and_clear();
        println!(
            "simulated {} cells x {} genes x {} peaks ({} RNA and {} ATAC entries, {:.1} MB) in {}",
            summary.n_cells,
            p.n_genes,
            p.n_peaks,
            summary.rna_nnz,
            summary.atac_nnz,
            summary.bytes as f64 / 1e6,
            summary.dir.display()
        );
        Ok(())
    }
}
