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

use std::fs::{self, File};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::Compression;
use flate2::write::GzEncoder;
use nalgebra_sparse::CsrMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Gamma, Poisson, StandardNormal};
use serde::{Deserialize, Serialize};

use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};
use crate::preprocess::library_sizes;

// ---------------------------------------------------------------------------------------
// Parameters
// ---------------------------------------------------------------------------------------

/// How ATAC counts are drawn from a peak's rate `lambda = D_atac * a`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AtacModel {
    /// Open (1) with probability `1 - exp(-lambda)`, else 0: binarized ATAC.
    #[default]
    Bernoulli,
    /// `Poisson(lambda)` counts.
    Poisson,
}

/// What to simulate. Unknown keys are an error; every key has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimulatorParams {
    pub n_cells: usize,
    pub n_genes: usize,
    pub n_peaks: usize,
    pub n_types: usize,
    pub n_batches: usize,
    pub seed: u64,
    /// Standard deviation of the per-batch, per-feature log factor (0 = no batch effect).
    pub batch_effect: f64,
    /// Log-normal sd of both depths; `None` keeps the fitted sds.
    pub depth_sd: Option<f64>,
    /// Multiplies the fitted log-fold-change sd of the cell-type effects (0 = no types).
    pub type_effect: f64,
    /// Fraction of peaks linked to their nearest gene.
    pub link_fraction: f64,
    /// A linked peak's type log fold change is this times its gene's.
    pub link_strength: f64,
    pub atac_model: AtacModel,
    /// Chromosomes the genes and peaks are laid out on (GRCh38 lengths where known,
    /// 100 Mb otherwise), in order.
    pub chromosomes: Vec<String>,
    /// Gene names are this prefix and a zero-padded number: `SIMG00001`.
    pub gene_prefix: String,
}

impl Default for SimulatorParams {
    fn default() -> Self {
        Self {
            n_cells: 1000,
            n_genes: 2000,
            n_peaks: 10_000,
            n_types: 10,
            n_batches: 2,
            seed: 0,
            batch_effect: 0.2,
            depth_sd: None,
            type_effect: 1.0,
            link_fraction: 0.3,
            link_strength: 1.0,
            atac_model: AtacModel::Bernoulli,
            chromosomes: default_chromosomes(),
            gene_prefix: "SIMG".into(),
        }
    }
}

/// chr1..chr22, chrX.
pub fn default_chromosomes() -> Vec<String> {
    (1..=22)
        .map(|i| format!("chr{i}"))
        .chain(std::iter::once("chrX".to_string()))
        .collect()
}

/// The GRCh38 length of a (unified) chromosome name; 100 Mb for any other name.
fn chromosome_length(name: &str) -> u64 {
    crate::transfer::GenomeBuild::Grch38
        .chrom_length(name)
        .unwrap_or(100_000_000)
}

/// Model tables above this size are refused (they are `n_types * n_batches * features`).
const MAX_MODEL_BYTES: u128 = 8 << 30;

impl SimulatorParams {
    /// Checks every parameter; errors name it.
    pub fn validate(&self) -> Result<()> {
        let bad = |name: &str, reason: String| {
            Err(DataError::invalid(
                format!("simulator parameter `{name}`"),
                reason,
            ))
        };
        for (name, value) in [
            ("n_cells", self.n_cells),
            ("n_genes", self.n_genes),
            ("n_peaks", self.n_peaks),
            ("n_types", self.n_types),
            ("n_batches", self.n_batches),
        ] {
            if value == 0 {
                return bad(name, "must be at least 1, got 0".into());
            }
        }
        for (name, value) in [("n_genes", self.n_genes), ("n_peaks", self.n_peaks)] {
            if value > u32::MAX as usize {
                return bad(name, format!("{value} is more than {}", u32::MAX));
            }
        }
        if self.n_types > self.n_cells {
            return bad(
                "n_types",
                format!("{} types for {} cells", self.n_types, self.n_cells),
            );
        }
        if self.n_batches > self.n_cells {
            return bad(
                "n_batches",
                format!("{} batches for {} cells", self.n_batches, self.n_cells),
            );
        }
        let non_negative = |name: &str, v: f64| {
            if v.is_finite() && v >= 0.0 {
                Ok(())
            } else {
                bad(name, format!("must be a finite number >= 0, got {v}"))
            }
        };
        non_negative("batch_effect", self.batch_effect)?;
        non_negative("type_effect", self.type_effect)?;
        non_negative("link_strength", self.link_strength)?;
        if let Some(sd) = self.depth_sd {
            non_negative("depth_sd", sd)?;
        }
        if !(0.0..=1.0).contains(&self.link_fraction) {
            return bad(
                "link_fraction",
                format!("must be in [0, 1], got {}", self.link_fraction),
            );
        }
        if self.chromosomes.is_empty() {
            return bad("chromosomes", "no chromosomes".into());
        }
        for (i, c) in self.chromosomes.iter().enumerate() {
            let ok = !c.is_empty()
                && c.chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == '.')
                && unify_chrom(c) == *c;
            if !ok {
                return bad(
                    "chromosomes",
                    format!("`{c}` is not a UCSC-style chromosome name (chr1, chrX, ...)"),
                );
            }
            if self.chromosomes[..i].contains(c) {
                return bad("chromosomes", format!("`{c}` is listed twice"));
            }
        }
        let genome: u64 = self.chromosomes.iter().map(|c| chromosome_length(c)).sum();
        if self.n_peaks as u64 > genome / 4 {
            return bad(
                "n_peaks",
                format!(
                    "{} peaks do not fit on {genome} bp of chromosomes",
                    self.n_peaks
                ),
            );
        }
        if self.gene_prefix.is_empty()
            || !self
                .gene_prefix
                .chars()
                .all(|ch| ch.is_ascii_graphic() && ch != '\t')
        {
            return bad(
                "gene_prefix",
                format!(
                    "`{}` must be non-empty printable text without spaces",
                    self.gene_prefix
                ),
            );
        }
        let bytes = (self.n_types as u128)
            * (self.n_batches as u128)
            * (self.n_genes as u128 + self.n_peaks as u128)
            * 8;
        if bytes > MAX_MODEL_BYTES {
            return bad(
                "n_types",
                format!(
                    "{} types x {} batches x {} features needs {} GiB of rate tables (limit 8)",
                    self.n_types,
                    self.n_batches,
                    self.n_genes + self.n_peaks,
                    bytes >> 30
                ),
            );
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Calibration
// ---------------------------------------------------------------------------------------

/// A log-normal fit: mean and sd of the natural log.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogNormalFit {
    pub log_mean: f64,
    pub log_sd: f64,
}

/// Spike-and-slab cell-type effects: a `fraction` of (type, feature) pairs has a log fold
/// change `~ N(0, log_fold_sd)`, the rest none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypeEffect {
    pub fraction: f64,
    pub log_fold_sd: f64,
}

impl TypeEffect {
    /// Used when the real data has no (or too few) annotated types to fit from.
    pub const FALLBACK: TypeEffect = TypeEffect {
        fraction: 0.1,
        log_fold_sd: 1.0,
    };
}

/// Parameters fitted to a real dataset. Serializable, so it can be saved as JSON and
/// reused; [`Calibration::validate`] checks a loaded one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Calibration {
    /// Name of the dataset it was fitted on.
    pub source: String,
    pub n_cells: usize,
    /// Total RNA counts per cell (cells with none left out).
    pub rna_library: LogNormalFit,
    /// Total ATAC counts per cell (cells with none left out).
    pub atac_library: LogNormalFit,
    /// Correlation of the two log library sizes across cells.
    pub library_correlation: f64,
    /// Per gene: its share of the library, `sum_i x_ig / sum_i lib_i` (sums to 1).
    pub gene_relative_mean: Vec<f64>,
    /// Per gene: NB dispersion theta (variance `mu + mu^2 / theta`), method of moments on
    /// the residuals around `lib_i * (per-type relative mean)`, clamped to [0.05, 1000].
    pub gene_dispersion: Vec<f64>,
    /// Per gene: fraction of cells with a non-zero count (reference, not used to simulate).
    pub gene_nonzero_fraction: Vec<f64>,
    /// Per peak: rate `a` per ATAC count of depth, fitted so that the mean over the real
    /// cells of `1 - exp(-lib_i * a)` is the peak's open fraction.
    pub peak_rate: Vec<f64>,
    /// Per peak: fraction of cells in which it is open.
    pub peak_open_fraction: Vec<f64>,
    /// Per (type, gene) log ratios of observed to expected counts (types with >= 20
    /// cells, pairs with >= 10 expected counts), moment-fitted as spike and slab after
    /// removing sampling noise; the sd is then shrunk until the sparsity the type
    /// heterogeneity costs matches the data's. [`TypeEffect::FALLBACK`] without types.
    pub rna_type_effect: TypeEffect,
    /// The same for peaks' open counts.
    pub atac_type_effect: TypeEffect,
    /// Cell-type frequencies, largest first (empty without a type column).
    pub type_proportions: Vec<f64>,
}

