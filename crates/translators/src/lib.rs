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
//!
//! Cross-modal prediction: every RNA <-> ATAC model implements
//! [`translate::Translator`] (fit, translate, embed, save, load): [`babel::Babel`]
//! (BABEL, and CrossMP with its gene-activity branch), [`sailerx_translate::SailerxTranslator`]
//! (through the SAILERX latent), and the baselines [`baselines::Ridge`] and
//! [`baselines::KnnRegression`].

pub mod babel;
pub mod baselines;
pub mod error;
pub mod sailerx;
pub mod sailerx_translate;
pub mod tensor;
pub mod train;
pub mod translate;

pub use error::ModelError;
pub use train::{DeviceChoice, EpochRecord, TrainHistory, TrainOptions, Trainable};
pub use translate::{Direction, Prediction, TranslationData, Translator};
