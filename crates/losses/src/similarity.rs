//! Structural-similarity alignment (SAILERX): instead of forcing two modalities into one
//! space, make their within-minibatch cosine-similarity matrices agree.

use tch::Tensor;

/// Row-wise cosine similarity matrix of `x` (B x d): `cos(x_i, x_j)`; rows of zero norm
/// get similarity 0 (their norm is floored at 1e-8).
pub fn cosine_matrix(x: &Tensor) -> Tensor {
    let u = unit_rows(x);
    u.matmul(&u.transpose(0, 1))
}

/// Cosine similarities between the rows of two matrices, `a` (B x d) and `b` (B' x d):
/// the B x B' matrix `cos(a_i, b_j) = a_i . b_j / (|a_i| |b_j|)`, norms floored at 1e-8
/// as in [`cosine_matrix`].
pub fn cosine_between(a: &Tensor, b: &Tensor) -> Tensor {
    unit_rows(a).matmul(&unit_rows(b).transpose(0, 1))
}

/// `x_i / max(|x_i|, 1e-8)` row by row.
fn unit_rows(x: &Tensor) -> Tensor {
    x / x.norm_scalaropt_dim(2.0, [1], true).clamp_min(1e-8)
}

/// The off-diagonal entries of a square B x B matrix as a B x (B - 1) matrix (row i
/// keeps `m[i, j]` for `j != i`, in order). Differentiable: views and a reshape only.
fn off_diagonal(m: &Tensor) -> Tensor {
    let b = m.size()[0];
    m.flatten(0, -1)
        .narrow(0, 1, b * b - 1)
        .view([b - 1, b + 1])
        .narrow(1, 0, b)
        .reshape([b, b - 1])
}

/// Softmax-KL variant of the structural-similarity term (not in SAILERX; in the spirit of
/// similarity-distribution matching, e.g. t-SNE's row-wise neighbour distributions and
/// SimCLR/CLIP temperature-scaled cosine logits):
///
/// `P_i = softmax_{j != i}(cos(p_i, p_j) / tau)`, `Q_i = softmax_{j != i}(cos(z_i, z_j) / tau)`,
///
/// `loss = (1 / B) sum_i w_i KL(P_i || Q_i)`, `KL(P_i || Q_i) = sum_{j != i} P_ij (log P_ij - log Q_ij)`,
///
/// with `w` the per-cell weights (all ones when `None`, so the loss is then
/// `mean_i KL(P_i || Q_i)`; with weights the divisor stays B, so a weight scales its cell's
/// row rather than renormalising the batch, as `w` does in [`structural`]). `p` is the
/// target (e.g. the RNA PCA) and `z` the latent means; the gradient flows into both if
/// both require it.
///
/// The diagonal is excluded: `cos(x_i, x_i) = 1` is the largest entry of every row of both
/// matrices whatever the data, so including it only adds a mass on `j = i` that carries no
/// information and, for small `tau`, swamps the off-diagonal structure. Each row is
/// therefore a distribution over the other B - 1 cells; with B < 2 the loss is 0.
///
/// Properties: >= 0, and 0 iff every row of the two off-diagonal cosine matrices agrees up
/// to an additive constant (in particular when `cos(p) = cos(z)`); invariant to positive
/// scaling of any row of `p` or `z`; not symmetric in `p` and `z` (KL is not).
/// Computed with `log_softmax`, so it is stable for any `tau > 0`.
pub fn structural_kl(p: &Tensor, z: &Tensor, tau: f64, weights: Option<&Tensor>) -> Tensor {
    assert!(tau > 0.0, "temperature must be positive, got {tau}");
    let b = z.size()[0];
    assert_eq!(p.size()[0], b, "one row per cell in p and z");
    let kind = z.kind();
    if b < 2 {
        return z.sum(kind) * 0.0;
    }
    let log_p = off_diagonal(&(cosine_matrix(p) / tau)).log_softmax(1, kind);
    let log_q = off_diagonal(&(cosine_matrix(z) / tau)).log_softmax(1, kind);
    let rows = (log_p.exp() * (&log_p - log_q)).sum_dim_intlist(1, false, kind); // B
    match weights {
        Some(w) => (rows * w.view([-1])).sum(kind) / b as f64,
        None => rows.mean(kind),
    }
}

