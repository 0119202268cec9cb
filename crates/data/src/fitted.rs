//! Preprocessing fitted on a training dataset, saved with a run and replayed unchanged
//! on new data (what a trained model needs to score an upload).
//!
//! The config's steps ([`Step`]) run in order over a [`Transformed`] state: counts, the
//! current RNA and ATAC values, and the reduced representations. Fitting a step records
//! what it learned ([`FittedStep`]: kept features, normalization target, clipping
//! thresholds, IDF, PCA loadings); applying replays exactly that. New data is first put
//! into the training data's input features (genes by name, peaks by interval; missing
//! ones zero), so every step sees the same columns as in training.

use std::collections::HashMap;
use std::path::Path;

use nalgebra_sparse::CsrMatrix;
use ndarray::{Array2, ArrayView1, ArrayView2, s};
use serde::{Deserialize, Serialize};

use crate::config::{PreprocessConfig, Step};
use crate::dataset::{PairedDataset, select_columns, select_rows};
use crate::error::{DataError, Result};
use crate::genome::{Peak, is_autosome};
use crate::{pca, preprocess};

/// What the steps learned on the training data, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPreprocessing {
    /// genes of the training data before any step (new data is aligned to these)
    pub input_genes: Vec<String>,
    /// peaks of the training data before any step, as `chr:start-end`
    pub input_peaks: Vec<String>,
    pub steps: Vec<FittedStep>,
    /// genes after every step (the model's)
    pub genes: Vec<String>,
    /// peaks after every step (the model's), as `chr:start-end`
    pub peaks: Vec<String>,
}

/// A fitted step; see [`Step`] for what each does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum FittedStep {
    CellQc {
        min_genes: usize,
        max_genes: usize,
        min_peaks: usize,
        max_peaks: usize,
    },
    /// column indices kept, into the genes before this step
    SelectGenes {
        keep: Vec<usize>,
    },
    /// column indices kept, into the peaks before this step
    SelectPeaks {
        keep: Vec<usize>,
    },
    NormalizeRna {
        target_sum: f64,
    },
    ClipRna {
        lower: f64,
        upper: f64,
    },
    RnaPca {
        projection: Projection,
    },
    BinarizeAtac,
    TfidfAtac {
        idf: Vec<f64>,
        scale: f64,
    },
    AtacLsi {
        idf: Vec<f64>,
        /// files written before the form was a choice used Signac's
        #[serde(default = "signac")]
        tfidf: crate::config::LsiTfidf,
        scale: f64,
        projection: Projection,
        drop_first: bool,
    },
}

fn signac() -> crate::config::LsiTfidf {
    crate::config::LsiTfidf::Signac
}

/// A fitted linear projection: `(x - mean) . components^T`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    pub mean: Vec<f32>,
    /// components x features, row-major
    pub components: Vec<f32>,
    pub n_components: usize,
}

impl Projection {
    fn from_pca(p: &pca::Pca) -> Self {
        Self {
            mean: p.mean.to_vec(),
            components: p.components.iter().copied().collect(),
            n_components: p.components.nrows(),
        }
    }

    fn check(&self, n_features: usize, what: &str) -> Result<()> {
        if self.mean.len() != n_features || self.components.len() != self.n_components * n_features
        {
            return Err(DataError::invalid(
                "fitted preprocessing",
                format!(
                    "{what}: a projection of {} features x {} components does not fit {n_features} features",
                    self.mean.len(),
                    self.n_components
                ),
            ));
        }
        Ok(())
    }

    /// Projects the rows of a sparse matrix without densifying it:
    /// `x . C^T - mean . C^T`, accumulated in f64.
    pub fn apply(&self, x: &CsrMatrix<f32>) -> Array2<f32> {
        let p = self.mean.len();
        let k = self.n_components;
        let c = ArrayView2::from_shape((k, p), &self.components).expect("checked shape");
        let mean = ArrayView1::from(&self.mean);
        let offset: Vec<f64> = (0..k)
            .map(|j| {
                c.row(j)
                    .iter()
                    .zip(mean.iter())
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum()
            })
            .collect();
        let ct = c.t();
        let mut out = Array2::<f32>::zeros((x.nrows(), k));
        let mut acc = vec![0.0f64; k];
        for (i, row) in x.row_iter().enumerate() {
            acc.copy_from_slice(&offset);
            acc.iter_mut().for_each(|a| *a = -*a);
            for (&col, &v) in row.col_indices().iter().zip(row.values()) {
                let v = f64::from(v);
                for (a, w) in acc.iter_mut().zip(ct.row(col)) {
                    *a += v * f64::from(*w);
                }
            }
            for (o, a) in out.row_mut(i).iter_mut().zip(&acc) {
                *o = *a as f32;
            }
        }
        out
    }
}

