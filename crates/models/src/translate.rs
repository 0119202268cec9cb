//! Cross-modal prediction (`docs/models.md`): the [`Translator`] trait that every
//! RNA <-> ATAC model implements, the data it reads ([`CellData`]) and
//! what it returns ([`Prediction`]).
//!
//! The contract mirrors the NeurIPS 2021 "predict modality" task: a model is fitted on
//! paired cells and then given only the source modality of other cells. A translator never
//! reads files and never sees the target modality of the cells it predicts: `translate`
//! receives a [`CellData`] whose target fields may be `None`.
//!
//! Value spaces, the same for every model:
//! - ATAC: binarized peaks in, probabilities (`0..=1`) of a peak being open out.
//! - RNA: log1p of size-factor-normalized counts (`counts / s_i`, `s_i = library_i /
//!   target_sum`, the `normalize_rna` step) in and out; models with a count likelihood
//!   also give expected counts at the normalization target (`s_i = 1`).

use std::path::Path;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::data::{CellData, FitCells};
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

/// A cross-modal prediction model: fitted on paired cells, then applied to the source
/// modality of new cells. Object safe, so that the runner's registry can hold any;
/// `Send`, so that a server can keep a loaded model behind a lock for its workers.
pub trait Translator: std::fmt::Debug + Send {
    /// Learns from the paired cells `cells.train` (validation on `cells.val`).
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory>;
    /// Predicts the target modality of `cells` from their source modality.
    fn translate(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction>;
    /// A latent embedding of `cells` computed from one modality, when the model has one.
    fn embed(
        &self,
        data: &CellData<'_>,
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

/// Saves `value` as JSON in `dir/file`, atomically (a translator's fitted parameters).
pub(crate) fn save_json<T: Serialize>(dir: &Path, file: &str, value: &T) -> Result<()> {
    let path = dir.join(file);
    let json = serde_json::to_vec(value).map_err(|e| ModelError::Checkpoint {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    crossomics_atomic::write(&path, &json).map_err(|e| ModelError::Checkpoint {
        path,
        reason: e.to_string(),
    })
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

/// Saves a model's weights as safetensors (PyTorch-compatible names), whole or not at all.
pub fn save_var_store(vs: &tch::nn::VarStore, path: &Path) -> Result<()> {
    let fail = |reason: String| ModelError::Checkpoint {
        path: path.into(),
        reason,
    };
    crossomics_atomic::write_with(
        path,
        |tmp| vs.save(tmp).map_err(|e| fail(e.to_string())),
        |e| fail(e.to_string()),
    )
}
