//! Trainable crossomics models behind common traits (tch).
//!
//! A model implements [`train::Trainable`]: given its input and a minibatch of cell
//! indices it returns a [`train::LossOutput`] (the total loss plus named parts), and the
//! one generic [`train::fit`] loop does the rest (optimiser, schedules, validation,
//! early stopping, progress) for every model alike. Models never read files: the runner
//! hands them in-memory inputs built by `crossomics-data`.
//!
//! Models: [`sailerx::Sailerx`], the SAILERX integrator (ATAC VAE, invariance to
//! confounders, structural-similarity alignment to the RNA PCA).

pub mod error;
pub mod sailerx;
pub mod tensor;
pub mod train;

pub use error::ModelError;
pub use train::{DeviceChoice, EpochRecord, TrainHistory, TrainOptions, Trainable};
