//! Contrastive alignment: a shared space, cell by cell (CLIP's symmetric InfoNCE).

use crossomics_losses::alignment;
use tch::Tensor;

use super::{AlignSpec, Aligner, BuildAligner, Projection};

/// Symmetric InfoNCE between the projected target and the latent means.
#[derive(Debug)]
pub struct Contrastive {
    projection: Projection,
    temperature: f64,
}

impl Contrastive {
    pub fn new(spec: &AlignSpec<'_>) -> Self {
        Self {
            projection: Projection::new(spec),
            temperature: spec.temperature,
        }
    }
}

impl Aligner for Contrastive {
    fn align(&self, target: &Tensor, mu: &Tensor, _: Option<&Tensor>, _: bool) -> Tensor {
        alignment::info_nce(&self.projection.apply(target), mu, self.temperature)
    }
}

impl BuildAligner for Contrastive {
    fn build(spec: &AlignSpec<'_>) -> Self {
        Self::new(spec)
    }
}
