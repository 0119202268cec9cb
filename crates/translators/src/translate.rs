//! Cross-modal prediction (SPEC.md section 2): the [`Translator`] trait that every
//! RNA <-> ATAC model implements, the data contract it reads ([`TranslationData`]) and
//! what it returns ([`Prediction`]).
//!
//! The contract mirrors the NeurIPS 2021 "predict modality" task: a model is fitted on
//! paired cells and then given only the source modality of other cells. A translator never
//! reads files and never sees the target modality of the cells it predicts: `translate`
//! receives a [`TranslationData`] whose target fields may be `None`.
//!
//! Value spaces, the same for every model:
//! - ATAC: binarized peaks in, probabilities (`0..=1`) of a peak being open out.
//! - RNA: log1p of size-factor-normalized counts (`counts / s_i`, `s_i = library_i /
//!   target_sum`, the `normalize_rna` step) in and out; models with a count likelihood
//!   also give expected counts at the normalization target (`s_i = 1`).

use std::path::Path;

use crossomics_data::Csr;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::train::{EpochRecord, TrainHistory, TrainOptions};

/// Which way a translation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Gene expression in, chromatin accessibility out (NeurIPS 2021 "GEX -> ATAC").
    RnaToAtac,
    /// Chromatin accessibility in, gene expression out ("ATAC -> GEX").
    AtacToRna,
}

impl Direction {
    pub const BOTH: [Direction; 2] = [Direction::RnaToAtac, Direction::AtacToRna];

    /// `rna_to_atac` / `atac_to_rna`, as in configs and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RnaToAtac => "rna_to_atac",
            Self::AtacToRna => "atac_to_rna",
        }
    }

    /// `RNA -> ATAC` / `ATAC -> RNA`, for people.
    pub fn arrow(self) -> &'static str {
        match self {
            Self::RnaToAtac => "RNA -> ATAC",
            Self::AtacToRna => "ATAC -> RNA",
        }
    }
}

impl std::fmt::Display for Direction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.arrow())
    }
}

/// Per-cell inputs of a translator; every present field has one row per cell, the same
/// cells in the same order. Fitting needs both modalities; translating needs only the
/// fields of the source modality.
#[derive(Debug, Clone, Copy, Default)]
pub struct TranslationData<'a> {
    /// RNA, log1p normalized (cells x genes).
    pub rna_values: Option<&'a Csr>,
    /// RNA raw counts (the count likelihood's target).
    pub rna_counts: Option<&'a Csr>,
    /// `s_i = library_i / target_sum` of every cell (the count likelihood's scale).
    pub rna_size_factors: Option<&'a [f32]>,
    /// RNA PCA scores (a compact RNA representation for the baselines).
    pub rna_pca: Option<ArrayView2<'a, f32>>,
    /// ATAC, binarized (cells x peaks).
    pub atac: Option<&'a Csr>,
    /// ATAC LSI scores (a compact ATAC representation for the baselines).
    pub atac_lsi: Option<ArrayView2<'a, f32>>,
    /// CrossMP's gene activity: ATAC through the peak-to-gene regulatory potential,
    /// log1p (cells x genes of the activity table).
    pub gene_activity: Option<&'a Csr>,
    /// SAILERX's per-cell alignment weights (training only; all 1 when absent).
    pub cell_weights: Option<&'a [f32]>,
    /// Confounders a decoder is conditioned on (cells x c), e.g. SAILERX's ATAC decoder;
    /// for cells whose ATAC is unknown all 0 (the mean standardized depth, no batch).
    pub covariates: Option<ArrayView2<'a, f32>>,
}

impl<'a> TranslationData<'a> {
    /// The number of cells, from the first field present.
    pub fn n_cells(&self) -> Option<usize> {
        self.rna_values
            .map(|m| m.nrows())
            .or(self.rna_counts.map(|m| m.nrows()))
            .or(self.rna_pca.map(|a| a.nrows()))
            .or(self.atac.map(|m| m.nrows()))
            .or(self.atac_lsi.map(|a| a.nrows()))
            .or(self.gene_activity.map(|m| m.nrows()))
    }

