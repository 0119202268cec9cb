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

use crate::baselines::{LinearMap, RidgeConfig, Rows, fit_dense_map, pick_on_validation};
use crate::error::{ModelError, Result};
use crate::sailerx::{Sailerx, SailerxInput};
use crate::train::{self, EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{
    Direction, FitCells, Prediction, TranslationData, Translator, load_json, save_json,
};

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
            return Err(ModelError::Parameter {
                name: "model.symmetric",
                reason: "translation through SAILERX uses the ATAC VAE of the paper; set symmetric = false".into(),
            });
        }
        Ok(Self {
            model,
            ridge: RidgeConfig::default(),
            to_latent: None,
            to_rna: None,
        })
    }

    /// The SAILERX input of `data`; `need_pca`: training (the alignment target). (Views
    /// are re-borrowed: ndarray's views do not shorten their lifetime by themselves.)
    fn input<'a>(
        data: &'a TranslationData<'_>,
        zeros: &'a (Array2<f32>, Vec<f32>),
        need_pca: bool,
    ) -> Result<SailerxInput<'a>> {
        let by = "SAILERX";
        let atac: &'a crossomics_data::Csr =
            TranslationData::need(data.atac, "binarized ATAC", by)?;
        let covariates =
            TranslationData::need(data.covariates.as_ref(), "the decoder confounders", by)?.view();
        let rna_pca = match data.rna_pca.as_ref() {
            Some(p) => p.view(),
            None if !need_pca => zeros.0.view(),
            None => {
                return Err(ModelError::Input(
                    "training SAILERX needs the RNA PCA".into(),
                ));
            }
        };
        Ok(SailerxInput {
            atac,
            rna_pca,
            covariates,
            cell_weights: data.cell_weights.unwrap_or(&zeros.1),
            rna: None,
        })
    }

    /// Placeholders for the inputs that embedding does not read.
    fn placeholders(data: &TranslationData<'_>, n_pcs: usize) -> (Array2<f32>, Vec<f32>) {
        let n = data.n_cells().unwrap_or(0);
        (Array2::zeros((n, n_pcs)), vec![1.0; n])
    }

    fn n_pcs(&self) -> usize {
        self.to_latent.as_ref().map_or(0, |m| m.n_in)
    }
}

impl Translator for SailerxTranslator {
    fn kind(&self) -> &'static str {
        "sailerx"
    }

    fn fit(
        &mut self,
        data: &TranslationData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        let placeholders = Self::placeholders(data, 0);
        let input = Self::input(data, &placeholders, true)?;
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
            .embed(&input, &(0..input.atac.nrows()).collect::<Vec<_>>())?;
        let pca = TranslationData::need(data.rna_pca, "the RNA PCA", "SAILERX RNA -> ATAC")?;
        self.to_latent = Some(fit_dense_map(pca, mu.view(), cells, &self.ridge.alphas)?);
        let rna = TranslationData::need(
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
        data: &TranslationData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let not_fitted = || ModelError::Input("SAILERX translation: not fitted".into());
        match direction {
            Direction::RnaToAtac => {
                let map = self.to_latent.as_ref().ok_or_else(not_fitted)?;
                let pca =
                    TranslationData::need(data.rna_pca, "the RNA PCA", "SAILERX RNA -> ATAC")?;
                let z = map.apply(pca, cells)?;
                let cov = TranslationData::need(
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
        data: &TranslationData<'_>,
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
                let pca = TranslationData::need(data.rna_pca, "the RNA PCA", "SAILERX")?;
                map.apply(pca, cells).map(Some)
            }
        }
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.model.save(&dir.join("model.safetensors"))?;
        save_json(dir, "sailerx_maps.json", &(&self.to_latent, &self.to_rna))
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.model.load(&dir.join("model.safetensors"))?;
        (self.to_latent, self.to_rna) = load_json(dir, "sailerx_maps.json")?;
        Ok(())
    }
}

impl SailerxTranslator {
    /// The SAILERX encoder's means of `cells` (rows of the result in `cells` order).
    fn embed_atac(&self, data: &TranslationData<'_>, cells: &[usize]) -> Result<Array2<f32>> {
        let placeholders = Self::placeholders(data, self.n_pcs());
        let input = Self::input(data, &placeholders, false)?;
        self.model.embed(&input, cells)
    }
}
