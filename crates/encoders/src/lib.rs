//! Encoder and decoder modules for crossomics models (tch).
//!
//! An [`Encoder`] maps a minibatch of cells (and optional covariates) to a latent
//! [`Gaussian`]; a [`Decoder`] maps latent codes (and covariates) back to the parameters
//! of a likelihood. Both are built from [`mlp::Mlp`] blocks whose width, normalization,
//! activation and dropout come from an [`mlp::MlpConfig`].

pub mod gaussian;
pub mod init;
pub mod mlp;

pub use gaussian::{Gaussian, GaussianEncoder, MlpDecoder};
pub use mlp::{Activation, Mlp, MlpConfig, Norm};

use tch::Tensor;

/// Cells (+ covariates) -> a diagonal Gaussian over the latent space.
pub trait Encoder: std::fmt::Debug + Send {
    fn encode(&self, x: &Tensor, covariates: Option<&Tensor>, train: bool) -> Gaussian;
    fn latent_dim(&self) -> i64;
}

/// Latent codes (+ covariates) -> likelihood parameters (e.g. Bernoulli logits).
pub trait Decoder: std::fmt::Debug + Send {
    fn decode(&self, z: &Tensor, covariates: Option<&Tensor>, train: bool) -> Tensor;
}

/// Concatenates covariates to the input along the feature axis, when there are any.
pub fn with_covariates(x: &Tensor, covariates: Option<&Tensor>) -> Tensor {
    match covariates {
        Some(c) if c.size().last().copied().unwrap_or(0) > 0 => Tensor::cat(&[x, c], 1),
        _ => x.shallow_clone(),
    }
}