/// Types with fewer cells share one group when the dispersion is fitted.
const MIN_GROUP_CELLS: usize = 10;
/// Types with fewer cells do not inform the type-effect fit.
const MIN_EFFECT_CELLS: usize = 20;
/// A (type, feature) pair informs the type-effect fit with this many expected counts.
const MIN_EFFECT_COUNTS: f64 = 10.0;
const THETA_RANGE: (f64, f64) = (0.05, 1000.0);
const DEPTH_BINS: usize = 128;

impl Calibration {
    /// Fits the simulator's parameters to a real dataset; `type_column` names the cell
    /// column holding cell types (for type effects, type proportions and a dispersion fit
    /// that does not mistake type differences for noise).
    pub fn fit(data: &PairedDataset, type_column: Option<&str>) -> Result<Self> {
        let n = data.n_cells();
        let rna_lib = library_sizes(&data.rna);
        let atac_lib = library_sizes(&data.atac);
        let (types, n_types) = match type_column {
            Some(column) => {
                let (codes, names) = data.cells.codes(column)?;
                (codes, names.len())
            }
            None => (vec![0; n], 1),
        };
        let empty = |what: &str| DataError::Empty {
            what: format!("calibration on `{}`: {what}", data.name),
            reason: "no cell has any counts".into(),
        };
        let rna_library = log_normal_fit(rna_lib.iter().filter(|l| **l > 0.0).map(|l| l.ln()))
            .ok_or_else(|| empty("RNA"))?;
        let atac_library = log_normal_fit(atac_lib.iter().filter(|l| **l > 0.0).map(|l| l.ln()))
            .ok_or_else(|| empty("ATAC"))?;
        let (lr, la): (Vec<f64>, Vec<f64>) = rna_lib
            .iter()
            .zip(&atac_lib)
            .filter(|(r, a)| **r > 0.0 && **a > 0.0)
            .map(|(r, a)| (r.ln(), a.ln()))
            .unzip();
        let library_correlation = pearson(&lr, &la).unwrap_or(0.0).clamp(-0.99, 0.99);

        let mut type_proportions = Vec::new();
        if type_column.is_some() {
            let mut counts = vec![0usize; n_types];
            for &t in &types {
                counts[t] += 1;
            }
            type_proportions = counts.iter().map(|&c| c as f64 / n as f64).collect();
            type_proportions.sort_by(|a, b| b.total_cmp(a));
        }

        let genes = fit_genes(&data.rna, &rna_lib, &types, n_types);
        let peaks = fit_peaks(&data.atac, &atac_lib, &types, n_types);
        let calibration = Self {
            source: data.name.clone(),
            n_cells: n,
            rna_library,
            atac_library,
            library_correlation,
            gene_relative_mean: genes.relative_mean,
            gene_dispersion: genes.dispersion,
            gene_nonzero_fraction: genes.nonzero_fraction,
            peak_rate: peaks.rate,
            peak_open_fraction: peaks.open_fraction,
            rna_type_effect: if type_column.is_some() {
                genes.effect.unwrap_or(TypeEffect::FALLBACK)
            } else {
                TypeEffect::FALLBACK
            },
            atac_type_effect: if type_column.is_some() {
                peaks.effect.unwrap_or(TypeEffect::FALLBACK)
            } else {
                TypeEffect::FALLBACK
            },
            type_proportions,
        };
        calibration.validate()?;
        Ok(calibration)
    }

    /// Fitted on the bundled 500-cell bone-marrow sample, with its `cell_type` column.
    pub fn bundled() -> Result<Self> {
        Self::fit(&crate::sample::bmmc_multiome_starter()?, Some("cell_type"))
    }

    /// Checks lengths, ranges and finiteness (for a calibration loaded from a file).
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &str, reason: String| {
            Err(DataError::invalid(format!("calibration `{field}`"), reason))
        };
        let finite = |field: &str, v: &[f64], min: f64, max: f64| match v
            .iter()
            .position(|x| !(x.is_finite() && *x >= min && *x <= max))
        {
            Some(i) => bad(
                field,
                format!("entry {i} is {}, not in [{min}, {max}]", v[i]),
            ),
            None => Ok(()),
        };
        let n_genes = self.gene_relative_mean.len();
        let n_peaks = self.peak_rate.len();
        if n_genes == 0 {
            return bad("gene_relative_mean", "no genes".into());
        }
        if n_peaks == 0 {
            return bad("peak_rate", "no peaks".into());
        }
        for (field, len, want) in [
            ("gene_dispersion", self.gene_dispersion.len(), n_genes),
            (
                "gene_nonzero_fraction",
                self.gene_nonzero_fraction.len(),
                n_genes,
            ),
            ("peak_open_fraction", self.peak_open_fraction.len(), n_peaks),
        ] {
            if len != want {
                return bad(field, format!("{len} entries, expected {want}"));
            }
        }
        finite("gene_relative_mean", &self.gene_relative_mean, 0.0, 1.0)?;
        finite("gene_dispersion", &self.gene_dispersion, 1e-3, 1e6)?;
        finite(
            "gene_nonzero_fraction",
            &self.gene_nonzero_fraction,
            0.0,
            1.0,
        )?;
        finite("peak_rate", &self.peak_rate, 0.0, f64::MAX)?;
        finite("peak_open_fraction", &self.peak_open_fraction, 0.0, 1.0)?;
        finite("type_proportions", &self.type_proportions, 0.0, 1.0)?;
        if self.gene_relative_mean.iter().sum::<f64>() <= 0.0 {
            return bad("gene_relative_mean", "every gene is zero".into());
        }
        if self.peak_rate.iter().sum::<f64>() <= 0.0 {
            return bad("peak_rate", "every peak is zero".into());
        }
        for (field, fit) in [
            ("rna_library", self.rna_library),
            ("atac_library", self.atac_library),
        ] {
            if !(fit.log_mean.is_finite() && fit.log_sd.is_finite() && fit.log_sd >= 0.0) {
                return bad(field, format!("{fit:?} is not a log-normal fit"));
            }
        }
        finite(
            "library_correlation",
            &[self.library_correlation],
            -1.0,
            1.0,
        )?;
        for (field, e) in [
            ("rna_type_effect", self.rna_type_effect),
            ("atac_type_effect", self.atac_type_effect),
        ] {
            finite(field, &[e.fraction], 0.0, 1.0)?;
            finite(field, &[e.log_fold_sd], 0.0, 20.0)?;
        }
        Ok(())
    }
}

fn log_normal_fit(values: impl Iterator<Item = f64>) -> Option<LogNormalFit> {
    let v: Vec<f64> = values.collect();
    if v.is_empty() {
        return None;
    }
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let sd = if v.len() > 1 {
        (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
    } else {
        0.0
    };
    Some(LogNormalFit {
        log_mean: mean,
        log_sd: sd,
    })
}

fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    if a.len() < 3 {
        return None;
    }
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in a.iter().zip(b) {
        sab += (x - ma) * (y - mb);
        saa += (x - ma).powi(2);
        sbb += (y - mb).powi(2);
    }
    (saa > 0.0 && sbb > 0.0).then(|| sab / (saa * sbb).sqrt())
}

/// Moment fit of a spike-and-slab `s` from noisy observations `x = s + e`, `e ~ N(0, v)`:
/// `E s^2 = f sd^2`, `E s^4 = 3 f sd^4`, with the noise moments subtracted.
fn fit_type_effect(obs: &[(f64, f64)]) -> Option<TypeEffect> {
    if obs.len() < 20 {
        return None;
    }
    let n = obs.len() as f64;
    let m2x = obs.iter().map(|(x, _)| x * x).sum::<f64>() / n;
    let m4x = obs.iter().map(|(x, _)| x.powi(4)).sum::<f64>() / n;
    let v1 = obs.iter().map(|(_, v)| v).sum::<f64>() / n;
    let v2 = obs.iter().map(|(_, v)| v * v).sum::<f64>() / n;
    let m2 = m2x - v1;
    if m2 <= 1e-4 {
        return Some(TypeEffect {
            fraction: 0.01,
            log_fold_sd: 0.1,
        });
    }
    let m4 = m4x - 6.0 * m2 * v1 - 3.0 * v2;
    let sd2 = (m4 / (3.0 * m2)).max(m2);
    let fraction = (m2 / sd2).clamp(0.01, 1.0);
    Some(TypeEffect {
        fraction,
        log_fold_sd: (m2 / fraction).sqrt().clamp(0.1, 3.0),
    })
}

struct GeneFit {
    relative_mean: Vec<f64>,
    dispersion: Vec<f64>,
    nonzero_fraction: Vec<f64>,
    effect: Option<TypeEffect>,
}