    /// Checks that every present field has the same number of rows and finite values.
    pub fn check(&self) -> Result<()> {
        let n = self
            .n_cells()
            .ok_or_else(|| ModelError::Input("no input at all".into()))?;
        let rows = [
            ("RNA values", self.rna_values.map(|m| m.nrows())),
            ("RNA counts", self.rna_counts.map(|m| m.nrows())),
            ("RNA size factors", self.rna_size_factors.map(<[f32]>::len)),
            ("RNA PCA", self.rna_pca.map(|a| a.nrows())),
            ("ATAC", self.atac.map(|m| m.nrows())),
            ("ATAC LSI", self.atac_lsi.map(|a| a.nrows())),
            ("gene activity", self.gene_activity.map(|m| m.nrows())),
            ("covariates", self.covariates.map(|a| a.nrows())),
            ("cell weights", self.cell_weights.map(<[f32]>::len)),
        ];
        for (what, got) in rows {
            if let Some(got) = got
                && got != n
            {
                return Err(ModelError::Input(format!(
                    "{what} has {got} rows, other inputs {n}"
                )));
            }
        }
        let finite_csr =
            |m: Option<&Csr>| m.is_none_or(|m| m.values().iter().all(|v| v.is_finite()));
        let finite_arr =
            |a: Option<ArrayView2<f32>>| a.is_none_or(|a| a.iter().all(|v| v.is_finite()));
        if !(finite_csr(self.rna_values)
            && finite_csr(self.rna_counts)
            && finite_csr(self.atac)
            && finite_csr(self.gene_activity)
            && finite_arr(self.rna_pca)
            && finite_arr(self.atac_lsi)
            && finite_arr(self.covariates)
            && self
                .rna_size_factors
                .is_none_or(|s| s.iter().all(|v| v.is_finite() && *v > 0.0)))
        {
            return Err(ModelError::Input(
                "non-finite input values (or a size factor that is not positive)".into(),
            ));
        }
        Ok(())
    }

    /// A required field, or an error naming it and what needs it.
    pub fn need<T>(field: Option<T>, what: &str, by: &str) -> Result<T> {
        field.ok_or_else(|| ModelError::Input(format!("{by} needs {what}")))
    }
}

/// A translation of some cells.
#[derive(Debug, Clone, PartialEq)]
pub enum Prediction {
    /// Probability that each peak is open (cells x peaks).
    Atac { probabilities: Array2<f32> },
    /// Expression (cells x genes): log1p normalized, and the expected counts at the
    /// normalization target when the model has a count likelihood.
    Rna {
        log1p: Array2<f32>,
        expected_counts: Option<Array2<f32>>,
    },
}

impl Prediction {
    /// The values the metrics compare with the truth: probabilities, or log1p values.
    pub fn values(&self) -> &Array2<f32> {
        match self {
            Self::Atac { probabilities } => probabilities,
            Self::Rna { log1p, .. } => log1p,
        }
    }
}

/// The training cells of a translator and where its validation loss comes from.
#[derive(Debug, Clone, Copy)]
pub struct FitCells<'c> {
    pub train: &'c [usize],
    /// Disjoint from the test cells, always (the published CrossMP code validated on its
    /// test set).
    pub val: &'c [usize],
}

/// A cross-modal prediction model: fitted on paired cells, then applied to the source
/// modality of new cells. Object safe, so that the runner's registry can hold any;
/// `Send`, so that a server can keep a loaded model behind a lock for its workers.
pub trait Translator: std::fmt::Debug + Send {
    /// The registry name (`babel`, `ridge`, ...).
    fn kind(&self) -> &'static str;
    /// Learns from the paired cells `cells.train` (validation on `cells.val`).
    fn fit(
        &mut self,
        data: &TranslationData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory>;
    /// Predicts the target modality of `cells` from their source modality.
    fn translate(
        &self,
        data: &TranslationData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction>;
    /// A latent embedding of `cells` computed from one modality, when the model has one.
    fn embed(
        &self,
        data: &TranslationData<'_>,
        cells: &[usize],
        from: Direction,
    ) -> Result<Option<Array2<f32>>> {
        let _ = (data, cells, from);
        Ok(None)
    }
    /// Saves what [`Translator::load`] needs into the folder `dir` (files written
    /// atomically).
    fn save(&self, dir: &Path) -> Result<()>;
    /// Loads what [`Translator::save`] wrote into a model built with the same shape.
    fn load(&mut self, dir: &Path) -> Result<()>;
}

/// Rows `cells` of a CSR matrix as a dense `cells x columns` array.
pub fn dense_rows(m: &Csr, cells: &[usize]) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((cells.len(), m.ncols()));
    for (r, &c) in cells.iter().enumerate() {
        let row = m.row(c);
        for (j, v) in row.col_indices().iter().zip(row.values()) {
            out[[r, *j]] = *v;
        }
    }
    out
}

/// Writes `bytes` to `path` through a temporary file beside it.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension("partial");
    let fail = |e: std::io::Error| ModelError::Checkpoint {
        path: path.into(),
        reason: e.to_string(),
    };
    std::fs::write(&tmp, bytes).map_err(fail)?;
    std::fs::rename(&tmp, path).map_err(fail)
}

/// Saves `value` as JSON in `dir/file`, atomically (a translator's fitted parameters).
pub(crate) fn save_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<()> {
    let path = dir.join(file);
    let json = serde_json::to_vec(value).map_err(|e| ModelError::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    write_atomic(&path, &json)
}

/// Loads what [`save_json`] wrote.
pub(crate) fn load_json<T: serde::de::DeserializeOwned>(dir: &Path, file: &str) -> Result<T> {
    let path = dir.join(file);
    let fail = |reason: String| ModelError::Checkpoint {
        path: path.clone(),
        reason,
    };
    let bytes = std::fs::read(&path).map_err(|e| fail(e.to_string()))?;
    serde_json::from_slice(&bytes).map_err(|e| fail(e.to_string()))
}
