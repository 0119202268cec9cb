//! The metric sets of the tasks. Each task declares its metrics as a list of trait
//! objects ([`integration::METRICS`], [`translation::METRICS`]); a metric is a type
//! implementing [`integration::EmbeddingMetric`] or [`translation::PredictionMetric`]
//! (one file) and one line in its task's list. The runner scores every row with the
//! list, in order (the order of a table's columns). Metrics read arrays only, never tch.

pub mod integration;
pub mod translation;

/// What a table row is: a trained model, the inputs alone scored as an embedding, or a
/// trivial baseline model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Model,
    /// the model's inputs (RNA PCA, ATAC LSI, their concatenation) as the embedding
    Input,
    /// a baseline model (per-feature mean, ridge, kNN regression: `ModelSpec::BASELINE`)
    Baseline,
}

impl Role {
    pub fn is_model(&self) -> bool {
        *self == Self::Model
    }
}