/// Per-gene relative means, NB dispersions and the type-effect fit, in O(nnz + types x genes).
fn fit_genes(m: &CsrMatrix<f32>, lib: &[f64], types: &[usize], n_types: usize) -> GeneFit {
    let g = m.ncols();
    let mut cells = vec![0usize; n_types];
    let mut lib_sum = vec![0.0f64; n_types];
    let mut lib2_sum = vec![0.0f64; n_types];
    let mut x_sum = vec![0.0f64; n_types * g];
    let mut xl_sum = vec![0.0f64; n_types * g];
    let mut x2_sum = vec![0.0f64; g];
    let mut nonzero = vec![0usize; g];
    let mut n_pos = 0usize;
    for (i, row) in m.row_iter().enumerate() {
        if lib[i] <= 0.0 {
            continue;
        }
        n_pos += 1;
        let t = types[i];
        cells[t] += 1;
        lib_sum[t] += lib[i];
        lib2_sum[t] += lib[i] * lib[i];
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            let v = f64::from(v);
            if v != 0.0 {
                nonzero[c] += 1;
            }
            x_sum[t * g + c] += v;
            xl_sum[t * g + c] += v * lib[i];
            x2_sum[c] += v * v;
        }
    }
    let total_lib: f64 = lib_sum.iter().sum();
    let relative_mean: Vec<f64> = (0..g)
        .map(|c| (0..n_types).map(|t| x_sum[t * g + c]).sum::<f64>() / total_lib)
        .collect();

    // Dispersion groups: each type with enough cells, the others pooled.
    let big: Vec<bool> = cells.iter().map(|&c| c >= MIN_GROUP_CELLS).collect();
    let mut dispersion = vec![THETA_RANGE.1; g];
    for (c, theta) in dispersion.iter_mut().enumerate() {
        let (mut sum_mu2, mut sum_xmu, mut sum_mu) = (0.0, 0.0, 0.0);
        let mut pooled = (0.0, 0.0, 0.0, 0.0); // x, x*lib, lib, lib^2
        for t in 0..n_types {
            let (x, xl) = (x_sum[t * g + c], xl_sum[t * g + c]);
            if big[t] {
                let r = x / lib_sum[t];
                sum_mu += x;
                sum_xmu += r * xl;
                sum_mu2 += r * r * lib2_sum[t];
            } else {
                pooled.0 += x;
                pooled.1 += xl;
                pooled.2 += lib_sum[t];
                pooled.3 += lib2_sum[t];
            }
        }
        if pooled.2 > 0.0 {
            let r = pooled.0 / pooled.2;
            sum_mu += pooled.0;
            sum_xmu += r * pooled.1;
            sum_mu2 += r * r * pooled.3;
        }
        // sum_i (x - mu)^2 - mu = (1/theta) sum_i mu^2
        let excess = x2_sum[c] - 2.0 * sum_xmu + sum_mu2 - sum_mu;
        if sum_mu2 > 0.0 && excess > 0.0 {
            *theta = (sum_mu2 / excess).clamp(THETA_RANGE.0, THETA_RANGE.1);
        }
    }

    // Type effects: per (type, gene) log ratio of observed to expected counts.
    let mut obs = Vec::new();
    let effect_types: Vec<usize> = (0..n_types)
        .filter(|&t| cells[t] >= MIN_EFFECT_CELLS)
        .collect();
    if effect_types.len() >= 2 {
        for &t in &effect_types {
            for c in 0..g {
                let expected = relative_mean[c] * lib_sum[t];
                if expected >= MIN_EFFECT_COUNTS {
                    let observed = x_sum[t * g + c];
                    let x = ((observed + 0.5) / (expected + 0.5)).ln();
                    // delta method: var(ln sum) = var(sum) / mean^2, with the NB variance
                    // of a sum over cells of different depths
                    let depth_spread = lib2_sum[t] / (lib_sum[t] * lib_sum[t]);
                    let var = 1.0 / (observed + 0.5) + depth_spread / dispersion[c];
                    obs.push((x, var));
                }
            }
        }
    }
    let nonzero_fraction: Vec<f64> = nonzero
        .iter()
        .map(|&z| z as f64 / n_pos.max(1) as f64)
        .collect();
    let proportions: Vec<f64> = cells.iter().map(|&c| c as f64 / n_pos as f64).collect();
    let effect = fit_type_effect(&obs).map(|e| {
        let bins = DepthBins::new(lib, types, n_types, 16);
        match_sparsity_loss(
            e,
            &relative_mean,
            &dispersion,
            &nonzero_fraction,
            &bins,
            &proportions,
        )
    });
    GeneFit {
        relative_mean,
        dispersion,
        nonzero_fraction,
        effect,
    }
}

/// Type heterogeneity lowers a gene's non-zero fraction below that of a homogeneous
/// population with the same mean (`P(X > 0)` is concave in the mean). The moment fit
/// is dominated by well-expressed genes and overstates the heterogeneity of the rest
/// (on the bundled sample it would make the simulation 10% too sparse), so its sd is
/// shrunk until the loss it causes over all genes matches the loss seen in the data.
fn match_sparsity_loss(
    effect: TypeEffect,
    relative_mean: &[f64],
    dispersion: &[f64],
    nonzero_fraction: &[f64],
    bins: &DepthBins,
    proportions: &[f64],
) -> TypeEffect {
    let n: f64 = bins.total.iter().sum();
    let weights: Vec<f64> = bins.total.iter().map(|w| w / n).collect();
    let genes: Vec<usize> = (0..relative_mean.len())
        .step_by(relative_mean.len().div_ceil(1000))
        .filter(|&g| relative_mean[g] > 0.0)
        .collect();
    if genes.is_empty() {
        return effect;
    }
    let homogeneous = |g: usize, scale: f64| -> f64 {
        let law = Count::Nb(dispersion[g]);
        weights
            .iter()
            .zip(&bins.mean)
            .map(|(w, l)| w * law.p_nonzero(l * relative_mean[g] * scale))
            .sum()
    };
    let real_loss: f64 = genes
        .iter()
        .map(|&g| homogeneous(g, 1.0) - nonzero_fraction[g])
        .sum::<f64>()
        / genes.len() as f64;
    // common random numbers: the same slab draws for every candidate sd
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let draws: Vec<Vec<f64>> = genes
        .iter()
        .map(|_| {
            proportions
                .iter()
                .map(|_| {
                    let slab = rng.r#gen::<f64>() < effect.fraction;
                    let z: f64 = rng.sample(StandardNormal);
                    if slab { z } else { 0.0 }
                })
                .collect()
        })
        .collect();
    let model_loss = |sd: f64| -> f64 {
        genes
            .iter()
            .zip(&draws)
            .map(|(&g, z)| {
                let mean: f64 = z
                    .iter()
                    .zip(proportions)
                    .map(|(z, p)| p * (sd * z).exp())
                    .sum();
                let mixed: f64 = z
                    .iter()
                    .zip(proportions)
                    .filter(|(_, p)| **p > 0.0)
                    .map(|(z, p)| p * homogeneous(g, (sd * z).exp() / mean))
                    .sum();
                homogeneous(g, 1.0) - mixed
            })
            .sum::<f64>()
            / genes.len() as f64
    };
    if model_loss(effect.log_fold_sd) <= real_loss {
        return effect;
    }
    let (mut lo, mut hi) = (0.0, effect.log_fold_sd);
    for _ in 0..20 {
        let mid = 0.5 * (lo + hi);
        if model_loss(mid) < real_loss {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    TypeEffect {
        fraction: effect.fraction,
        log_fold_sd: (0.5 * (lo + hi)).max(0.1),
    }
}

struct PeakFit {
    rate: Vec<f64>,
    open_fraction: Vec<f64>,
    effect: Option<TypeEffect>,
}

/// Depths binned on the log scale: `(count per type, mean depth)` per bin, so that the
/// expected open fraction `sum_i 1 - exp(-lib_i a)` costs O(bins), not O(cells).
struct DepthBins {
    mean: Vec<f64>,
    count: Vec<Vec<f64>>, // [type][bin]
    total: Vec<f64>,      // [bin]
}

impl DepthBins {
    fn new(lib: &[f64], types: &[usize], n_types: usize, n_bins: usize) -> Self {
        let logs: Vec<f64> = lib.iter().filter(|l| **l > 0.0).map(|l| l.ln()).collect();
        let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = ((hi - lo) / n_bins as f64).max(1e-12);
        let mut sum = vec![0.0; n_bins];
        let mut count = vec![vec![0.0; n_bins]; n_types];
        let mut total = vec![0.0; n_bins];
        for (i, &l) in lib.iter().enumerate() {
            if l <= 0.0 {
                continue;
            }
            let b = (((l.ln() - lo) / width) as usize).min(n_bins - 1);
            sum[b] += l;
            total[b] += 1.0;
            count[types[i]][b] += 1.0;
        }
        let mean = sum
            .iter()
            .zip(&total)
            .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
            .collect();
        Self { mean, count, total }
    }

    fn expected_open(&self, weights: &[f64], a: f64) -> f64 {
        weights
            .iter()
            .zip(&self.mean)
            .filter(|(w, _)| **w > 0.0)
            .map(|(w, l)| w * -(-l * a).exp_m1())
            .sum()
    }
}

fn fit_peaks(m: &CsrMatrix<f32>, lib: &[f64], types: &[usize], n_types: usize) -> PeakFit {
    let p = m.ncols();
    let mut open = vec![0.0f64; n_types * p];
    let mut cells = vec![0usize; n_types];
    for (i, row) in m.row_iter().enumerate() {
        if lib[i] <= 0.0 {
            continue;
        }
        cells[types[i]] += 1;
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            if v != 0.0 {
                open[types[i] * p + c] += 1.0;
            }
        }
    }
    let n_pos: usize = cells.iter().sum();
    let bins = DepthBins::new(lib, types, n_types, DEPTH_BINS);
    let total_depth: f64 = lib.iter().filter(|l| **l > 0.0).sum();
    let mut rate = vec![0.0; p];
    let mut open_fraction = vec![0.0; p];
    for c in 0..p {
        let k: f64 = (0..n_types).map(|t| open[t * p + c]).sum();
        open_fraction[c] = k / n_pos as f64;
        if k == 0.0 {
            continue;
        }
        // expected_open is increasing and concave in a; a = k / sum(lib) is a lower bound
        let target = k.min(n_pos as f64 - 0.5);
        let mut lo = target / total_depth;
        let mut hi = lo * 2.0;
        while bins.expected_open(&bins.total, hi) < target && hi < 1e12 {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if bins.expected_open(&bins.total, mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        rate[c] = 0.5 * (lo + hi);
    }

    let mut obs = Vec::new();
    let effect_types: Vec<usize> = (0..n_types)
        .filter(|&t| cells[t] >= MIN_EFFECT_CELLS)
        .collect();
    if effect_types.len() >= 2 {
        for &t in &effect_types {
            for c in 0..p {
                let expected = bins.expected_open(&bins.count[t], rate[c]);
                let closed = cells[t] as f64 - expected;
                if expected >= MIN_EFFECT_COUNTS && closed >= MIN_EFFECT_COUNTS {
                    let x = ((open[t * p + c] + 0.5) / (expected + 0.5)).ln();
                    let var = (closed / cells[t] as f64) / expected;
                    obs.push((x, var));
                }
            }
        }
    }
    PeakFit {
        rate,
        open_fraction,
        effect: fit_type_effect(&obs),
    }
}

// ---------------------------------------------------------------------------------------
// Count distributions and sparse row sampling
// ---------------------------------------------------------------------------------------

/// Negative binomial with mean `mu` and dispersion `theta`: variance `mu + mu^2 / theta`
/// (a Gamma-Poisson mixture). Sampled exactly as the simulator samples RNA counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NegativeBinomial {
    mu: f64,
    theta: f64,
}

impl NegativeBinomial {
    pub fn new(mu: f64, theta: f64) -> Result<Self> {
        if !(mu.is_finite() && mu >= 0.0) {
            return Err(DataError::invalid(
                "negative binomial mean",
                format!("{mu} is not a finite number >= 0"),
            ));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(DataError::invalid(
                "negative binomial dispersion",
                format!("{theta} is not a finite number > 0"),
            ));
        }
        Ok(Self { mu, theta })
    }

    pub fn mean(&self) -> f64 {
        self.mu
    }

    pub fn variance(&self) -> f64 {
        self.mu + self.mu * self.mu / self.theta
    }

    /// `P(X = 0) = (theta / (theta + mu))^theta`.
    pub fn p_zero(&self) -> f64 {
        1.0 - Count::Nb(self.theta).p_nonzero(self.mu)
    }
}

impl Distribution<u64> for NegativeBinomial {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let count = Count::Nb(self.theta);
        let pnz = count.p_nonzero(self.mu);
        if rng.r#gen::<f64>() < pnz {
            count.sample_positive(self.mu, pnz, rng)
        } else {
            0
        }
    }
}

