//! The crossomics models (tch), by family, behind common traits.
//!
//! - [`integrate::Integrator`]: models that embed paired cells into a latent space
//!   (SAILERX, [`sailerx::Sailerx`]).
//! - [`translate::Translator`]: models that predict one modality from the other (BABEL
//!   and CrossMP, [`babel::Babel`]; translation through SAILERX's latent,
//!   [`sailerx::SailerxTranslator`]; the baselines [`baselines::Ridge`],
//!   [`baselines::KnnRegression`], [`baselines::Mean`]).
//!
//! Every model reads the same prepared inputs ([`data::CellData`]); its parameters are a
//! [`spec::ModelSpec`] (check, the inputs it needs, builders), registered by one line in
//! [`registry`]. Alignment strategies ([`align`]) are shared by every model that aligns
//! two latents. Training goes through the one loop of `crossomics-train`. Models never
//! read files: the runner hands them in-memory inputs built by `crossomics-data`.

pub mod align;
pub mod babel;
pub mod baselines;
pub mod data;
pub mod integrate;
pub mod registry;
pub mod sailerx;
pub mod spec;
pub mod translate;

pub use crossomics_train as train;
pub use crossomics_train::{error, tensor};

pub use data::{CellData, FitCells};
pub use error::{ModelError, ParamError};
pub use integrate::Integrator;
pub use registry::ModelConfig;
pub use spec::{BuildContext, Checked, ModelSpec, Needs, Shapes};
pub use train::{DeviceChoice, EpochRecord, TrainHistory, TrainOptions, Trainable};
pub use translate::{Direction, Prediction, Translator};
