//! What every model of the registry declares: its parameters' check, the prepared inputs
//! it reads, and how it is built for a family (integration, translation).
//!
//! A model's `[model]` table deserializes into its config type `C`; `C::check` turns it
//! into a [`Checked<C>`], the only thing the builders accept, so a model is never built
//! from parameters that were not checked (linfa's checked-parameters pattern).

use std::ops::Deref;

use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tch::Device;

pub use crate::error::ParamError;
use crate::error::Result;
use crate::integrate::Integrator;
use crate::translate::Translator;

/// Parameters that passed their check; only [`ModelSpec::checked`] makes one.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked<C>(C);

impl<C> Deref for Checked<C> {
    type Target = C;
    fn deref(&self) -> &C {
        &self.0
    }
}

impl<C> Checked<C> {
    pub fn into_inner(self) -> C {
        self.0
    }

    /// Another view of checked parameters (a registry variant wrapping them).
    pub fn map<D>(self, f: impl FnOnce(C) -> D) -> Checked<D> {
        Checked(f(self.0))
    }
}

/// The prepared inputs a model reads besides the counts, so that the runner computes
/// only what is read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Needs {
    /// the ATAC LSI (the baselines' compact ATAC input)
    pub atac_lsi: bool,
    /// CrossMP's gene activity (needs `translation.genome`)
    pub gene_activity: bool,
    /// training cells whose RNA is hidden (SAILERX's hybrid mode) can be given
    pub single_modality_cells: bool,
}

/// The shapes of the prepared data a model is built for, saved beside its weights
/// (`model.json`) so that a saved model can be rebuilt for new data.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Shapes {
    pub n_genes: usize,
    pub n_peaks: usize,
    /// decoder confounders of the ATAC side (standardized log depth, batch one-hot, the
    /// hybrid mode's flag)
    pub n_covariates: usize,
    /// decoder confounders of the RNA side (the symmetric SAILERX)
    pub n_rna_covariates: usize,
    /// width of the RNA PCA
    pub n_pcs: usize,
    /// the genes of CrossMP's gene activity, in column order (empty otherwise)
    pub activity_genes: Vec<String>,
    /// the normalization target of the RNA size factors
    pub target_sum: f64,
}

/// What a builder gets: the shapes, the chromosome of every peak (ATAC column), the
/// device.
#[derive(Debug, Clone, Copy)]
pub struct BuildContext<'a> {
    pub shapes: &'a Shapes,
    pub peak_chroms: &'a [String],
    pub device: Device,
}

/// A model's `[model]` parameters: one type per model, registered by one line in
/// [`crate::registry`].
pub trait ModelSpec:
    std::fmt::Debug + Clone + PartialEq + Default + Serialize + DeserializeOwned
{
    /// Whether the model embeds cells of both modalities into a latent space scored as
    /// an integration (`task = "integration"`).
    const INTEGRATES: bool = false;
    /// Whether the model predicts one modality from the other (`task = "translation"`).
    const TRANSLATES: bool = false;
    /// Whether the model is a trivial or classical baseline (per-feature mean, ridge,
    /// kNN regression) that tables compare the other models against.
    const BASELINE: bool = false;

    /// Checks the parameters on their own (no data needed); errors name the key.
    fn check(&self) -> Result<(), ParamError>;

    /// The checked parameters.
    fn checked(&self) -> Result<Checked<Self>, ParamError> {
        self.check()?;
        Ok(Checked(self.clone()))
    }

    /// The prepared inputs the model reads.
    fn needs(&self) -> Needs {
        Needs::default()
    }

    /// The integrator of these parameters (models with `INTEGRATES`).
    fn integrator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Integrator>> {
        let _ = (this, ctx);
        Err(crate::ModelError::Input(
            "this model kind does not integrate".into(),
        ))
    }

    /// The translator of these parameters (models with `TRANSLATES`).
    fn translator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        let _ = (this, ctx);
        Err(crate::ModelError::Input(
            "this model kind does not translate".into(),
        ))
    }
}

/// Checks every model shares: a latent size of at least 1, named by its key.
pub fn check_latent_dim(latent_dim: i64) -> Result<(), ParamError> {
    if latent_dim < 1 {
        return Err(ParamError::new("latent_dim", format!("{latent_dim} < 1")));
    }
    Ok(())
}

/// Each `(key, weight)` a finite non-negative number.
pub fn check_weights(weights: &[(&str, f64)]) -> Result<(), ParamError> {
    match weights.iter().find(|(_, v)| !(*v >= 0.0 && v.is_finite())) {
        Some((key, v)) => Err(ParamError::new(
            *key,
            format!("{v} is not a non-negative number"),
        )),
        None => Ok(()),
    }
}

/// Each `(key, layer widths)` at least 1 wide.
pub fn check_widths(widths: &[(&str, &[i64])]) -> Result<(), ParamError> {
    match widths.iter().find(|(_, w)| w.iter().any(|h| *h < 1)) {
        Some((key, _)) => Err(ParamError::new(*key, "layer widths must be >= 1")),
        None => Ok(()),
    }
}
