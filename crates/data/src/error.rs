//! One error type for everything that reads or checks data. Every variant names the
//! file (or the in-memory source) and what is wrong with it.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a valid MatrixMarket file: {reason}")]
    MatrixMarket { path: PathBuf, reason: String },
    #[error("{path}, line {line}: {reason}")]
    Parse {
        path: PathBuf,
        line: usize,
        reason: String,
    },
    #[error("{path}: {what} has {got} entries, but {expected_by} needs {expected}")]
    ShapeMismatch {
        path: PathBuf,
        what: String,
        got: usize,
        expected: usize,
        expected_by: String,
    },
    #[error("{path}: {what} at row {row}, column {col} is {value}, not a finite count")]
    NonFinite {
        path: PathBuf,
        what: String,
        row: usize,
        col: usize,
        value: f32,
    },
    #[error("{what} is empty: {reason}")]
    Empty { what: String, reason: String },
    #[error("{what}: {reason}")]
    Invalid { what: String, reason: String },
    /// A size claimed or read is over one of the input [`crossomics_limits::Limits`].
    #[error(transparent)]
    Limit(#[from] crossomics_limits::LimitError),
}

impl DataError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