/// The count law of one feature given its mean.
#[derive(Debug, Clone, Copy)]
enum Count {
    Nb(f64),
    Poisson,
    Bernoulli,
}

impl Count {
    /// `P(X > 0)` for mean (or rate) `mu`.
    fn p_nonzero(self, mu: f64) -> f64 {
        match self {
            Count::Nb(theta) => -(-theta * (mu / theta).ln_1p()).exp_m1(),
            Count::Poisson | Count::Bernoulli => -(-mu).exp_m1(),
        }
    }

    /// A draw conditioned on being positive; `pnz` is `p_nonzero(mu)`.
    fn sample_positive<R: Rng + ?Sized>(self, mu: f64, pnz: f64, rng: &mut R) -> u64 {
        match self {
            Count::Bernoulli => 1,
            Count::Poisson => {
                if mu < 1.0 {
                    // inverse CDF over k >= 1: P(k) = e^-mu mu^k / k!
                    let p1 = (-mu).exp() * mu;
                    invert_positive(rng.r#gen::<f64>() * pnz, p1, |k| mu / (k + 1.0))
                } else {
                    loop {
                        let x = poisson(rng, mu);
                        if x > 0 {
                            return x;
                        }
                    }
                }
            }
            Count::Nb(theta) => {
                if mu <= 10.0 && pnz < 0.5 {
                    // inverse CDF over k >= 1: P(k+1) = P(k) (k + theta) / (k + 1) * r
                    let r = mu / (mu + theta);
                    let p0 = 1.0 - pnz;
                    let p1 = p0 * theta * r;
                    invert_positive(rng.r#gen::<f64>() * pnz, p1, |k| {
                        (k + theta) / (k + 1.0) * r
                    })
                } else {
                    let gamma = Gamma::new(theta, mu / theta).expect("theta and mu are > 0");
                    loop {
                        let lambda = gamma.sample(rng);
                        let x = poisson(rng, lambda);
                        if x > 0 {
                            return x;
                        }
                    }
                }
            }
        }
    }
}

/// Walks the pmf from k = 1 (`p1` = P(1), `ratio(k)` = P(k+1) / P(k)) until the mass
/// passed exceeds `target` (uniform on `[0, P(X > 0))`).
fn invert_positive(mut target: f64, p1: f64, ratio: impl Fn(f64) -> f64) -> u64 {
    let mut p = p1;
    let mut k = 1u64;
    while target >= p && p > 1e-300 && k < 1_000_000 {
        target -= p;
        p *= ratio(k as f64);
        k += 1;
    }
    k
}

fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 12.0 {
        let mut target = rng.r#gen::<f64>();
        let mut p = (-lambda).exp();
        let mut k = 0u64;
        while target >= p && k < 1000 {
            target -= p;
            k += 1;
            p *= lambda / k as f64;
        }
        k
    } else {
        Poisson::new(lambda)
            .expect("lambda > 0")
            .sample(rng)
            .min(u64::MAX as f64) as u64
    }
}

/// Per-feature rates of one (type, batch), sorted descending, with the feature order.
#[derive(Debug, Clone)]
struct RateTable {
    order: Vec<u32>,
    rate: Vec<f32>,
}

impl RateTable {
    fn new(rates: &[f64]) -> Self {
        let mut order: Vec<u32> = (0..rates.len() as u32).collect();
        order.sort_by(|&a, &b| {
            rates[b as usize]
                .total_cmp(&rates[a as usize])
                .then(a.cmp(&b))
        });
        let rate = order.iter().map(|&f| rates[f as usize] as f32).collect();
        Self { order, rate }
    }
}

/// A dense scratch row with a bitmap of the set features, emptied in feature order.
#[derive(Debug)]
struct RowBuf {
    values: Vec<u32>,
    bits: Vec<u64>,
}

impl RowBuf {
    fn new(n: usize) -> Self {
        Self {
            values: vec![0; n],
            bits: vec![0; n.div_ceil(64)],
        }
    }

    fn set(&mut self, feature: u32, value: u32) {
        let f = feature as usize;
        self.values[f] = value;
        self.bits[f / 64] |= 1 << (f % 64);
    }

    /// Moves the set entries into `out` (sorted by feature) and clears the row.
    fn drain_into(&mut self, out: &mut Vec<(u32, u32)>) {
        out.clear();
        for (w, word) in self.bits.iter_mut().enumerate() {
            let mut x = *word;
            *word = 0;
            while x != 0 {
                let f = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                out.push((f as u32, self.values[f]));
            }
        }
    }
}

/// One sparse row: feature `order[k]` has mean `depth * rate[k]` and law `count(feature)`.
/// Exact thinning: at sorted position k every later mean is `<= depth * rate[k]`, so
/// `q = min(1, depth * rate[k])` bounds `P(X > 0)` for all of them (Markov); the next
/// candidate is a geometric number of positions away, and is non-zero with
/// probability `P(X > 0) / q`. The bound is refreshed after every candidate.
fn sample_row<R: Rng + ?Sized>(
    rng: &mut R,
    depth: f64,
    table: &RateTable,
    count: impl Fn(u32) -> Count,
    row: &mut RowBuf,
) {
    let n = table.rate.len();
    let mut pos = 0usize;
    while pos < n {
        let bound = depth * f64::from(table.rate[pos]);
        if bound.is_nan() || bound <= 0.0 {
            break; // every later rate is zero
        }
        let q = bound.min(1.0);
        let candidate = if q >= 1.0 {
            pos
        } else {
            let u: f64 = rng.r#gen();
            let skip = ((1.0 - u).ln() / (-q).ln_1p()).floor();
            if skip >= (n - pos) as f64 {
                break;
            }
            pos + skip as usize
        };
        let feature = table.order[candidate];
        let mu = depth * f64::from(table.rate[candidate]);
        let law = count(feature);
        let pnz = law.p_nonzero(mu);
        if rng.r#gen::<f64>() * q < pnz {
            let value = law.sample_positive(mu, pnz, rng).min(u64::from(u32::MAX)) as u32;
            row.set(feature, value);
        }
        pos = candidate + 1;
    }
}

// ---------------------------------------------------------------------------------------
// The simulator
// ---------------------------------------------------------------------------------------

/// A peak linked to a gene: the peak's type effects follow the gene's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneLink {
    pub gene: usize,
    pub peak: usize,
    /// Distance from the gene's TSS to the peak's centre, bp.
    pub distance: u64,
}

