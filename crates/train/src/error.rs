//! Errors of model construction, training and checkpoints.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("model input: {0}")]
    Input(String),
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
    Param(#[from] ParamError),
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// A parameter that does not hold, named by its key path within the table that holds it
/// (`[model]` or `[training]`; the runner names the table).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ParamError {
    pub key: String,
    pub reason: String,
}

impl ParamError {
    pub fn new(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The same error for a parameter one table deeper (`chrom_split` + `hidden`).
    pub fn within(self, table: &str) -> Self {
        Self {
            key: format!("{table}.{}", self.key),
            reason: self.reason,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