/// How many of the model's features a dataset has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub genes_found: usize,
    pub genes_total: usize,
    pub peaks_found: usize,
    pub peaks_total: usize,
}

/// A dataset after the steps: counts and model inputs of the cells that passed QC.
#[derive(Debug, Clone)]
pub struct Transformed {
    /// counts of the kept cells, columns in the model's gene and peak order
    pub dataset: PairedDataset,
    /// rows of the input dataset that passed cell QC, in order
    pub cells: Vec<usize>,
    /// RNA values after the value steps (normalization, clipping)
    pub rna: CsrMatrix<f32>,
    /// ATAC values after the value steps (binarization, TF-IDF)
    pub atac: CsrMatrix<f32>,
    /// the `rna_pca` step's scores
    pub rna_pca: Option<Array2<f32>>,
    /// the `atac_lsi` step's scores
    pub atac_lsi: Option<Array2<f32>>,
    pub coverage: Coverage,
}

impl Transformed {
    fn start(data: PairedDataset, coverage: Coverage) -> Self {
        Self {
            cells: (0..data.n_cells()).collect(),
            rna: data.rna.clone(),
            atac: data.atac.clone(),
            dataset: data,
            rna_pca: None,
            atac_lsi: None,
            coverage,
        }
    }

    /// The RNA PCA scores, or an error saying that the config lacks the step.
    pub fn require_rna_pca(&self) -> Result<&Array2<f32>> {
        self.rna_pca.as_ref().ok_or_else(|| {
            DataError::invalid(
                "preprocessing",
                "no `rna_pca` step: add one (the SAILERX alignment target and RNA baseline)",
            )
        })
    }
}

fn step_name(step: &FittedStep) -> &'static str {
    match step {
        FittedStep::CellQc { .. } => "cell_qc",
        FittedStep::SelectGenes { .. } => "filter_genes / highly_variable_genes",
        FittedStep::SelectPeaks { .. } => "filter_peaks",
        FittedStep::NormalizeRna { .. } => "normalize_rna",
        FittedStep::ClipRna { .. } => "clip_rna",
        FittedStep::RnaPca { .. } => "rna_pca",
        FittedStep::BinarizeAtac => "binarize_atac",
        FittedStep::TfidfAtac { .. } => "tfidf_atac",
        FittedStep::AtacLsi { .. } => "atac_lsi",
    }
}

/// Components of a PCA on `n x p` data: at most `n - 1` and `p`.
fn components(wanted: usize, t: &Transformed, p: usize) -> usize {
    wanted
        .min(t.dataset.n_cells().saturating_sub(1))
        .min(p)
        .max(1)
}