/// One simulated cell's labels and depths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellDraw {
    pub cell_type: usize,
    pub batch: usize,
    /// Expected total RNA count (depth times the total relative expression).
    pub lib_rna: f64,
    /// Expected total ATAC count under the Poisson model (depth times the total rate).
    pub lib_atac: f64,
}

/// One cell: labels and depths, and its RNA and ATAC entries `(feature, count)` sorted
/// by feature.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCell {
    pub draw: CellDraw,
    pub rna: Vec<(u32, u32)>,
    pub atac: Vec<(u32, u32)>,
}

/// The simulation model, built once from parameters and a calibration; cells are then
/// drawn independently by index ([`Simulator::cell`]), in memory ([`Simulator::dataset`])
/// or streamed to a folder ([`Simulator::write_dir`]).
#[derive(Debug, Clone)]
pub struct Simulator {
    params: SimulatorParams,
    gene_names: Vec<String>,
    gene_chrom: Vec<u16>,
    gene_tss: Vec<u64>,
    peaks: Vec<Peak>,
    links: Vec<GeneLink>,
    type_names: Vec<String>,
    batch_names: Vec<String>,
    type_proportions: Vec<f64>,
    type_cdf: Vec<f64>,
    gene_lfc: Vec<Vec<f32>>,
    peak_lfc: Vec<Vec<f32>>,
    gene_theta: Vec<f32>,
    rna_tables: Vec<RateTable>,
    atac_tables: Vec<RateTable>,
    rna_depth: LogNormalFit,
    atac_depth: LogNormalFit,
    depth_correlation: f64,
    rna_total: f64,
    atac_total: f64,
    cell_rng: ChaCha8Rng,
}

/// Stream used for the model (layout, effects, links); cell `i` uses stream `i`.
const MODEL_STREAM: u64 = u64::MAX;

fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

/// Shifts each feature's log effects (`effects[group][feature]`) so that the
/// weighted mean of `exp(effect)` over the groups is 1.
fn center_log_effects(effects: &mut [Vec<f32>], weights: &[f64]) {
    let Some(n) = effects.first().map(Vec::len) else {
        return;
    };
    for f in 0..n {
        let mean: f64 = effects
            .iter()
            .zip(weights)
            .map(|(e, w)| w * f64::from(e[f]).exp())
            .sum();
        let shift = mean.ln() as f32;
        for e in effects.iter_mut() {
            e[f] -= shift;
        }
    }
}

/// Splits `n` items over weights by largest remainder.
fn allocate(n: usize, weights: &[u64]) -> Vec<usize> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let exact: Vec<u128> = weights.iter().map(|&w| n as u128 * u128::from(w)).collect();
    let mut out: Vec<usize> = exact.iter().map(|e| (e / total) as usize).collect();
    let mut rest: Vec<usize> = (0..weights.len()).collect();
    rest.sort_by_key(|&i| (std::cmp::Reverse(exact[i] % total), i));
    let missing = n - out.iter().sum::<usize>();
    for &i in rest.iter().take(missing) {
        out[i] += 1;
    }
    out
}

impl Simulator {
    pub fn new(params: &SimulatorParams, calibration: &Calibration) -> Result<Self> {
        params.validate()?;
        calibration.validate()?;
        let p = params;
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(MODEL_STREAM);
        let normal = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };

        // Layout: genes (TSS) and peaks spread over the chromosomes by length.
        let lengths: Vec<u64> = p.chromosomes.iter().map(|c| chromosome_length(c)).collect();
        let genes_per = allocate(p.n_genes, &lengths);
        let peaks_per = allocate(p.n_peaks, &lengths);
        let width = digits(p.n_genes).max(5);
        let mut gene_chrom = Vec::with_capacity(p.n_genes);
        let mut gene_tss = Vec::with_capacity(p.n_genes);
        let mut peaks = Vec::with_capacity(p.n_peaks);
        let mut peak_chrom = Vec::with_capacity(p.n_peaks);
        for (c, &len) in lengths.iter().enumerate() {
            let margin = if len > 1_000_000 { 10_000 } else { 0 };
            let usable = len - 2 * margin;
            if genes_per[c] > 0 {
                let slot = (usable / genes_per[c] as u64).max(1);
                for k in 0..genes_per[c] as u64 {
                    gene_chrom.push(c as u16);
                    gene_tss.push(margin + k * slot + rng.gen_range(0..slot));
                }
            }
            if peaks_per[c] > 0 {
                let slot = usable / peaks_per[c] as u64;
                for k in 0..peaks_per[c] as u64 {
                    let w = rng.gen_range(300..=1200).min(slot / 2).max(1);
                    let start = margin + k * slot + rng.gen_range(0..=slot - w);
                    peaks.push(Peak {
                        chrom: p.chromosomes[c].clone(),
                        start,
                        end: start + w,
                    });
                    peak_chrom.push(c as u16);
                }
            }
        }
        let gene_names = (0..p.n_genes)
            .map(|g| format!("{}{:0width$}", p.gene_prefix, g + 1))
            .collect();

        // Per-feature parameters: the fitted ones in order, or resampled.
        let n_fit_genes = calibration.gene_relative_mean.len();
        let gene_src: Vec<usize> = if p.n_genes == n_fit_genes {
            (0..p.n_genes).collect()
        } else {
            (0..p.n_genes)
                .map(|_| rng.gen_range(0..n_fit_genes))
                .collect()
        };
        let n_fit_peaks = calibration.peak_rate.len();
        let peak_src: Vec<usize> = if p.n_peaks == n_fit_peaks {
            (0..p.n_peaks).collect()
        } else {
            (0..p.n_peaks)
                .map(|_| rng.gen_range(0..n_fit_peaks))
                .collect()
        };
        let gene_base: Vec<f64> = gene_src
            .iter()
            .map(|&s| calibration.gene_relative_mean[s])
            .collect();
        let gene_theta: Vec<f32> = gene_src
            .iter()
            .map(|&s| calibration.gene_dispersion[s] as f32)
            .collect();
        let peak_base: Vec<f64> = peak_src.iter().map(|&s| calibration.peak_rate[s]).collect();
        let rna_total: f64 = gene_base.iter().sum();
        let atac_total: f64 = peak_base.iter().sum();
        if rna_total <= 0.0 || atac_total <= 0.0 {
            return Err(DataError::invalid(
                "simulator",
                "every resampled gene (or peak) has zero expression; use more features",
            ));
        }

        // Cell types: the calibration's (sorted) frequencies stretched to n_types.
        let props = &calibration.type_proportions;
        let mut type_proportions: Vec<f64> = if props.is_empty() {
            vec![1.0; p.n_types]
        } else {
            (0..p.n_types)
                .map(|t| props[t * props.len() / p.n_types].max(1e-6))
                .collect()
        };
        let sum: f64 = type_proportions.iter().sum();
        type_proportions.iter_mut().for_each(|w| *w /= sum);
        let mut type_cdf: Vec<f64> = type_proportions
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        *type_cdf.last_mut().expect("n_types >= 1") = 1.0;

