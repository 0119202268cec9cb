//! The one error type of the crate.

use thiserror::Error;

/// Everything that can go wrong when computing a metric.
///
/// Degenerate inputs (one cluster, one cell, constant vectors) either get a defined
/// result, documented on the metric, or one of these errors; no metric panics.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricError {
    /// Two inputs that must describe the same items have different lengths.
    #[error("length mismatch for {what}: expected {expected}, got {got}")]
    LengthMismatch {
        /// Which input (e.g. `"labels_pred"`).
        what: &'static str,
        /// Length implied by the other inputs.
        expected: usize,
        /// Length actually given.
        got: usize,
    },
    /// Two matrices that must share a column space have different widths.
    #[error("dimension mismatch for {what}: expected {expected} columns, got {got}")]
    DimensionMismatch {
        /// Which input.
        what: &'static str,
        /// Expected number of columns.
        expected: usize,
        /// Number of columns given.
        got: usize,
    },
    /// An input has no rows, columns or labels.
    #[error("empty input: {what}")]
    Empty {
        /// Which input.
        what: &'static str,
    },
    /// A NaN or infinity was found.
    #[error("non-finite value in {what}, row {row}")]
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Row (cell) holding the first non-finite value.
        row: usize,
    },
    /// A parameter is out of its valid range.
    #[error("invalid parameter {name}: {reason}")]
    InvalidParameter {
        /// Parameter name as in the function signature.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The metric is undefined for this input (e.g. silhouette with one cluster).
    #[error("metric undefined for this input: {0}")]
    Degenerate(String),
}

impl MetricError {
    pub(crate) fn invalid(name: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParameter {
            name,
            reason: reason.into(),
        }
    }

    pub(crate) fn degenerate(reason: impl Into<String>) -> Self {
        Self::Degenerate(reason.into())
    }
}
