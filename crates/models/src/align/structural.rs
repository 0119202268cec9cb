//! SAILERX's structural similarity: the cosine-similarity matrices of the two
//! representations should agree (not their coordinates).

use crossomics_losses::similarity;
use tch::Tensor;

use super::{AlignSpec, Aligner, BuildAligner};

/// `sum_ij w_i w_j (cos(p_i, p_j) - cos(mu_i, mu_j))^2`; its pair mean in the warm-up.
#[derive(Debug, Clone, Copy)]
pub struct Structural;

impl Aligner for Structural {
    fn align(&self, target: &Tensor, mu: &Tensor, weights: Option<&Tensor>, mean: bool) -> Tensor {
        if mean {
            similarity::structural_mse(target, mu)
        } else {
            similarity::structural(target, mu, weights)
        }
    }
}

impl BuildAligner for Structural {
    fn build(_: &AlignSpec<'_>) -> Self {
        Structural
    }
}
