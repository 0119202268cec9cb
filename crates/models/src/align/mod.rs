//! Alignment strategies: how a model ties one modality's latent means to a second
//! representation of the same cells (the RNA PCA, or the RNA VAE's latent means). Any
//! model that aligns two latents builds one with [`Alignment::build`] and calls
//! [`Aligner::align`] on each minibatch. A new strategy is one file implementing
//! [`Aligner`] and [`BuildAligner`], and one line in the `alignments!` list.
//!
//! The definitions are in `docs/models.md` (section "Alignment strategies").

mod contrastive;
mod hard;
mod structural;
mod structural_kl;

use serde::{Deserialize, Serialize};
use tch::{Tensor, nn};

pub use contrastive::Contrastive;
pub use hard::Hard;
pub use structural::Structural;
pub use structural_kl::StructuralKl;

/// One alignment term between `target` rows (cells x t) and latent means `mu` (cells x
/// d) of the same cells.
pub trait Aligner: std::fmt::Debug + Send {
    /// The term for a minibatch: averaged over pairs when `mean` (SAILERX's warm-up),
    /// else summed as the model's loss sums; `weights` are per-cell weights (SAILERX's
    /// depth ratios) for the strategies that use them.
    fn align(&self, target: &Tensor, mu: &Tensor, weights: Option<&Tensor>, mean: bool) -> Tensor;
}

/// What a strategy is built with.
#[derive(Debug, Clone, Copy)]
pub struct AlignSpec<'p> {
    /// Where a strategy's parameters live (a learned projection).
    pub path: &'p nn::Path<'p>,
    /// Width of the target rows; `None` when the target is already in the latent space
    /// (the symmetric SAILERX's RNA latent), so that nothing is projected.
    pub target_dim: Option<i64>,
    pub latent_dim: i64,
    pub temperature: f64,
}

/// A strategy built from its [`AlignSpec`] (what its registry line calls).
pub trait BuildAligner: Aligner + Sized + 'static {
    fn build(spec: &AlignSpec<'_>) -> Self;
}

macro_rules! alignments {
    ($($(#[$meta:meta])* $variant:ident => $strategy:ty,)+) => {
        /// The registry of strategies (the `alignment` key): one line per strategy.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum Alignment {
            $($(#[$meta])* $variant,)+
            /// No alignment term.
            None,
        }

        impl Alignment {
            /// The strategy's term, or `None` for [`Alignment::None`].
            pub fn build(self, spec: &AlignSpec<'_>) -> Option<Box<dyn Aligner>> {
                match self {
                    $(Self::$variant => Some(Box::new(<$strategy as BuildAligner>::build(spec))),)+
                    Self::None => None,
                }
            }
        }
    };
}

alignments! {
    /// SAILERX: `sum_ij w_i w_j (cos(p_i, p_j) - cos(mu_i, mu_j))^2` (the paper).
    #[default]
    Structural => Structural,
    /// KL between the row-softmax distributions of the two cosine-similarity matrices
    /// (`temperature`), weighted per cell.
    StructuralKl => StructuralKl,
    /// Symmetric InfoNCE (CLIP) between a learned linear projection of the target and the
    /// latent means (`temperature`): a shared space, cell by cell.
    Contrastive => Contrastive,
    /// Mean squared error between a learned linear projection of the target and the
    /// latent means: one shared space, forced.
    Hard => Hard,
}

/// A learned linear map of the target into the latent space, or the target itself when
/// it is already there.
#[derive(Debug)]
struct Projection(Option<nn::Linear>);

impl Projection {
    fn new(spec: &AlignSpec<'_>) -> Self {
        Self(spec.target_dim.map(|t| {
            nn::linear(
                spec.path / "rna_projection",
                t,
                spec.latent_dim,
                Default::default(),
            )
        }))
    }

    fn apply(&self, target: &Tensor) -> Tensor {
        use tch::nn::Module;
        match &self.0 {
            Some(linear) => linear.forward(target),
            None => target.shallow_clone(),
        }
    }
}