/// `sum_{i,j} w_i w_j (cos(p_i, p_j) - cos(z_i, z_j))^2` (`docs/models.md`, "SAILERX"), with `w` the
/// per-cell weights (all ones when `None`).
pub fn structural(p: &Tensor, z: &Tensor, weights: Option<&Tensor>) -> Tensor {
    let diff = (cosine_matrix(p) - cosine_matrix(z)).square();
    match weights {
        Some(w) => {
            let w = w.view([-1, 1]);
            (diff * w.matmul(&w.transpose(0, 1))).sum(z.kind())
        }
        None => diff.sum(z.kind()),
    }
}

/// `mean_{i,j} (cos(p_i, p_j) - cos(z_i, z_j))^2`: the warm-up phase's MSE between the
/// similarity matrices.
pub fn structural_mse(p: &Tensor, z: &Tensor) -> Tensor {
    (cosine_matrix(p) - cosine_matrix(z))
        .square()
        .mean(z.kind())
}

/// SAILERX per-cell weights from sequencing depths:
/// `w_i = log((rna_i / max rna) / (atac_i / max atac))`, shifted to min 0 and scaled to
/// max 1. Cells with zero depth in either modality, and the all-equal case, get weight 1.
pub fn sailerx_cell_weights(rna_depth: &[f64], atac_depth: &[f64]) -> Vec<f64> {
    let all: Vec<usize> = (0..rna_depth.len()).collect();
    sailerx_cell_weights_fitted(rna_depth, atac_depth, &all)
}

