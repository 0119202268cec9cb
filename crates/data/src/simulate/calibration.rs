//! The simulator's parameters fitted to a real dataset ([`Calibration`]): depths, their
//! correlation, per-feature means, dispersions and rates, type effects and proportions,
//! and the checks of a calibration loaded from a file.

use serde::{Deserialize, Serialize};

use super::feature_fit::{fit_genes, fit_peaks};
use crate::dataset::PairedDataset;
use crate::error::{DataError, Result};
use crate::preprocess::library_sizes;

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
