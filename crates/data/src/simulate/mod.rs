//! Simulated paired RNA + ATAC counts with known truth (cell types, batches, depths,
//! gene-peak links), calibrated on a real dataset so that scale tests look like real data.
//!
//! The generative model, per cell `i` of type `t` in batch `b`:
//!
//! - depths: `(ln D_rna, ln D_atac)` bivariate normal with the means, sds and correlation
//!   of the real log library sizes ([`Calibration::fit`]);
//! - RNA: `x_ig ~ NB(mean = D_rna * r_tbg, dispersion theta_g)` where
//!   `r_tbg ∝ rel_g * exp(lfc_tg + beta_bg)` (normalized so that the expected library is
//!   `D_rna` times the total relative expression), `rel_g` and `theta_g` fitted per gene,
//!   `lfc_tg` spike-and-slab type effects (a fitted fraction of marker genes with a fitted
//!   log-fold-change sd) and `beta_bg ~ N(0, batch_effect)` batch effects;
//! - ATAC: `y_ij ~ Bernoulli(1 - exp(-D_atac * a_tbj))` or `Poisson(D_atac * a_tbj)` with
//!   `a_tbj ∝ a_j * exp(lfc_tj + beta_bj)`, `a_j` fitted so that the real open fraction of
//!   each peak is reproduced;
//! - links: a fraction of peaks is linked to the nearest gene (genes and peaks are laid out
//!   on GRCh38-sized chromosomes) and takes `lfc_tj = link_strength * lfc_tg`, so that
//!   accessibility follows the expression of its gene across types.
//!
//! Every cell is drawn from its own ChaCha8 stream `(seed, cell index)`, so the result does
//! not depend on chunking or threads, and the first `n` cells of a larger simulation are
//! the cells of a smaller one. Rows are sampled sparsely (geometric skipping over features
//! sorted by rate with an adaptive bound, then exact acceptance), so a cell costs
//! `O(non-zeros + high-rate features)`, not `O(features)`.
//!
//! [`Simulator::write_dir`] streams the plain layout (see `plain`) chunk by chunk in
//! `O(threads * chunk + features * types * batches)` memory, whatever the number of cells.

mod calibration;
mod feature_fit;
mod layout;
mod model;
mod mtx_gz;
mod params;
mod sampling;
mod write;

use std::path::Path;

use crate::dataset::PairedDataset;
use crate::error::Result;

pub use calibration::{Calibration, LogNormalFit, TypeEffect};
pub use layout::GeneLink;
pub use model::{CellDraw, SimCell, Simulator};
pub use params::{AtacModel, SimulatorParams, default_chromosomes};
pub use sampling::NegativeBinomial;
pub use write::{WriteOptions, WriteSummary};

/// The simulation in memory (small sizes; the same counts as [`simulate_to_dir`]).
pub fn simulate(params: &SimulatorParams, calibration: &Calibration) -> Result<PairedDataset> {
    Simulator::new(params, calibration)?.dataset()
}

/// Streams the simulation to `dir` with default [`WriteOptions`].
pub fn simulate_to_dir(
    params: &SimulatorParams,
    calibration: &Calibration,
    dir: &Path,
) -> Result<WriteSummary> {
    Simulator::new(params, calibration)?.write_dir(dir, &WriteOptions::default())
}
