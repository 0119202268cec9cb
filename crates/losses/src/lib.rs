//! Losses for multimodal VAEs, as pure functions of tensors (tch).
//!
//! - [`kl`]: KL divergence to the standard normal, and between all pairs of cells'
//!   posteriors (the SAILER/SAILERX invariance term).
//! - [`similarity`]: structural-similarity alignment of two modalities (SAILERX: squared
//!   differences of cosine-similarity matrices; and a softmax-KL variant,
//!   [`similarity::structural_kl`]) and the SAILERX per-cell weights.
//! - [`alignment`]: other alignment strategies for paired cells: contrastive (CLIP
//!   symmetric InfoNCE) and hard (MSE between the latent means).
//! - [`recon`]: reconstruction negative log-likelihoods for every decoder head: Bernoulli
//!   (logits), negative binomial, zero-inflated NB, Poisson, Gaussian (learned or fixed
//!   variance); element-wise `log_*` and summed `*_sum` forms.
//! - [`schedule`]: KL weight schedules (constant, linear warm-up, cyclical).
//!
//! Every function documents its formula; tests check each against a brute-force loop
//! and its gradient against finite differences.

pub mod alignment;
pub mod kl;
pub mod recon;
pub mod schedule;
pub mod similarity;

pub use schedule::KlSchedule;
