//! Hard alignment: one shared space, forced (squared error between the projected target
//! and the latent means).

use crossomics_losses::alignment;
use tch::Tensor;

use super::{AlignSpec, Aligner, BuildAligner, Projection};

/// Summed squared error; its mean in the warm-up.
#[derive(Debug)]
pub struct Hard {
    projection: Projection,
}

impl Hard {
    pub fn new(spec: &AlignSpec<'_>) -> Self {
        Self {
            projection: Projection::new(spec),
        }
    }
}

impl Aligner for Hard {
    fn align(&self, target: &Tensor, mu: &Tensor, _: Option<&Tensor>, mean: bool) -> Tensor {
        let p = self.projection.apply(target);
        if mean {
            alignment::hard_mean(&p, mu)
        } else {
            alignment::hard_sum(&p, mu)
        }
    }
}

impl BuildAligner for Hard {
    fn build(spec: &AlignSpec<'_>) -> Self {
        Self::new(spec)
    }
}