        // Type effects (spike and slab), none with a single type.
        let spike_slab = |rng: &mut ChaCha8Rng, n: usize, e: TypeEffect| -> Vec<f32> {
            let sd = e.log_fold_sd * p.type_effect;
            (0..n)
                .map(|_| {
                    if rng.r#gen::<f64>() < e.fraction {
                        (sd * normal(rng)) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let multi = p.n_types > 1;
        let mut gene_lfc: Vec<Vec<f32>> = (0..p.n_types)
            .map(|_| {
                if multi {
                    spike_slab(&mut rng, p.n_genes, calibration.rna_type_effect)
                } else {
                    vec![0.0; p.n_genes]
                }
            })
            .collect();

        // Links: each peak, with probability link_fraction, to its nearest gene.
        let mut links = Vec::new();
        let mut g0 = 0usize;
        let mut j0 = 0usize;
        for c in 0..lengths.len() {
            let genes = g0..g0 + genes_per[c];
            for (j, peak) in peaks.iter().enumerate().skip(j0).take(peaks_per[c]) {
                let u: f64 = rng.r#gen();
                if genes.is_empty() || u >= p.link_fraction {
                    continue;
                }
                let centre = (peak.start + peak.end) / 2;
                let tss = &gene_tss[genes.clone()];
                let k = tss.partition_point(|&t| t < centre);
                let nearest = [k.checked_sub(1), (k < tss.len()).then_some(k)]
                    .into_iter()
                    .flatten()
                    .min_by_key(|&i| (tss[i].abs_diff(centre), i))
                    .expect("the chromosome has genes");
                links.push(GeneLink {
                    gene: g0 + nearest,
                    peak: j,
                    distance: tss[nearest].abs_diff(centre),
                });
            }
            g0 += genes_per[c];
            j0 += peaks_per[c];
        }
        let mut peak_lfc: Vec<Vec<f32>> = (0..p.n_types)
            .map(|_| {
                if multi {
                    spike_slab(&mut rng, p.n_peaks, calibration.atac_type_effect)
                } else {
                    vec![0.0; p.n_peaks]
                }
            })
            .collect();
        for link in &links {
            for t in 0..p.n_types {
                peak_lfc[t][link.peak] =
                    (p.link_strength * f64::from(gene_lfc[t][link.gene])) as f32;
            }
        }
        // Effects are relative to the population, whose per-feature means (and so its
        // sparsity) are what the calibration measured.
        center_log_effects(&mut gene_lfc, &type_proportions);
        center_log_effects(&mut peak_lfc, &type_proportions);

        // Batch effects.
        let batch_factor = |rng: &mut ChaCha8Rng, n: usize| -> Vec<f64> {
            if p.n_batches > 1 && p.batch_effect > 0.0 {
                (0..n).map(|_| p.batch_effect * normal(rng)).collect()
            } else {
                vec![0.0; n]
            }
        };
        let gene_beta: Vec<Vec<f64>> = (0..p.n_batches)
            .map(|_| batch_factor(&mut rng, p.n_genes))
            .collect();
        let peak_beta: Vec<Vec<f64>> = (0..p.n_batches)
            .map(|_| batch_factor(&mut rng, p.n_peaks))
            .collect();
        let batch_weights = vec![1.0 / p.n_batches as f64; p.n_batches];
        let to_f32 = |v: Vec<Vec<f64>>| -> Vec<Vec<f32>> {
            v.into_iter()
                .map(|r| r.into_iter().map(|x| x as f32).collect())
                .collect()
        };
        let mut gene_beta = to_f32(gene_beta);
        let mut peak_beta = to_f32(peak_beta);
        center_log_effects(&mut gene_beta, &batch_weights);
        center_log_effects(&mut peak_beta, &batch_weights);

        // Rate tables per (type, batch), normalized to the base total.
        let table = |base: &[f64], lfc: &[f32], beta: &[f32], total: f64| -> RateTable {
            let raw: Vec<f64> = base
                .iter()
                .zip(lfc)
                .zip(beta)
                .map(|((b, l), e)| b * (f64::from(*l) + f64::from(*e)).exp())
                .collect();
            let z: f64 = raw.iter().sum();
            let scaled: Vec<f64> = raw.iter().map(|r| r * total / z).collect();
            RateTable::new(&scaled)
        };
        let mut rna_tables = Vec::with_capacity(p.n_types * p.n_batches);
        let mut atac_tables = Vec::with_capacity(p.n_types * p.n_batches);
        for t in 0..p.n_types {
            for b in 0..p.n_batches {
                rna_tables.push(table(&gene_base, &gene_lfc[t], &gene_beta[b], rna_total));
                atac_tables.push(table(&peak_base, &peak_lfc[t], &peak_beta[b], atac_total));
            }
        }

        let mut rna_depth = calibration.rna_library;
        let mut atac_depth = calibration.atac_library;
        if let Some(sd) = p.depth_sd {
            rna_depth.log_sd = sd;
            atac_depth.log_sd = sd;
        }
        let mut cell_rng = ChaCha8Rng::seed_from_u64(p.seed);
        cell_rng.set_stream(0);
        let tw = digits(p.n_types).max(2);
        Ok(Self {
            params: p.clone(),
            gene_names,
            gene_chrom,
            gene_tss,
            peaks,
            links,
            type_names: (0..p.n_types)
                .map(|t| format!("type{:0tw$}", t + 1))
                .collect(),
            batch_names: (0..p.n_batches)
                .map(|b| format!("batch{}", b + 1))
                .collect(),
            type_proportions,
            type_cdf,
            gene_lfc,
            peak_lfc,
            gene_theta,
            rna_tables,
            atac_tables,
            rna_depth,
            atac_depth,
            depth_correlation: calibration.library_correlation,
            rna_total,
            atac_total,
            cell_rng,
        })
    }

    pub fn params(&self) -> &SimulatorParams {
        &self.params
    }

    pub fn genes(&self) -> &[String] {
        &self.gene_names
    }

    /// Chromosome and TSS of each gene.
    pub fn gene_position(&self, gene: usize) -> (&str, u64) {
        (
            &self.params.chromosomes[self.gene_chrom[gene] as usize],
            self.gene_tss[gene],
        )
    }

    pub fn peaks(&self) -> &[Peak] {
        &self.peaks
    }

    /// Gene-peak links, by peak.
    pub fn links(&self) -> &[GeneLink] {
        &self.links
    }

    pub fn type_names(&self) -> &[String] {
        &self.type_names
    }

    pub fn batch_names(&self) -> &[String] {
        &self.batch_names
    }

    pub fn type_proportions(&self) -> &[f64] {
        &self.type_proportions
    }

    /// The true log fold change of every gene in a cell type, relative to the population
    /// (centred so that the type-weighted mean of `exp(lfc)` is 1 for every gene).
    pub fn gene_log_fold_changes(&self, cell_type: usize) -> &[f32] {
        &self.gene_lfc[cell_type]
    }

    /// The true log fold change of every peak's rate in a cell type.
    pub fn peak_log_fold_changes(&self, cell_type: usize) -> &[f32] {
        &self.peak_lfc[cell_type]
    }

    /// Bytes held by the rate tables and effects (independent of the number of cells).
    pub fn model_bytes(&self) -> usize {
        let tables: usize = self
            .rna_tables
            .iter()
            .chain(&self.atac_tables)
            .map(|t| t.order.len() * 8)
            .sum();
        tables + (self.params.n_types + 1) * (self.params.n_genes + self.params.n_peaks) * 4
    }

    fn scratch(&self) -> Scratch {
        Scratch {
            rna: RowBuf::new(self.params.n_genes),
            atac: RowBuf::new(self.params.n_peaks),
        }
    }

    /// Cell `index` on its own (the same as in [`Simulator::dataset`]).
    pub fn cell(&self, index: usize) -> SimCell {
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let draw = self.draw_cell(index, &mut scratch, &mut rna, &mut atac);
        SimCell { draw, rna, atac }
    }

    fn draw_cell(
        &self,
        index: usize,
        scratch: &mut Scratch,
        rna: &mut Vec<(u32, u32)>,
        atac: &mut Vec<(u32, u32)>,
    ) -> CellDraw {
        let p = &self.params;
        let mut rng = self.cell_rng.clone();
        rng.set_stream(index as u64);
        let u: f64 = rng.r#gen();
        let cell_type = self
            .type_cdf
            .partition_point(|&c| c <= u)
            .min(p.n_types - 1);
        let batch = rng.gen_range(0..p.n_batches);
        let z1: f64 = rng.sample(StandardNormal);
        let z2: f64 = rng.sample(StandardNormal);
        let rho = self.depth_correlation;
        let za = rho * z1 + (1.0 - rho * rho).sqrt() * z2;
        let d_rna = (self.rna_depth.log_mean + self.rna_depth.log_sd * z1).exp();
        let d_atac = (self.atac_depth.log_mean + self.atac_depth.log_sd * za).exp();
        let k = cell_type * p.n_batches + batch;
        let theta = &self.gene_theta;
        sample_row(
            &mut rng,
            d_rna,
            &self.rna_tables[k],
            |g| Count::Nb(f64::from(theta[g as usize])),
            &mut scratch.rna,
        );
        scratch.rna.drain_into(rna);
        let law = match p.atac_model {
            AtacModel::Bernoulli => Count::Bernoulli,
            AtacModel::Poisson => Count::Poisson,
        };
        sample_row(
            &mut rng,
            d_atac,
            &self.atac_tables[k],
            |_| law,
            &mut scratch.atac,
        );
        scratch.atac.drain_into(atac);
        CellDraw {
            cell_type,
            batch,
            lib_rna: d_rna * self.rna_total,
            lib_atac: d_atac * self.atac_total,
        }
    }

    fn barcode(&self, index: usize) -> String {
        format!("simcell{:0w$}", index + 1, w = digits(self.params.n_cells))
    }

    fn cell_line(&self, index: usize, draw: &CellDraw, out: &mut Vec<u8>) {
        // writing to a Vec cannot fail
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{:.3}\t{:.3}",
            self.barcode(index),
            self.type_names[draw.cell_type],
            self.batch_names[draw.batch],
            draw.lib_rna,
            draw.lib_atac
        );
    }

    /// The whole simulation in memory (for small sizes): exactly the counts that
    /// [`Simulator::write_dir`] writes.
    pub fn dataset(&self) -> Result<PairedDataset> {
        let p = &self.params;
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let mut rna_csr = CsrParts::default();
        let mut atac_csr = CsrParts::default();
        let mut columns: [Vec<String>; 4] = Default::default();
        for i in 0..p.n_cells {
            let draw = self.draw_cell(i, &mut scratch, &mut rna, &mut atac);
            rna_csr.push_row(&rna);
            atac_csr.push_row(&atac);
            columns[0].push(self.type_names[draw.cell_type].clone());
            columns[1].push(self.batch_names[draw.batch].clone());
            columns[2].push(format!("{:.3}", draw.lib_rna));
            columns[3].push(format!("{:.3}", draw.lib_atac));
        }
        let mut cells = CellTable::new((0..p.n_cells).map(|i| self.barcode(i)).collect());
        for (name, values) in CELL_COLUMNS.iter().zip(columns) {
            cells = cells.with_inferred_column(name, values)?;
        }
        PairedDataset::new(
            "simulated",
            rna_csr.finish(p.n_cells, p.n_genes),
            atac_csr.finish(p.n_cells, p.n_peaks),
            cells,
            self.gene_names.clone(),
            self.peaks.clone(),
        )
    }

    /// Streams the simulation to `dir` in the plain layout: `rna_counts.mtx.gz`,
    /// `atac_counts.mtx.gz`, `genes.tsv` (name, chromosome, TSS), `peaks.tsv`,
    /// `cells.tsv` (barcode, cell_type, batch, lib_rna, lib_atac) and `links.tsv`
    /// (gene, peak, distance). Files are written under temporary names and renamed into
    /// place only when all are complete; on error none of them is left behind.
    pub fn write_dir(&self, dir: &Path, options: &WriteOptions) -> Result<WriteSummary> {
        self.write_dir_with_progress(dir, options, &mut |_, _| {})
    }

    /// [`Simulator::write_dir`], calling `progress(cells done, cells)` after every round
    /// of chunks.
    pub fn write_dir_with_progress(
        &self,
        dir: &Path,
        options: &WriteOptions,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<WriteSummary> {
        options.validate()?;
        let p = &self.params;
        fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        for shadow in ["rna_counts.mtx", "atac_counts.mtx"] {
            let path = dir.join(shadow);
            if path.exists() {
                return Err(DataError::invalid(
                    path.display().to_string(),
                    "exists and would be read instead of the simulated .mtx.gz; remove it or choose another folder",
                ));
            }
        }
        let mut staged = Staged {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            small_bytes: 0,
            committed: false,
        };

        staged.write_small("genes.tsv", |out| {
            for (g, name) in self.gene_names.iter().enumerate() {
                let (chrom, tss) = self.gene_position(g);
                writeln!(out, "{name}\t{chrom}\t{tss}")?;
            }
            Ok(())
        })?;
        staged.write_small("peaks.tsv", |out| {
            for peak in &self.peaks {
                writeln!(out, "{}-{}-{}", peak.chrom, peak.start, peak.end)?;
            }
            Ok(())
        })?;
        staged.write_small("links.tsv", |out| {
            writeln!(out, "gene\tpeak\tdistance")?;
            for l in &self.links {
                let peak = &self.peaks[l.peak];
                writeln!(
                    out,
                    "{}\t{}-{}-{}\t{}",
                    self.gene_names[l.gene], peak.chrom, peak.start, peak.end, l.distance
                )?;
            }
            Ok(())
        })?;

        let level = Compression::new(options.compression);
        let rna_header = |nnz: u64| self.mtx_header(p.n_genes, nnz);
        let atac_header = |nnz: u64| self.mtx_header(p.n_peaks, nnz);
        let mut rna_file = staged.create("rna_counts.mtx.gz")?;
        let mut atac_file = staged.create("atac_counts.mtx.gz")?;
        let mut cells_file = staged.create("cells.tsv")?;
        rna_file.write(&rna_header(0))?;
        atac_file.write(&atac_header(0))?;
        cells_file.write(format!("barcode\t{}\n", CELL_COLUMNS.join("\t")).as_bytes())?;

        let threads = options.threads();
        let chunks: Vec<Range<usize>> = (0..p.n_cells)
            .step_by(options.chunk_cells)
            .map(|s| s..(s + options.chunk_cells).min(p.n_cells))
            .collect();
        let (mut rna_nnz, mut atac_nnz) = (0u64, 0u64);
        // chunk buffers are reused from round to round, so memory stays flat
        let mut pool: Vec<ChunkOut> = Vec::new();
        for round in chunks.chunks(threads) {
            let jobs: Vec<(Range<usize>, ChunkOut)> = round
                .iter()
                .map(|r| (r.clone(), pool.pop().unwrap_or_default()))
                .collect();
            let outputs: Vec<ChunkOut> = if jobs.len() == 1 {
                jobs.into_iter()
                    .map(|(r, buf)| self.chunk(r, level, buf))
                    .collect()
            } else {
                std::thread::scope(|s| {
                    let handles: Vec<_> = jobs
                        .into_iter()
                        .map(|(r, buf)| s.spawn(move || self.chunk(r, level, buf)))
                        .collect();
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("a simulation thread panicked"))
                        .collect()
                })
            };
            for out in outputs {
                rna_file.write(&out.rna)?;
                atac_file.write(&out.atac)?;
                cells_file.write(&out.cells)?;
                rna_nnz += out.rna_nnz;
                atac_nnz += out.atac_nnz;
                pool.push(out);
            }
            progress(round.last().map_or(0, |r| r.end), p.n_cells);
        }
        rna_file.rewrite_start(&rna_header(rna_nnz))?;
        atac_file.rewrite_start(&atac_header(atac_nnz))?;
        let mut bytes = 0;
        for file in [rna_file, atac_file, cells_file] {
            bytes += file.finish()?;
        }
        bytes += staged.small_bytes;
        let files = staged.commit()?;
        Ok(WriteSummary {
            dir: dir.to_path_buf(),
            n_cells: p.n_cells,
            rna_nnz,
            atac_nnz,
            bytes,
            files,
        })
    }

    /// The MatrixMarket header as one stored (uncompressed) gzip member of a fixed length
    /// for any entry count, so that it can be rewritten in place once the count is known.
    fn mtx_header(&self, cols: usize, nnz: u64) -> Vec<u8> {
        let size = format!("{} {} {}", self.params.n_cells, cols, nnz);
        let width = format!("{} {} ", self.params.n_cells, cols).len() + 20;
        let text = format!(
            "%%MatrixMarket matrix coordinate integer general\n% simulated by crossomics (seed {})\n{size:<width$}\n",
            self.params.seed
        );
        stored_gzip_member(text.as_bytes())
    }

    /// Draws a range of cells into `buf`'s (cleared) buffers.
    fn chunk(&self, cells: Range<usize>, level: Compression, buf: ChunkOut) -> ChunkOut {
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let mut rna_gz = EntryWriter::new(level, buf.rna);
        let mut atac_gz = EntryWriter::new(level, buf.atac);
        let mut cell_lines = buf.cells;
        cell_lines.clear();
        for i in cells {
            let draw = self.draw_cell(i, &mut scratch, &mut rna, &mut atac);
            rna_gz.row(i, &rna);
            atac_gz.row(i, &atac);
            self.cell_line(i, &draw, &mut cell_lines);
        }
        let (rna, rna_nnz) = rna_gz.finish();
        let (atac, atac_nnz) = atac_gz.finish();
        ChunkOut {
            rna,
            atac,
            cells: cell_lines,
            rna_nnz,
            atac_nnz,
        }
    }
}

const CELL_COLUMNS: [&str; 4] = ["cell_type", "batch", "lib_rna", "lib_atac"];

#[derive(Debug)]
struct Scratch {
    rna: RowBuf,
    atac: RowBuf,
}

#[derive(Debug, Default)]
struct CsrParts {
    offsets: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f32>,
}

impl CsrParts {
    fn push_row(&mut self, entries: &[(u32, u32)]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        for &(c, v) in entries {
            self.indices.push(c as usize);
            self.values.push(v as f32);
        }
        self.offsets.push(self.indices.len());
    }

