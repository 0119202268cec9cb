//! Structural similarity as distributions: KL between the row-softmax distributions of
//! the two cosine-similarity matrices.

use crossomics_losses::similarity;
use tch::Tensor;

use super::{AlignSpec, Aligner, BuildAligner};

/// KL of the row-softmax (at `temperature`) similarity distributions, weighted per cell
/// outside the warm-up.
#[derive(Debug, Clone, Copy)]
pub struct StructuralKl {
    temperature: f64,
}

impl StructuralKl {
    pub fn new(temperature: f64) -> Self {
        Self { temperature }
    }
}

impl Aligner for StructuralKl {
    fn align(&self, target: &Tensor, mu: &Tensor, weights: Option<&Tensor>, mean: bool) -> Tensor {
        similarity::structural_kl(
            target,
            mu,
            self.temperature,
            if mean { None } else { weights },
        )
    }
}

impl BuildAligner for StructuralKl {
    fn build(spec: &AlignSpec<'_>) -> Self {
        Self::new(spec.temperature)
    }
}