/// Learns one step's parameters on the current state.
fn fit_step(step: &Step, t: &Transformed, seed: u64) -> Result<FittedStep> {
    Ok(match step {
        Step::CellQc {
            min_genes,
            max_genes,
            min_peaks,
            max_peaks,
        } => FittedStep::CellQc {
            min_genes: *min_genes,
            max_genes: max_genes.unwrap_or(usize::MAX),
            min_peaks: *min_peaks,
            max_peaks: max_peaks.unwrap_or(usize::MAX),
        },
        Step::FilterGenes {
            min_cells,
            max_fraction,
        } => FittedStep::SelectGenes {
            keep: preprocess::feature_filter(&t.dataset.rna, *min_cells, *max_fraction),
        },
        Step::FilterPeaks {
            min_cells,
            max_fraction,
            autosomes_only,
        } => FittedStep::SelectPeaks {
            keep: preprocess::feature_filter(&t.dataset.atac, *min_cells, *max_fraction)
                .into_iter()
                .filter(|&j| !autosomes_only || is_autosome(&t.dataset.peaks[j].chrom))
                .collect(),
        },
        Step::HighlyVariableGenes {
            n_top_genes,
            span,
            batch_column,
        } => {
            let batches = match batch_column {
                Some(col) => Some(t.dataset.cells.codes(col)?.0),
                None => None,
            };
            let batches: Option<Vec<u32>> =
                batches.map(|b| b.into_iter().map(|c| c as u32).collect());
            let hvg = crate::hvg::seurat_v3(&t.rna, *n_top_genes, *span, batches.as_deref())?;
            FittedStep::SelectGenes { keep: hvg.selected }
        }
        Step::NormalizeRna { target_sum } => FittedStep::NormalizeRna {
            target_sum: match target_sum {
                Some(x) => *x,
                None => preprocess::median_library_size(&preprocess::library_sizes(&t.rna))
                    .ok_or_else(|| DataError::Empty {
                        what: "RNA counts (normalize_rna)".into(),
                        reason: "every cell has zero counts".into(),
                    })?,
            },
        },
        Step::ClipRna { lower, upper } => FittedStep::ClipRna {
            lower: preprocess::percentile_with_zeros(&t.rna, *lower)?,
            upper: preprocess::percentile_with_zeros(&t.rna, *upper)?,
        },
        Step::RnaPca { n_components } => {
            let k = components(*n_components, t, t.rna.ncols());
            let fit = pca::fit(preprocess::to_dense(&t.rna).view(), k, seed)?;
            FittedStep::RnaPca {
                projection: Projection::from_pca(&fit),
            }
        }
        Step::BinarizeAtac => FittedStep::BinarizeAtac,
        Step::TfidfAtac { scale } => FittedStep::TfidfAtac {
            idf: preprocess::peak_idf(&t.atac),
            scale: *scale,
        },
        Step::AtacLsi {
            n_components,
            tfidf: form,
            scale,
            drop_first,
        } => {
            let idf = preprocess::peak_idf(&t.atac);
            let tfidf = preprocess::lsi_tfidf(&t.atac, &idf, *form, *scale);
            let k = components(n_components + usize::from(*drop_first), t, tfidf.ncols());
            let fit = pca::fit_uncentered(preprocess::to_dense(&tfidf).view(), k, seed)?;
            FittedStep::AtacLsi {
                idf,
                tfidf: *form,
                scale: *scale,
                projection: Projection::from_pca(&fit),
                drop_first: *drop_first,
            }
        }
    })
}