    fn finish(mut self, rows: usize, cols: usize) -> CsrMatrix<f32> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        CsrMatrix::try_from_csr_data(rows, cols, self.offsets, self.indices, self.values)
            .expect("rows are sorted and within the matrix")
    }
}

#[derive(Default)]
struct ChunkOut {
    rna: Vec<u8>,
    atac: Vec<u8>,
    cells: Vec<u8>,
    rna_nnz: u64,
    atac_nnz: u64,
}

/// MatrixMarket entry lines of a chunk, compressed into one gzip member in memory.
struct EntryWriter {
    gz: GzEncoder<Vec<u8>>,
    text: Vec<u8>,
    nnz: u64,
}

impl EntryWriter {
    fn new(level: Compression, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Self {
            gz: GzEncoder::new(buf, level),
            text: Vec::with_capacity(1 << 17),
            nnz: 0,
        }
    }

    fn row(&mut self, row: usize, entries: &[(u32, u32)]) {
        let mut prefix = itoa(row as u64 + 1);
        prefix.push(b' ');
        for &(c, v) in entries {
            self.text.extend_from_slice(&prefix);
            push_u64(&mut self.text, u64::from(c) + 1);
            self.text.push(b' ');
            push_u64(&mut self.text, u64::from(v));
            self.text.push(b'\n');
        }
        self.nnz += entries.len() as u64;
        if self.text.len() >= 1 << 16 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.gz
            .write_all(&self.text)
            .expect("compressing into memory cannot fail");
        self.text.clear();
    }

    fn finish(mut self) -> (Vec<u8>, u64) {
        self.flush();
        let bytes = self
            .gz
            .finish()
            .expect("compressing into memory cannot fail");
        (bytes, self.nnz)
    }
}

fn itoa(mut v: u64) -> Vec<u8> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf[i..].to_vec()
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
    } else {
        out.extend_from_slice(&itoa(v));
    }
}

/// A gzip member holding `data` in one stored deflate block (RFC 1951 BTYPE 00).
fn stored_gzip_member(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("the header is short");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.push(1); // BFINAL = 1, BTYPE = 00, padded to the byte
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

/// Options of [`Simulator::write_dir`]; the output does not depend on them, except for
/// the compressed bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteOptions {
    /// Cells generated (and compressed) together: memory is O(threads x chunk).
    pub chunk_cells: usize,
    /// Worker threads; 0 = all available cores.
    pub threads: usize,
    /// gzip level 0-9 (1 = fastest).
    pub compression: u32,
}

