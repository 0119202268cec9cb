//! Errors of model construction, training and checkpoints.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model input: {0}")]
    Input(String),
    #[error("model parameter `{name}`: {reason}")]
    Parameter { name: &'static str, reason: String },
    #[error("training diverged at epoch {epoch}: loss part `{part}` is {value}")]
    Diverged {
        epoch: usize,
        part: String,
        value: f64,
    },
    #[error("checkpoint {path}: {reason}")]
    Checkpoint { path: PathBuf, reason: String },
    #[error("device `{0}` is not available on this machine")]
    Device(String),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