/// Replays one fitted step on the state.
fn apply_step(step: &FittedStep, t: &mut Transformed) -> Result<()> {
    let name = step_name(step);
    match step {
        FittedStep::CellQc {
            min_genes,
            max_genes,
            min_peaks,
            max_peaks,
        } => {
            let genes = preprocess::features_per_cell(&t.dataset.rna);
            let peaks = preprocess::features_per_cell(&t.dataset.atac);
            let keep: Vec<usize> = (0..t.dataset.n_cells())
                .filter(|&i| {
                    (*min_genes..=*max_genes).contains(&genes[i])
                        && (*min_peaks..=*max_peaks).contains(&peaks[i])
                })
                .collect();
            if keep.is_empty() {
                return Err(DataError::Empty {
                    what: format!("dataset `{}` after cell_qc", t.dataset.name),
                    reason: format!(
                        "none of {} cells has {min_genes}..={max_genes} genes and \
                         {min_peaks}..={max_peaks} peaks",
                        t.dataset.n_cells()
                    ),
                });
            }
            if keep.len() < t.dataset.n_cells() {
                t.dataset = t.dataset.subset_cells(&keep);
                t.rna = select_rows(&t.rna, &keep);
                t.atac = select_rows(&t.atac, &keep);
                t.cells = keep.iter().map(|&i| t.cells[i]).collect();
                t.rna_pca = t
                    .rna_pca
                    .as_ref()
                    .map(|a| a.select(ndarray::Axis(0), &keep));
                t.atac_lsi = t
                    .atac_lsi
                    .as_ref()
                    .map(|a| a.select(ndarray::Axis(0), &keep));
            }
        }
        FittedStep::SelectGenes { keep } => {
            if keep.is_empty() || keep.iter().any(|&j| j >= t.rna.ncols()) {
                return Err(DataError::Empty {
                    what: format!("dataset `{}` after {name}", t.dataset.name),
                    reason: format!(
                        "{} of {} genes kept; lower the step's thresholds",
                        keep.len(),
                        t.rna.ncols()
                    ),
                });
            }
            let peaks: Vec<usize> = (0..t.dataset.peaks.len()).collect();
            t.dataset = t.dataset.subset_features(keep, &peaks);
            t.rna = select_columns(&t.rna, keep);
        }
        FittedStep::SelectPeaks { keep } => {
            if keep.is_empty() || keep.iter().any(|&j| j >= t.atac.ncols()) {
                return Err(DataError::Empty {
                    what: format!("dataset `{}` after {name}", t.dataset.name),
                    reason: format!(
                        "{} of {} peaks kept; lower the step's thresholds",
                        keep.len(),
                        t.atac.ncols()
                    ),
                });
            }
            let genes: Vec<usize> = (0..t.dataset.genes.len()).collect();
            t.dataset = t.dataset.subset_features(&genes, keep);
            t.atac = select_columns(&t.atac, keep);
        }
        FittedStep::NormalizeRna { target_sum } => {
            t.rna = preprocess::normalize_log1p(&t.rna, Some(*target_sum))?;
        }
        FittedStep::ClipRna { lower, upper } => {
            if *lower > 0.0 && t.rna.nnz() < t.rna.nrows() * t.rna.ncols() {
                return Err(DataError::invalid(
                    "clip_rna",
                    format!("the lower threshold {lower} > 0 would make the sparse RNA dense"),
                ));
            }
            for v in t.rna.values_mut() {
                *v = f64::from(*v).clamp(*lower, *upper) as f32;
            }
        }
        FittedStep::RnaPca { projection } => {
            projection.check(t.rna.ncols(), name)?;
            t.rna_pca = Some(projection.apply(&t.rna));
        }
        FittedStep::BinarizeAtac => t.atac = preprocess::binarize(&t.atac),
        FittedStep::TfidfAtac { idf, scale } => {
            check_idf(idf, t.atac.ncols(), name)?;
            t.atac = preprocess::tfidf_with_idf(&t.atac, idf, *scale);
        }
        FittedStep::AtacLsi {
            idf,
            tfidf,
            scale,
            projection,
            drop_first,
        } => {
            check_idf(idf, t.atac.ncols(), name)?;
            projection.check(t.atac.ncols(), name)?;
            let scores = projection.apply(&preprocess::lsi_tfidf(&t.atac, idf, *tfidf, *scale));
            let first = usize::from(*drop_first && scores.ncols() > 1);
            t.atac_lsi = Some(scores.slice(s![.., first..]).to_owned());
        }
    }
    Ok(())
}

/// The step as it applies to data with only modality `present`: cell QC without the
/// absent modality's thresholds; `None` for a step that transforms the absent modality.
fn for_one_modality(step: &FittedStep, present: crate::transfer::Modality) -> Option<FittedStep> {
    use crate::transfer::Modality;
    let rna_step = matches!(
        step,
        FittedStep::NormalizeRna { .. } | FittedStep::ClipRna { .. } | FittedStep::RnaPca { .. }
    );
    let atac_step = matches!(
        step,
        FittedStep::BinarizeAtac | FittedStep::TfidfAtac { .. } | FittedStep::AtacLsi { .. }
    );
    match (step, present) {
        (
            FittedStep::CellQc {
                min_genes,
                max_genes,
                ..
            },
            Modality::Rna,
        ) => Some(FittedStep::CellQc {
            min_genes: *min_genes,
            max_genes: *max_genes,
            min_peaks: 0,
            max_peaks: usize::MAX,
        }),
        (
            FittedStep::CellQc {
                min_peaks,
                max_peaks,
                ..
            },
            Modality::Atac,
        ) => Some(FittedStep::CellQc {
            min_genes: 0,
            max_genes: usize::MAX,
            min_peaks: *min_peaks,
            max_peaks: *max_peaks,
        }),
        _ if rna_step && present == Modality::Atac => None,
        _ if atac_step && present == Modality::Rna => None,
        _ => Some(step.clone()),
    }
}

