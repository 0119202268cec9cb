//! Alignment of two modalities' latent spaces for paired cells (`docs/models.md`, "Alignment strategies"): contrastive
//! (CLIP / InfoNCE) and hard (MSE between the latent means). Row `i` of both inputs is
//! the same cell.

use tch::Tensor;

use crate::similarity::cosine_between;

/// Symmetric InfoNCE of CLIP (Radford et al. 2021; InfoNCE: van den Oord et al. 2018)
/// with cosine logits:
///
/// `L_ij = cos(a_i, b_j) / tau`,
///
/// `loss = (CE(L, diag) + CE(L^T, diag)) / 2`,
/// `CE(L, diag) = -(1 / B) sum_i log softmax_j(L_ij)[j = i] = (1 / B) sum_i (logsumexp_j L_ij - L_ii)`,
///
/// i.e. each cell's own other-modality embedding is the positive and the other B - 1 cells
/// of the minibatch are the negatives, in both directions (a -> b over the rows, b -> a
/// over the columns). Averaged over cells, as `torch.nn.CrossEntropyLoss` and CLIP do.
///
/// Properties: symmetric under swapping `a` and `b`; invariant to positive scaling of any
/// row of `a` or `b` (cosines; norms floored at 1e-8 as in
/// [`cosine_matrix`](crate::similarity::cosine_matrix)); > 0, tending to 0 as
/// `tau -> 0` when every positive pair is strictly the most similar in its row and column.
/// With `b == a` it is no larger than with any other pairing of the same rows (each row's
/// and column's target logit `1 / tau` is its maximum).
///
/// `a` and `b` are B x d (equal d: project first if the modalities' latents differ).
/// `tau > 0` is the temperature; CLIP learns `1 / tau`: pass logits to
/// [`info_nce_from_logits`] for a learnable temperature.
pub fn info_nce(a: &Tensor, b: &Tensor, tau: f64) -> Tensor {
    assert!(tau > 0.0, "temperature must be positive, got {tau}");
    assert_eq!(a.size()[0], b.size()[0], "one row per cell in a and b");
    info_nce_from_logits(&(cosine_between(a, b) / tau))
}

/// The symmetric cross-entropy of [`info_nce`] from a square B x B logit matrix whose
/// diagonal holds the positives: `(CE(L, diag) + CE(L^T, diag)) / 2`, averaged over cells.
/// Uses `log_softmax`, so it is stable for any logit scale.
pub fn info_nce_from_logits(logits: &Tensor) -> Tensor {
    let size = logits.size();
    assert!(
        size.len() == 2 && size[0] == size[1],
        "a square logit matrix, got {size:?}"
    );
    let kind = logits.kind();
    let rows = -logits.log_softmax(1, kind).diagonal(0, 0, 1).mean(kind);
    let cols = -logits.log_softmax(0, kind).diagonal(0, 0, 1).mean(kind);
    (rows + cols) * 0.5
}

/// Hard alignment: `(1 / (B d)) sum_{i,k} (a_ik - b_ik)^2`, the mean squared error between
/// two modalities' latent means, averaged over cells and latent dimensions (the scale of
/// [`recon::mse`](crate::recon::mse); [`hard_sum`] is the summed form). Symmetric, 0 iff
/// `a == b`.
pub fn hard_mean(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).square().mean(a.kind())
}

/// Hard alignment summed over cells and latent dimensions: `sum_{i,k} (a_ik - b_ik)^2`
/// (the scale of the summed KL and reconstruction terms).
pub fn hard_sum(a: &Tensor, b: &Tensor) -> Tensor {
    (a - b).square().sum(a.kind())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn perfectly_separated_pairs_give_small_loss_and_uniform_logits_log_b() {
        let opts = (Kind::Double, Device::Cpu);
        let eye = Tensor::eye(4, opts);
        // orthogonal unit vectors paired with themselves: L = I / tau
        let loss = info_nce(&eye, &eye, 0.01).double_value(&[]);
        assert!(loss < 1e-40, "{loss}");
        // all logits equal: every softmax is uniform, CE = log B
        let flat = Tensor::zeros([5, 5], opts);
        let want = 5.0f64.ln();
        assert!((info_nce_from_logits(&flat).double_value(&[]) - want).abs() < 1e-12);
    }

    #[test]
    fn hard_alignment_is_mean_and_sum_of_squares() {
        let a = Tensor::from_slice(&[1.0f64, 2.0, 3.0, 4.0]).view([2, 2]);
        let b = Tensor::from_slice(&[0.0f64, 2.0, 1.0, 1.0]).view([2, 2]);
        assert!((hard_sum(&a, &b).double_value(&[]) - 14.0).abs() < 1e-12);
        assert!((hard_mean(&a, &b).double_value(&[]) - 3.5).abs() < 1e-12);
    }
}
