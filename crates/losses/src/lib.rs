//! Losses for multimodal VAEs, as pure functions of tensors (tch).
//!
//! - [`kl`]: KL divergence to the standard normal, and between all pairs of cells'
//!   posteriors (the SAILER/SAILERX invariance term).
//! - [`similarity`]: structural-similarity alignment of two modalities (SAILERX) and the
//!   SAILERX per-cell weights.
//! - [`recon`]: reconstruction negative log-likelihoods.
//! - [`schedule`]: KL weight schedules (constant, linear warm-up, cyclical).
//!
//! Every function documents its formula; tests check each against a brute-force loop
//! and its gradient against finite differences.

pub mod kl;
pub mod recon;
pub mod schedule;
pub mod similarity;

pub use schedule::KlSchedule;