impl Default for WriteOptions {
    fn default() -> Self {
        Self {
            chunk_cells: 512,
            threads: 0,
            compression: 1,
        }
    }
}

impl WriteOptions {
    fn validate(&self) -> Result<()> {
        if self.chunk_cells == 0 {
            return Err(DataError::invalid(
                "simulator write option `chunk_cells`",
                "must be at least 1, got 0",
            ));
        }
        if self.compression > 9 {
            return Err(DataError::invalid(
                "simulator write option `compression`",
                format!("gzip levels are 0-9, got {}", self.compression),
            ));
        }
        Ok(())
    }

    fn threads(&self) -> usize {
        if self.threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            self.threads
        }
    }
}

/// What [`Simulator::write_dir`] wrote.
#[derive(Debug, Clone, PartialEq)]
pub struct WriteSummary {
    pub dir: PathBuf,
    pub n_cells: usize,
    pub rna_nnz: u64,
    pub atac_nnz: u64,
    /// Total size of the files written.
    pub bytes: u64,
    pub files: Vec<PathBuf>,
}

/// Output files under temporary names; removed on drop unless committed.
#[derive(Debug)]
struct Staged {
    dir: PathBuf,
    files: Vec<(PathBuf, PathBuf)>,
    small_bytes: u64,
    committed: bool,
}

impl Staged {
    fn temp_path(&self, name: &str) -> (PathBuf, PathBuf) {
        (
            self.dir.join(format!(".{name}.simulating")),
            self.dir.join(name),
        )
    }

    fn create(&mut self, name: &str) -> Result<StagedFile> {
        let (temp, fin) = self.temp_path(name);
        let file = File::create(&temp).map_err(|e| DataError::io(&temp, e))?;
        self.files.push((temp.clone(), fin));
        Ok(StagedFile {
            out: BufWriter::with_capacity(1 << 20, file),
            path: temp,
        })
    }

    fn write_small(
        &mut self,
        name: &str,
        body: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>,
    ) -> Result<()> {
        let mut text = Vec::new();
        body(&mut text).expect("writing to memory cannot fail");
        let mut file = self.create(name)?;
        file.write(&text)?;
        self.small_bytes += file.finish()?;
        Ok(())
    }

    /// Renames every file into place; if one fails, removes the ones already renamed.
    fn commit(mut self) -> Result<Vec<PathBuf>> {
        let mut done: Vec<PathBuf> = Vec::new();
        for (temp, fin) in &self.files {
            if let Err(e) = fs::rename(temp, fin) {
                for path in &done {
                    let _ = fs::remove_file(path);
                }
                return Err(DataError::io(fin, e));
            }
            done.push(fin.clone());
        }
        self.committed = true;
        Ok(done)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.committed {
            for (temp, _) in &self.files {
                let _ = fs::remove_file(temp);
            }
        }
    }
}

#[derive(Debug)]
struct StagedFile {
    out: BufWriter<File>,
    path: PathBuf,
}

impl StagedFile {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .map_err(|e| DataError::io(&self.path, e))
    }

    /// Overwrites the first bytes of the file (the same length as written there first).
    fn rewrite_start(&mut self, bytes: &[u8]) -> Result<()> {
        let io = |e| DataError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_mut();
        let end = file.stream_position().map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(bytes).map_err(io)?;
        file.seek(SeekFrom::Start(end)).map_err(io)?;
        Ok(())
    }

    /// Flushes and syncs; returns the file's size.
    fn finish(mut self) -> Result<u64> {
        let io = |e| DataError::io(&self.path, e);
        self.out.flush().map_err(io)?;
        let file = self.out.get_ref();
        file.sync_all().map_err(io)?;
        Ok(file.metadata().map_err(io)?.len())
    }
}

// ---------------------------------------------------------------------------------------
// Entry points
// ---------------------------------------------------------------------------------------

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    /// Rows of identical rates are iid draws of the feature's law: the thinning and the
    /// zero-truncated samplers together must reproduce its mean, variance and P(0).
    #[test]
    fn thinned_rows_have_the_laws_moments() {
        let n = 4000;
        let table = RateTable::new(&vec![1.0; n]);
        let mut row = RowBuf::new(n);
        let mut out = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (mu, law) in [
            (0.02, Count::Nb(0.3)),
            (0.5, Count::Nb(2.0)),
            (4.0, Count::Nb(1.0)),
            (40.0, Count::Nb(5.0)),
            (0.3, Count::Poisson),
            (3.0, Count::Poisson),
            (0.2, Count::Bernoulli),
        ] {
            let mut xs = Vec::new();
            for _ in 0..25 {
                sample_row(&mut rng, mu, &table, |_| law, &mut row);
                row.drain_into(&mut out);
                let mut dense = vec![0.0; n];
                for &(f, v) in &out {
                    dense[f as usize] = f64::from(v);
                }
                xs.extend(dense);
            }
            let (m, v) = moments(&xs);
            let pnz = law.p_nonzero(mu);
            let (want_m, want_v) = match law {
                Count::Nb(theta) => (mu, mu + mu * mu / theta),
                Count::Poisson => (mu, mu),
                Count::Bernoulli => (pnz, pnz * (1.0 - pnz)),
            };
            let n = xs.len() as f64;
            // mean within 5 standard errors; variance within 10% (ample for 100k draws)
            assert!(
                (m - want_m).abs() < 5.0 * (want_v / n).sqrt(),
                "{law:?} mu {mu}: mean {m} vs {want_m}"
            );
            assert!(
                (v / want_v - 1.0).abs() < 0.1,
                "{law:?} mu {mu}: variance {v} vs {want_v}"
            );
            let zeros = xs.iter().filter(|x| **x == 0.0).count() as f64 / n;
            let se = (pnz * (1.0 - pnz) / n).sqrt();
            assert!(
                (zeros - (1.0 - pnz)).abs() < 5.0 * se + 1e-9,
                "{law:?} mu {mu}: P(0) {zeros} vs {}",
                1.0 - pnz
            );
        }
    }

    /// With descending rates each position must still be open with its own probability.
    #[test]
    fn thinning_respects_each_features_rate() {
        let n = 200usize;
        let rates: Vec<f64> = (0..n).map(|i| 2.0 * 0.97f64.powi(i as i32)).collect();
        // shuffle the feature order so that sorting matters
        let shuffled: Vec<f64> = (0..n).map(|i| rates[(i * 37) % n]).collect();
        let table = RateTable::new(&shuffled);
        let mut row = RowBuf::new(n);
        let mut out = Vec::new();
        let mut open = vec![0.0; n];
        let reps = 4000;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..reps {
            sample_row(&mut rng, 1.0, &table, |_| Count::Bernoulli, &mut row);
            row.drain_into(&mut out);
            assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "sorted output");
            for &(f, _) in &out {
                open[f as usize] += 1.0;
            }
        }
        let mut chi2 = 0.0;
        for (f, &o) in open.iter().enumerate() {
            let p = -(-shuffled[f]).exp_m1();
            let e = p * reps as f64;
            chi2 += (o - e).powi(2) / (e * (1.0 - p));
        }
        // chi-square with 200 degrees of freedom: mean 200, sd 20
        assert!(chi2 < 300.0, "chi2 {chi2}");
    }

    #[test]
    fn stored_header_member_decodes_and_keeps_its_length() {
        let params = SimulatorParams {
            n_cells: 12,
            n_genes: 30,
            n_peaks: 40,
            n_types: 2,
            ..Default::default()
        };
        let sim = Simulator::new(&params, &Calibration::bundled().unwrap()).unwrap();
        let a = sim.mtx_header(30, 0);
        let b = sim.mtx_header(30, 123_456_789_012);
        assert_eq!(a.len(), b.len());
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(b.as_slice())
            .read_to_string(&mut text)
            .unwrap();
        assert!(text.starts_with("%%MatrixMarket matrix coordinate integer general\n"));
        assert!(text.contains("\n12 30 123456789012"), "{text}");
    }

    #[test]
    fn allocate_splits_exactly() {
        assert_eq!(allocate(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(allocate(0, &[5, 7]), vec![0, 0]);
        let a = allocate(100_000, &[248, 242, 50]);
        assert_eq!(a.iter().sum::<usize>(), 100_000);
    }

    #[test]
    fn itoa_writes_decimal() {
        for v in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }

    /// The moment fit recovers a spike-and-slab from noisy draws.
    #[test]
    fn type_effect_fit_recovers_spike_and_slab() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let obs: Vec<(f64, f64)> = (0..200_000)
            .map(|_| {
                let s = if rng.r#gen::<f64>() < 0.2 {
                    1.5 * rng.sample::<f64, _>(StandardNormal)
                } else {
                    0.0
                };
                let v: f64 = 0.05;
                (s + v.sqrt() * rng.sample::<f64, _>(StandardNormal), v)
            })
            .collect();
        let e = fit_type_effect(&obs).unwrap();
        assert!((e.fraction - 0.2).abs() < 0.03, "{e:?}");
        assert!((e.log_fold_sd - 1.5).abs() < 0.1, "{e:?}");
    }
}
