//! Encoder and decoder modules for crossomics models (tch).
//!
//! An [`Encoder`] maps a minibatch of cells (and optional covariates) to a latent
//! [`Gaussian`]; a [`Decoder`] maps latent codes (and covariates) back to the raw output
//! of the model (e.g. Bernoulli logits), a [`LikelihoodDecoder`] to the named
//! parameters of a [`Likelihood`]. Encoders whose first layer can read sparse input
//! implement [`SparseEncoder`] and take a [`CsrBatch`] (plain CSR slices, so that this
//! crate depends on no other crate of the workspace).
//!
//! | module | what |
//! | --- | --- |
//! | [`mlp`] | `Linear - Norm - Activation - Dropout` blocks ([`MlpConfig`]) |
//! | [`gaussian`] | the latent [`Gaussian`], [`GaussianEncoder`], [`MlpDecoder`] |
//! | [`chrom`] | SAILERX/BABEL chromosome-split [`ChromSplitEncoder`] / [`ChromSplitDecoder`] ([`ChromSplitConfig`]) |
//! | [`groups`] | peaks grouped by chromosome, small contigs merged ([`ChromGroups`]) |
//! | [`sparse`] | the sparse (block-diagonal) first layer [`SparseLinear`] on CSR rows |
//! | [`heads`] | likelihood heads ([`HeadConfig`], [`LikelihoodHead`], [`HeadDecoder`]) for Bernoulli, NB, ZINB, Poisson, Gaussian |
//! | [`csr`] | [`CsrBatch`], a minibatch of CSR rows |
//!
//! Decoders are conditioned on covariates (standardized log depth, batch one-hot) by
//! concatenating them to `z` ([`with_covariates`]).

pub mod chrom;
pub mod csr;
pub mod gaussian;
pub mod groups;
pub mod heads;
pub mod init;
pub mod mlp;
pub mod sparse;

mod blocks;

pub use chrom::{ChromSplitConfig, ChromSplitDecoder, ChromSplitEncoder};
pub use csr::CsrBatch;
pub use gaussian::{Gaussian, GaussianEncoder, MlpDecoder};
pub use groups::{ChromGroups, OTHER_GROUP, PeakGroup, chromosome_of_peak};
pub use heads::{
    Dispersion, HeadConfig, HeadDecoder, Likelihood, LikelihoodHead, LikelihoodKind, MeanLink,
};
pub use mlp::{Activation, Mlp, MlpConfig, Norm};
pub use sparse::{SparseKernel, SparseLinear};

use tch::Tensor;

/// Errors of module construction and input validation; messages name the config key or
/// the offending input.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    #[error("invalid CSR batch: {0}")]
    Csr(String),
    #[error("invalid peak groups: {0}")]
    Groups(String),
    #[error("invalid value for `{key}`: {msg}")]
    Config { key: &'static str, msg: String },
}

/// Cells (+ covariates) -> a diagonal Gaussian over the latent space.
pub trait Encoder: std::fmt::Debug + Send {
    fn encode(&self, x: &Tensor, covariates: Option<&Tensor>, train: bool) -> Gaussian;
    fn latent_dim(&self) -> i64;
}

/// An encoder that also reads its input as CSR rows, at a cost that scales with the
/// number of stored entries; `encode_csr(x)` equals `encode(x.to_dense())`.
pub trait SparseEncoder: Encoder {
    fn encode_csr(&self, x: &CsrBatch<'_>, covariates: Option<&Tensor>, train: bool) -> Gaussian;
}

/// Latent codes (+ covariates) -> likelihood parameters (e.g. Bernoulli logits).
pub trait Decoder: std::fmt::Debug + Send {
    fn decode(&self, z: &Tensor, covariates: Option<&Tensor>, train: bool) -> Tensor;
}

/// Latent codes (+ covariates) -> the named parameters of a likelihood. `scale` `[B]`
/// is the library size or size factor that count likelihoods multiply their mean by
/// (see [`LikelihoodHead::forward`]); `None` means 1.
pub trait LikelihoodDecoder: std::fmt::Debug + Send {
    fn decode_likelihood(
        &self,
        z: &Tensor,
        covariates: Option<&Tensor>,
        scale: Option<&Tensor>,
        train: bool,
    ) -> Likelihood;
}

/// Concatenates covariates to the input along the feature axis, when there are any.
pub fn with_covariates(x: &Tensor, covariates: Option<&Tensor>) -> Tensor {
    match covariates {
        Some(c) if c.size().last().copied().unwrap_or(0) > 0 => Tensor::cat(&[x, c], 1),
        _ => x.shallow_clone(),
    }
}