fn check_idf(idf: &[f64], n: usize, what: &str) -> Result<()> {
    if idf.len() != n {
        return Err(DataError::invalid(
            "fitted preprocessing",
            format!("{what}: {} IDF weights for {n} peaks", idf.len()),
        ));
    }
    Ok(())
}

impl FittedPreprocessing {
    /// Fits the steps of `cfg` on `data`, in order; returns what they learned and the
    /// transformed training data.
    pub fn fit(
        data: &PairedDataset,
        cfg: &PreprocessConfig,
        seed: u64,
    ) -> Result<(Self, Transformed)> {
        let n_genes = data.genes.len();
        let n_peaks = data.peaks.len();
        let mut t = Transformed::start(
            data.clone(),
            Coverage {
                genes_found: n_genes,
                genes_total: n_genes,
                peaks_found: n_peaks,
                peaks_total: n_peaks,
            },
        );
        let mut steps = Vec::with_capacity(cfg.steps.len());
        for step in &cfg.steps {
            let fitted = fit_step(step, &t, seed)?;
            apply_step(&fitted, &mut t)?;
            steps.push(fitted);
        }
        t.coverage = Coverage {
            genes_found: t.dataset.genes.len(),
            genes_total: t.dataset.genes.len(),
            peaks_found: t.dataset.peaks.len(),
            peaks_total: t.dataset.peaks.len(),
        };
        let fitted = Self {
            input_genes: data.genes.clone(),
            input_peaks: data.peaks.iter().map(Peak::to_string).collect(),
            steps,
            genes: t.dataset.genes.clone(),
            peaks: t.dataset.peaks.iter().map(Peak::to_string).collect(),
        };
        Ok((fitted, t))
    }

    /// Puts `data` into the training input features (genes by name, exactly, else
    /// case-insensitively; peaks by identical interval; missing features are zero),
    /// then replays the fitted steps. Coverage counts the model's final features.
    pub fn apply(&self, data: &PairedDataset) -> Result<Transformed> {
        self.apply_with(data, None)
    }

    /// [`FittedPreprocessing::apply`] for data of one modality only (`present`), e.g. an
    /// upload to translate: the other modality of `data` is ignored (it may be an
    /// all-zero matrix with the training features), cell QC judges cells by the present
    /// modality alone, and the steps that transform the absent modality are skipped (its
    /// values and representations in the result are not meaningful).
    pub fn apply_one(
        &self,
        data: &PairedDataset,
        present: crate::transfer::Modality,
    ) -> Result<Transformed> {
        self.apply_with(data, Some(present))
    }

    fn apply_with(
        &self,
        data: &PairedDataset,
        present: Option<crate::transfer::Modality>,
    ) -> Result<Transformed> {
        // the same rules as a translation's upload (`transfer::match_genes`): name, name
        // ignoring case, then the name without an Ensembl version
        // data with the training features themselves (e.g. the held-out cells of the
        // dataset the steps were fitted on) keep their columns as they are, duplicate
        // names included
        let gene_map: Vec<Option<usize>> = if data.genes == self.input_genes {
            (0..data.genes.len()).map(Some).collect()
        } else {
            crate::transfer::match_genes(&self.input_genes, &data.genes, None)
        };
        let data_peaks: Vec<String> = data.peaks.iter().map(Peak::to_string).collect();
        let peak_map: Vec<Option<usize>> = if data_peaks == self.input_peaks {
            (0..data_peaks.len()).map(Some).collect()
        } else {
            let peaks: HashMap<&str, usize> = data_peaks
                .iter()
                .enumerate()
                .map(|(i, p)| (p.as_str(), i))
                .collect();
            self.input_peaks
                .iter()
                .map(|p| peaks.get(p.as_str()).copied())
                .collect()
        };
        let input_peaks = self
            .input_peaks
            .iter()
            .map(|p| Peak::parse(p).map_err(|e| DataError::invalid("fitted preprocessing", e)))
            .collect::<Result<Vec<_>>>()?;
        let aligned = PairedDataset::new(
            data.name.clone(),
            align_columns(&data.rna, &gene_map),
            align_columns(&data.atac, &peak_map),
            data.cells.clone(),
            self.input_genes.clone(),
            input_peaks,
        )?;
        let found_genes: std::collections::HashSet<&str> = self
            .input_genes
            .iter()
            .zip(&gene_map)
            .filter(|(_, m)| m.is_some())
            .map(|(g, _)| g.as_str())
            .collect();
        let found_peaks: std::collections::HashSet<&str> = self
            .input_peaks
            .iter()
            .zip(&peak_map)
            .filter(|(_, m)| m.is_some())
            .map(|(p, _)| p.as_str())
            .collect();
        let coverage = Coverage {
            genes_found: self
                .genes
                .iter()
                .filter(|g| found_genes.contains(g.as_str()))
                .count(),
            genes_total: self.genes.len(),
            peaks_found: self
                .peaks
                .iter()
                .filter(|p| found_peaks.contains(p.as_str()))
                .count(),
            peaks_total: self.peaks.len(),
        };
        let mut t = Transformed::start(aligned, coverage);
        for step in &self.steps {
            match present {
                None => apply_step(step, &mut t)?,
                Some(m) => {
                    if let Some(step) = for_one_modality(step, m) {
                        apply_step(&step, &mut t)?;
                    }
                }
            }
        }
        Ok(t)
    }

