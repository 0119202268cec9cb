//! Integration: the [`Integrator`] trait that every model embedding paired cells into a
//! latent space implements (SAILERX, and any new architecture), beside
//! [`crate::translate::Translator`]. The runner scores what [`Integrator::embed`]
//! returns with the integration metrics.

use std::path::Path;

use ndarray::Array2;

use crate::data::{CellData, FitCells};
use crate::error::Result;
use crate::train::{EpochRecord, TrainHistory, TrainOptions};

/// A model that learns a latent space of paired cells. Object safe (the registry builds
/// any) and `Send`.
pub trait Integrator: std::fmt::Debug + Send {
    /// Learns from the paired cells `cells.train` (validation on `cells.val`; the
    /// single-modality cells `cells.extra` when the model's [`crate::spec::Needs`] says it
    /// takes them).
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory>;

    /// The latent embedding of `cells` (rows in `cells` order).
    fn embed(&self, data: &CellData<'_>, cells: &[usize]) -> Result<Array2<f32>>;

    /// The model's reconstruction loss of `cells` per cell and modality, named by the
    /// modality (`atac`, `rna`): a label-free metric of held-out cells. Default: none.
    fn reconstruction(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        batch_size: usize,
    ) -> Result<Vec<(&'static str, f64)>> {
        let _ = (data, cells, batch_size);
        Ok(Vec::new())
    }

    /// Saves what [`Integrator::load`] needs into the folder `dir`.
    fn save(&self, dir: &Path) -> Result<()>;

    /// Loads what [`Integrator::save`] wrote into a model built with the same shape.
    fn load(&mut self, dir: &Path) -> Result<()>;
}
