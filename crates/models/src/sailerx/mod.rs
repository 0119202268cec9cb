//! SAILERX (Cao et al., NAR 50(21):e121, 2022): an ATAC VAE whose latent space is made
//! invariant to technical confounders and aligned with RNA through the agreement of
//! pairwise cosine similarities (`docs/models.md`, section "SAILERX").
//!
//! Loss per minibatch (main phase), with `q(z|x) = N(mu, diag exp(logvar))`:
//!
//! ```text
//! L = w_kl KL(q || N(0, I))                                   summed
//!   + recon_weight * BCE_with_logits(dec([z, c]), x)           summed
//!   + w_kl * lambda * (mean_ij KL(q_i || q_j) - d / 2)         invariance
//!   + gamma * sum_ij w_i w_j (cos(p_i, p_j) - cos(mu_i, mu_j))^2  structural similarity
//! ```
//! `c` are the confounders the decoder is conditioned on (standardized log ATAC depth,
//! batch one-hot), `p` the RNA PCA, `w` the per-cell depth weights, `w_kl` cyclical.
//! Warm-up epochs optimise `mean BCE + gamma * mean_ij (cos p - cos mu)^2` without KL.
//!
//! Ablations swap the alignment term (`alignment`, see [`Alignment`]) or switch a term off

mod input;
mod integrate;
mod module;
mod plan;
mod spec;
mod translate;

#[cfg(test)]
mod tests;

use crossomics_encoders::{ChromSplitConfig, MlpConfig};
use serde::{Deserialize, Serialize};

pub use crate::align::Alignment;
pub use input::{RnaInput, SailerxInput};
pub use module::Sailerx;
pub use spec::build;
pub use translate::SailerxTranslator;

/// The KL weight schedule (the `kl_schedule` key), over main-phase steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlAnnealing {
    /// SAILERX: rises from 0 to 1 over half of every `kl_period_epochs`, then holds.
    #[default]
    Cyclical,
    /// Rises from 0 to 1 over the first `kl_period_epochs`, then stays at 1.
    Linear,
    /// Always 1.
    Constant,
}

/// The ATAC encoder and decoder (the `architecture` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Fully connected encoder and decoder (`encoder`, `decoder` widths) on dense input.
    #[default]
    Mlp,
    /// The paper's chromosome-split encoder and decoder (`chrom_split`): one block of
    /// layers per chromosome, small contigs merged; the first layer reads the CSR rows
    /// when `sparse_input` is on.
    ChromSplit,
}

/// The `[model]` parameters of `kind = "sailerx"`; defaults are the published ones, except
/// `architecture` (`mlp` until the chromosome-split runs are benchmarked here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SailerxConfig {
    pub latent_dim: i64,
    pub encoder: MlpConfig,
    pub decoder: MlpConfig,
    /// lambda: weight of the invariance (pairwise KL) term.
    pub invariance_weight: f64,
    /// gamma: weight of the structural-similarity term.
    pub alignment_weight: f64,
    /// Scales the summed BCE (the published `pos_w = 20`).
    pub recon_weight: f64,
    /// Period of the cyclical KL weight (warm-up length of the linear one), in epochs.
    pub kl_period_epochs: u64,
    /// How the KL weight (of the KL and invariance terms) evolves.
    pub kl_schedule: KlAnnealing,
    /// Weight cells by their RNA/ATAC depth ratio in the alignment term.
    pub cell_weights: bool,
    /// The alignment term (ablations): `structural` is the paper's.
    pub alignment: Alignment,
    /// Temperature of the `structural_kl` and `contrastive` alignments.
    pub temperature: f64,
    pub architecture: Architecture,
    /// Shape of the `chrom_split` modules (`hidden`, `norm`, `activation`, `dropout`,
    /// `min_peaks_per_group`, `sparse_kernel`).
    pub chrom_split: ChromSplitConfig,
    /// `chrom_split` only: compute the first layer from the CSR rows (cost ~ non-zeros)
    /// instead of the densified rows; the same function to rounding.
    pub sparse_input: bool,
    /// The symmetric extension (`docs/models.md`, not in the paper): an RNA VAE beside the ATAC
    /// one (MLP encoder on the normalized RNA with the `encoder` widths, negative binomial
    /// decoder on the counts with the `decoder` widths, softmax mean times the library
    /// size, per-gene dispersion, conditioned on the standardized log RNA depth), its own
    /// KL and invariance terms, and the alignment between the two latent means instead of
    /// against the RNA PCA. The embedding is then `[mu_atac, mu_rna]` (2 x latent_dim).
    pub symmetric: bool,
    /// Reproduce the published code's quirk (`docs/models.md`): the reparameterised sample uses
    /// std = exp(logvar) while the KL assumes exp(logvar / 2). Off: the correct sampling.
    pub faithful: bool,
}

impl Default for SailerxConfig {
    fn default() -> Self {
        let mlp = |hidden: Vec<i64>| MlpConfig {
            hidden,
            ..MlpConfig::default()
        };
        Self {
            latent_dim: 50,
            encoder: mlp(vec![64, 32]),
            decoder: mlp(vec![32, 64]),
            invariance_weight: 1.0,
            alignment_weight: 6000.0,
            recon_weight: 20.0,
            kl_period_epochs: 100,
            kl_schedule: KlAnnealing::Cyclical,
            cell_weights: true,
            alignment: Alignment::Structural,
            temperature: 0.1,
            architecture: Architecture::Mlp,
            chrom_split: ChromSplitConfig::default(),
            sparse_input: true,
            symmetric: false,
            faithful: false,
        }
    }
}