    /// The model's final peaks ([`FittedPreprocessing::peaks`]) as intervals.
    pub fn peak_intervals(&self) -> Result<Vec<Peak>> {
        self.peaks
            .iter()
            .map(|p| Peak::parse(p).map_err(|e| DataError::invalid("fitted preprocessing", e)))
            .collect()
    }

    /// Saves as JSON through a temporary file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let text = serde_json::to_string(self)
            .map_err(|e| DataError::invalid(path.display().to_string(), e.to_string()))?;
        crossomics_atomic::write(path, text).map_err(|e| DataError::io(path, e))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| {
            DataError::invalid(
                path.display().to_string(),
                format!("not a fitted preprocessing file: {e}"),
            )
        })
    }
}

/// Columns of `m` in the order of `mapping`; `None` gives an all-zero column.
pub fn align_columns(m: &CsrMatrix<f32>, mapping: &[Option<usize>]) -> CsrMatrix<f32> {
    let mut new_index = vec![usize::MAX; m.ncols()];
    for (new, old) in mapping.iter().enumerate() {
        if let Some(old) = old {
            new_index[*old] = new;
        }
    }
    let mut offsets = vec![0];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for row in m.row_iter() {
        let mut entries: Vec<(usize, f32)> = row
            .col_indices()
            .iter()
            .zip(row.values())
            .filter(|(c, _)| new_index[**c] != usize::MAX)
            .map(|(c, v)| (new_index[*c], *v))
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
        for (c, v) in entries {
            indices.push(c);
            values.push(v);
        }
        offsets.push(indices.len());
    }
    CsrMatrix::try_from_csr_data(m.nrows(), mapping.len(), offsets, indices, values)
        .expect("aligned columns of a valid CSR matrix form a valid CSR matrix")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PreprocessConfig {
        let mut c = PreprocessConfig::default();
        for step in &mut c.steps {
            if let Step::RnaPca { n_components } = step {
                *n_components = 10;
            }
        }
        c
    }

    /// Every kind of step, in a plausible order.
    fn every_step() -> PreprocessConfig {
        PreprocessConfig {
            steps: vec![
                Step::CellQc {
                    min_genes: 20,
                    max_genes: Some(400),
                    min_peaks: 5,
                    max_peaks: None,
                },
                Step::FilterGenes {
                    min_cells: 5,
                    max_fraction: 0.95,
                },
                Step::FilterPeaks {
                    min_cells: 3,
                    max_fraction: 0.9,
                    autosomes_only: true,
                },
                Step::HighlyVariableGenes {
                    n_top_genes: 200,
                    span: 0.3,
                    batch_column: Some("batch".into()),
                },
                Step::NormalizeRna { target_sum: None },
                Step::ClipRna {
                    lower: 0.0,
                    upper: 99.5,
                },
                Step::RnaPca { n_components: 10 },
                Step::BinarizeAtac,
                Step::AtacLsi {
                    n_components: 8,
                    tfidf: crate::config::LsiTfidf::Muon,
                    scale: 1e4,
                    drop_first: true,
                },
                Step::TfidfAtac { scale: 1e4 },
            ],
            transductive: false,
        }
    }

    fn max_abs_diff(a: &Array2<f32>, b: &Array2<f32>) -> f32 {
        assert_eq!(a.dim(), b.dim());
        (a - b).mapv(f32::abs).fold(0.0f32, |m, x| m.max(*x))
    }

    #[test]
    fn apply_on_the_training_data_reproduces_the_fit() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        for c in [cfg(), every_step()] {
            let (fitted, t) = FittedPreprocessing::fit(&d, &c, 3).unwrap();
            let again = fitted.apply(&d).unwrap();
            assert_eq!(again.coverage.genes_found, fitted.genes.len());
            assert_eq!(again.cells, t.cells);
            assert_eq!(again.rna, t.rna);
            assert_eq!(again.atac, t.atac);
            assert_eq!(again.dataset.genes, t.dataset.genes);
            assert_eq!(again.rna_pca, t.rna_pca);
            assert_eq!(again.atac_lsi, t.atac_lsi);
            // save / load round trip
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("pre.json");
            fitted.save(&path).unwrap();
            assert_eq!(FittedPreprocessing::load(&path).unwrap(), fitted);
            std::fs::write(&path, "{\"genes\": 3}").unwrap();
            let err = FittedPreprocessing::load(&path).unwrap_err().to_string();
            assert!(err.contains("pre.json"), "{err}");
        }
    }

    #[test]
    fn one_modality_alone_gives_the_same_values_as_the_paired_data() {
        use crate::transfer::Modality;
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (fitted, _) = FittedPreprocessing::fit(&d, &every_step(), 3).unwrap();
        let paired = fitted.apply(&d).unwrap();
        let empty = |m: &CsrMatrix<f32>| {
            CsrMatrix::try_from_csr_data(
                m.nrows(),
                m.ncols(),
                vec![0; m.nrows() + 1],
                vec![],
                vec![],
            )
            .unwrap()
        };
        // RNA only: the paired data's cells that pass the RNA half of cell QC, same values
        let rna_only = PairedDataset {
            atac: empty(&d.atac),
            ..d.clone()
        };
        let t = fitted.apply_one(&rna_only, Modality::Rna).unwrap();
        let genes = preprocess::features_per_cell(&d.rna);
        let want: Vec<usize> = (0..d.n_cells())
            .filter(|&i| (20..=400).contains(&genes[i]))
            .collect();
        assert_eq!(t.cells, want);
        assert!(
            t.cells.len() > paired.cells.len(),
            "the peak threshold no longer applies"
        );
        let pos: Vec<usize> = paired
            .cells
            .iter()
            .map(|c| t.cells.iter().position(|x| x == c).unwrap())
            .collect();
        assert_eq!(select_rows(&t.rna, &pos), paired.rna);
        assert_eq!(
            t.rna_pca.as_ref().unwrap().select(ndarray::Axis(0), &pos),
            *paired.rna_pca.as_ref().unwrap()
        );
        assert!(t.atac_lsi.is_none(), "the ATAC steps are skipped");
        // ATAC only: the same for the peaks
        let atac_only = PairedDataset {
            rna: empty(&d.rna),
            ..d.clone()
        };
        let t = fitted.apply_one(&atac_only, Modality::Atac).unwrap();
        let pos: Vec<usize> = paired
            .cells
            .iter()
            .map(|c| t.cells.iter().position(|x| x == c).unwrap())
            .collect();
        assert_eq!(select_rows(&t.atac, &pos), paired.atac);
        assert_eq!(
            t.atac_lsi.as_ref().unwrap().select(ndarray::Axis(0), &pos),
            *paired.atac_lsi.as_ref().unwrap()
        );
        assert!(t.rna_pca.is_none());
    }

    #[test]
    fn every_step_does_what_it_says() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (fitted, t) = FittedPreprocessing::fit(&d, &every_step(), 3).unwrap();
        // cell QC, computed independently
        let genes = preprocess::features_per_cell(&d.rna);
        let peaks = preprocess::features_per_cell(&d.atac);
        let kept: Vec<usize> = (0..d.n_cells())
            .filter(|&i| (20..=400).contains(&genes[i]) && peaks[i] >= 5)
            .collect();
        assert!(kept.len() < d.n_cells() && kept.len() > 100);
        assert_eq!(t.cells, kept);
        assert_eq!(t.dataset.n_cells(), kept.len());
        assert_eq!(t.rna_pca.as_ref().unwrap().dim(), (kept.len(), 10));
        assert_eq!(t.atac_lsi.as_ref().unwrap().dim(), (kept.len(), 8));
        assert_eq!(fitted.genes.len(), 200);
        assert!(t.dataset.peaks.iter().all(|p| is_autosome(&p.chrom)));
        // clipped at the fitted 99.5th percentile of the normalized values
        let Some(FittedStep::ClipRna { upper, .. }) = fitted
            .steps
            .iter()
            .find(|s| matches!(s, FittedStep::ClipRna { .. }))
        else {
            panic!("no clip step")
        };
        let max = t.rna.values().iter().fold(0.0f32, |m, v| m.max(*v));
        assert!((f64::from(max) - upper).abs() < 1e-5, "{max} vs {upper}");
        // the last step left TF-IDF values as the ATAC input
        let binary = preprocess::binarize(&t.dataset.atac);
        assert_eq!(t.atac, preprocess::tfidf(&binary, 1e4));
        // LSI = truncated SVD (not centred) of muon's TF-IDF without its first component
        let idf = preprocess::peak_idf(&binary);
        let tfidf = preprocess::to_dense(&preprocess::lsi_tfidf(
            &binary,
            &idf,
            crate::config::LsiTfidf::Muon,
            1e4,
        ));
        let svd = pca::fit_uncentered(tfidf.view(), 9, 3).unwrap();
        let lsi = svd.scores.slice(s![.., 1..]).to_owned();
        assert!(max_abs_diff(&lsi, t.atac_lsi.as_ref().unwrap()) < 1e-3);
    }

    #[test]
    fn missing_and_reordered_features_are_matched_and_counted() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (fitted, t) = FittedPreprocessing::fit(&d, &cfg(), 3).unwrap();
        // a new file: genes reversed, lower-cased, the first 10 model genes missing; 5 peaks missing
        let keep_genes: Vec<usize> = (0..d.genes.len())
            .rev()
            .filter(|&g| !fitted.genes[..10].contains(&d.genes[g]))
            .collect();
        let keep_peaks: Vec<usize> = (5..d.peaks.len()).collect();
        let mut other = d.subset_features(&keep_genes, &keep_peaks);
        other.genes = other.genes.iter().map(|g| g.to_lowercase()).collect();
        let model_peak_missing = fitted
            .peaks
            .iter()
            .filter(|p| d.peaks[..5].iter().any(|q| q.to_string() == **p))
            .count();
        let a = fitted.apply(&other).unwrap();
        assert_eq!(a.coverage.genes_found, fitted.genes.len() - 10);
        assert_eq!(
            a.coverage.peaks_found,
            fitted.peaks.len() - model_peak_missing
        );
        // the counts equal the training counts with the missing columns zeroed
        let present: Vec<Option<usize>> = (0..fitted.genes.len())
            .map(|g| (g >= 10).then_some(g))
            .collect();
        assert_eq!(a.dataset.rna, align_columns(&t.dataset.rna, &present));
        assert_eq!(
            select_columns(&a.dataset.rna, &[20, 30]),
            select_columns(&t.dataset.rna, &[20, 30])
        );
    }

    #[test]
    fn a_projection_of_the_wrong_shape_is_an_error() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (mut fitted, _) = FittedPreprocessing::fit(&d, &cfg(), 3).unwrap();
        for step in &mut fitted.steps {
            if let FittedStep::RnaPca { projection } = step {
                projection.mean.pop();
            }
        }
        let err = fitted.apply(&d).unwrap_err().to_string();
        assert!(err.contains("rna_pca") && err.contains("features"), "{err}");
    }
}
