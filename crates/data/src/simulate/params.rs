//! What to simulate: [`SimulatorParams`] (sizes, seed, effect strengths, chromosomes) and
//! their checks.

use serde::{Deserialize, Serialize};

use super::layout::chromosome_length;
use crate::error::{DataError, Result};
use crate::genome::unify_chrom;

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