/// [`sailerx_cell_weights`] with the maxima and the min-max range learnt on the
/// `reference` cells only (the training cells, so that held-out cells do not shape the
/// weights); other cells' weights are clipped to `[0, 1]`.
pub fn sailerx_cell_weights_fitted(
    rna_depth: &[f64],
    atac_depth: &[f64],
    reference: &[usize],
) -> Vec<f64> {
    assert_eq!(
        rna_depth.len(),
        atac_depth.len(),
        "one depth per cell in each modality"
    );
    let max_r = reference.iter().map(|&i| rna_depth[i]).fold(0.0, f64::max);
    let max_a = reference.iter().map(|&i| atac_depth[i]).fold(0.0, f64::max);
    let raw: Vec<Option<f64>> = rna_depth
        .iter()
        .zip(atac_depth)
        .map(|(&r, &a)| {
            (r > 0.0 && a > 0.0 && max_r > 0.0 && max_a > 0.0)
                .then(|| ((r / max_r) / (a / max_a)).ln())
        })
        .collect();
    let fitted = reference.iter().filter_map(|&i| raw[i]);
    let lo = fitted.clone().fold(f64::INFINITY, f64::min);
    let hi = fitted.fold(f64::NEG_INFINITY, f64::max);
    raw.iter()
        .map(|w| match w {
            Some(w) if hi > lo => ((w - lo) / (hi - lo)).clamp(0.0, 1.0),
            _ => 1.0,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use tch::{Device, Kind};

    fn vec2(t: &Tensor) -> Vec<f64> {
        Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
    }

    fn brute(p: &[Vec<f64>], z: &[Vec<f64>], w: &[f64]) -> f64 {
        let cos = |a: &[f64], b: &[f64]| {
            let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            let na = a.iter().map(|x| x * x).sum::<f64>().sqrt();
            let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt();
            dot / (na * nb)
        };
        let mut s = 0.0;
        for i in 0..p.len() {
            for j in 0..p.len() {
                s += w[i] * w[j] * (cos(&p[i], &p[j]) - cos(&z[i], &z[j])).powi(2);
            }
        }
        s
    }

    fn tensor(rows: &[Vec<f64>]) -> Tensor {
        let flat: Vec<f64> = rows.concat();
        Tensor::from_slice(&flat).view([rows.len() as i64, -1])
    }

    #[test]
    fn structural_matches_a_brute_force_loop() {
        let p = vec![
            vec![1.0, 0.0, 2.0],
            vec![0.5, 1.0, -1.0],
            vec![-1.0, 2.0, 0.3],
            vec![0.1, 0.1, 0.1],
        ];
        let z = vec![
            vec![0.3, -1.0],
            vec![2.0, 0.5],
            vec![-0.7, 0.2],
            vec![1.0, 1.0],
        ];
        let w = vec![0.0, 0.5, 1.0, 0.25];
        let got =
            structural(&tensor(&p), &tensor(&z), Some(&Tensor::from_slice(&w))).double_value(&[]);
        assert!((got - brute(&p, &z, &w)).abs() < 1e-10);
        let ones = vec![1.0; 4];
        let got = structural(&tensor(&p), &tensor(&z), None).double_value(&[]);
        assert!((got - brute(&p, &z, &ones)).abs() < 1e-10);
        let mse = structural_mse(&tensor(&p), &tensor(&z)).double_value(&[]);
        assert!((mse - brute(&p, &z, &ones) / 16.0).abs() < 1e-10);
    }

    #[test]
    fn gradient_matches_finite_differences() {
        tch::manual_seed(4);
        let p = Tensor::randn([5, 4], (Kind::Double, Device::Cpu));
        let z = Tensor::randn([5, 3], (Kind::Double, Device::Cpu));
        let w = Tensor::rand([5], (Kind::Double, Device::Cpu));
        let zv = z.set_requires_grad(true);
        structural(&p, &zv, Some(&w)).backward();
        let g = vec2(&zv.grad());
        let eps = 1e-6;
        for idx in 0..15 {
            let bump = |s: f64| {
                let zz = z.copy();
                let _ = zz.flatten(0, -1).get(idx).g_add_scalar_(s);
                structural(&p, &zz, Some(&w)).double_value(&[])
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
            assert!(
                (fd - g[idx as usize]).abs() < 1e-5,
                "{idx}: {fd} vs {}",
                g[idx as usize]
            );
        }
    }

    #[test]
    fn weights_span_zero_to_one() {
        let w = sailerx_cell_weights(&[100.0, 200.0, 400.0], &[10.0, 10.0, 10.0]);
        assert_eq!(w, vec![0.0, 0.5, 1.0]);
        assert_eq!(
            sailerx_cell_weights(&[5.0, 5.0], &[2.0, 2.0]),
            vec![1.0, 1.0]
        );
        assert_eq!(
            sailerx_cell_weights(&[0.0, 5.0, 6.0], &[2.0, 2.0, 2.0])[0],
            1.0
        );
    }

    #[test]
    fn fitted_weights_learn_their_range_on_the_reference_cells_only() {
        // ratios 100, 200, 400, 800 (x ATAC 10); reference = the first two cells
        let rna = [100.0, 200.0, 400.0, 50.0];
        let atac = [10.0; 4];
        let w = sailerx_cell_weights_fitted(&rna, &atac, &[0, 1]);
        // the reference spans 0..1; the others are clipped, not rescaled
        assert_eq!(w, vec![0.0, 1.0, 1.0, 0.0]);
        // the same as the plain weights when every cell is the reference
        let all = [0, 1, 2, 3];
        assert_eq!(
            sailerx_cell_weights_fitted(&rna, &atac, &all),
            sailerx_cell_weights(&rna, &atac)
        );
        // a held-out cell's depth does not change the reference cells' weights
        let mut other = rna;
        other[2] = 1e6;
        assert_eq!(
            sailerx_cell_weights_fitted(&other, &atac, &[0, 1])[..2],
            w[..2]
        );
    }

    proptest! {
        #[test]
        fn symmetric_zero_on_self_and_scale_invariant(
            vals in proptest::collection::vec(-3.0f64..3.0, 24),
            zvals in proptest::collection::vec(-3.0f64..3.0, 12),
            scale in 0.1f64..10.0,
        ) {
            let p = Tensor::from_slice(&vals).view([6, 4]);
            let z = Tensor::from_slice(&zvals).view([6, 2]);
            let a = structural(&p, &z, None).double_value(&[]);
            let b = structural(&z, &p, None).double_value(&[]);
            prop_assert!((a - b).abs() < 1e-9);
            prop_assert!(a >= 0.0);
            prop_assert!(structural(&p, &p, None).double_value(&[]).abs() < 1e-9);
            let scaled = structural(&(&p * scale), &(&z * (1.0 / scale)), None).double_value(&[]);
            prop_assert!((scaled - a).abs() < 1e-8 * a.max(1.0));
        }
    }
}
