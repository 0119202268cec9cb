//! Translation through the SAILERX integrator's latent space: encode one modality,
//! decode the other.
//!
//! SAILERX trains only an ATAC VAE whose latent means are aligned with the RNA PCA's
//! similarity structure (not its coordinates), so two linear maps, fitted on the
//! training cells after the VAE (ridge, penalty chosen on the validation cells), connect
//! the latent space with RNA:
//! - RNA -> ATAC: RNA PCA -> (ridge) -> latent point -> the SAILERX ATAC decoder, with
//!   the confounders at their reference (0: the mean depth, no batch), -> peak
//!   probabilities.
//! - ATAC -> RNA: ATAC -> the SAILERX encoder's mean -> (ridge) -> log1p-normalized RNA.

use std::path::Path;

use ndarray::Array2;

use super::input::Placeholders;
use super::{Sailerx, SailerxInput};
use crate::baselines::{LinearMap, RidgeConfig, Rows, fit_dense_map, pick_on_validation};
use crate::data::{CellData, FitCells};
use crate::error::{ModelError, Result};
use crate::train::{self, EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{Direction, Prediction, Translator, load_json, save_json};

/// A SAILERX model with the maps that make it a translator.
#[derive(Debug)]
pub struct SailerxTranslator {
    pub model: Sailerx,
    ridge: RidgeConfig,
    /// RNA PCA -> latent
    to_latent: Option<LinearMap>,
    /// latent -> log1p-normalized RNA
    to_rna: Option<LinearMap>,
}

impl SailerxTranslator {
    /// Wraps a SAILERX model built for the data (not the symmetric variant).
    pub fn new(model: Sailerx) -> Result<Self> {
        if model.config().symmetric {
            return Err(ModelError::from(crate::ParamError::new(
                "symmetric",
                "translation through SAILERX uses the ATAC VAE of the paper; set symmetric = false",
            )));
        }
        Ok(Self {
            model,
            ridge: RidgeConfig::default(),
            to_latent: None,
            to_rna: None,
        })
    }
}

impl Translator for SailerxTranslator {
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        let spare = Placeholders::of(data);
        let input = SailerxInput::from_cells(data, &spare, true, false)?;
        input.check()?;
        let history = train::fit(
            &self.model,
            &input,
            cells.train,
            cells.val,
            opts,
            seed,
            observer,
        )?;
        let mu = self
            .model
            .embed_input(&input, &(0..input.atac.nrows()).collect::<Vec<_>>())?;
        let pca = CellData::need(data.rna_pca, "the RNA PCA", "SAILERX RNA -> ATAC")?;
        self.to_latent = Some(fit_dense_map(pca, mu.view(), cells, &self.ridge.alphas)?);
        let rna = CellData::need(
            data.rna_values,
            "log1p-normalized RNA",
            "SAILERX ATAC -> RNA",
        )?;
        let maps = LinearMap::fit_all(mu.view(), Rows::Csr(rna), cells.train, &self.ridge.alphas)?;
        let best = pick_on_validation(maps, cells.val, rna, |m| {
            Ok(m.apply(mu.view(), cells.val)?.mapv(|v| v.max(0.0)))
        })?;
        self.to_rna = Some(best);
        Ok(history)
    }

    fn translate(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let not_fitted = || ModelError::Input("SAILERX translation: not fitted".into());
        match direction {
            Direction::RnaToAtac => {
                let map = self.to_latent.as_ref().ok_or_else(not_fitted)?;
                let pca = CellData::need(data.rna_pca, "the RNA PCA", "SAILERX RNA -> ATAC")?;
                let z = map.apply(pca, cells)?;
                let cov = CellData::need(
                    data.covariates,
                    "the decoder confounders",
                    "SAILERX RNA -> ATAC",
                )?;
                let cov = cov.select(ndarray::Axis(0), cells);
                Ok(Prediction::Atac {
                    probabilities: self.model.decode_probabilities(z.view(), cov.view())?,
                })
            }
            Direction::AtacToRna => {
                let map = self.to_rna.as_ref().ok_or_else(not_fitted)?;
                let z = self.embed_atac(data, cells)?;
                let all: Vec<usize> = (0..cells.len()).collect();
                Ok(Prediction::Rna {
                    log1p: map.apply(z.view(), &all)?.mapv(|v| v.max(0.0)),
                    expected_counts: None,
                })
            }
        }
    }

    fn embed(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        from: Direction,
    ) -> Result<Option<Array2<f32>>> {
        match from {
            Direction::AtacToRna => self.embed_atac(data, cells).map(Some),
            Direction::RnaToAtac => {
                let map = self
                    .to_latent
                    .as_ref()
                    .ok_or_else(|| ModelError::Input("SAILERX translation: not fitted".into()))?;
                let pca = CellData::need(data.rna_pca, "the RNA PCA", "SAILERX")?;
                map.apply(pca, cells).map(Some)
            }
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save_weights(&dir.join("model.safetensors"))?;
        save_json(dir, "sailerx_maps.json", &(&self.to_latent, &self.to_rna))
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.model.load_weights(&dir.join("model.safetensors"))?;
        (self.to_latent, self.to_rna) = load_json(dir, "sailerx_maps.json")?;
        Ok(())
    }
}

impl SailerxTranslator {
    /// The SAILERX encoder's means of `cells` (rows of the result in `cells` order).
    fn embed_atac(&self, data: &CellData<'_>, cells: &[usize]) -> Result<Array2<f32>> {
        let spare = Placeholders::of(data);
        let input = SailerxInput::from_cells(data, &spare, false, false)?;
        self.model.embed_input(&input, cells)
    }
}
