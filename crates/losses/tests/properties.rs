//! Property tests (proptest, small case counts: the whole losses suite stays within
//! seconds with one OpenMP thread): KL >= 0 with equality iff the distributions are equal,
//! symmetry where a term is symmetric, invariance of cosine-based terms to positive
//! scaling, and InfoNCE lowest for the true pairing.

// The reference loops index several parallel arrays by cell and dimension, as the
// formulas do.
#![allow(clippy::needless_range_loop)]

mod common;

use common::{cos, logsumexp, tensor, to_vec};
use crossomics_losses::{alignment, kl, recon, similarity};
use proptest::prelude::*;
use tch::{Kind, Tensor};

const B: usize = 6;

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 128,
        ..ProptestConfig::default()
    }
}

/// A B x d matrix with entries in [-3, 3).
fn matrix(d: usize) -> impl Strategy<Value = Vec<Vec<f64>>> {
    proptest::collection::vec(proptest::collection::vec(-3.0f64..3.0, d), B)
}

/// Positive per-row scale factors.
fn scales() -> impl Strategy<Value = Vec<f64>> {
    proptest::collection::vec(0.05f64..20.0, B)
}

fn scale_rows(m: &[Vec<f64>], s: &[f64]) -> Vec<Vec<f64>> {
    m.iter()
        .zip(s)
        .map(|(r, s)| r.iter().map(|v| v * s).collect())
        .collect()
}

fn norm(r: &[f64]) -> f64 {
    r.iter().map(|v| v * v).sum::<f64>().sqrt()
}

/// `sum_i ||P_i - Q_i||_1^2 / 2` for the row-softmax distributions of `structural_kl`
/// (Pinsker: KL(P_i || Q_i) >= ||P_i - Q_i||_1^2 / 2).
fn pinsker_bound(p: &[Vec<f64>], z: &[Vec<f64>], tau: f64) -> f64 {
    let mut total = 0.0;
    for i in 0..B {
        let lp: Vec<f64> = (0..B)
            .filter(|&j| j != i)
            .map(|j| cos(&p[i], &p[j]) / tau)
            .collect();
        let lq: Vec<f64> = (0..B)
            .filter(|&j| j != i)
            .map(|j| cos(&z[i], &z[j]) / tau)
            .collect();
        let (np, nq) = (logsumexp(&lp), logsumexp(&lq));
        let l1: f64 = lp
            .iter()
            .zip(&lq)
            .map(|(a, c)| ((a - np).exp() - (c - nq).exp()).abs())
            .sum();
        total += 0.5 * l1 * l1;
    }
    total
}

proptest! {
    #![proptest_config(config())]

    /// Diagonal-Gaussian KL(i || j) >= 1/2 sum_k (dmu_k^2 / s_jk^2 + r_k - 1 - ln r_k) >= 0
    /// (both parts are non-negative), so it is 0 iff mu and sigma agree; rows 0 and 1 are
    /// made equal to exercise the equality case.
    #[test]
    fn pairwise_kl_is_nonnegative_and_zero_iff_equal(
        mu in matrix(3),
        lv in proptest::collection::vec(proptest::collection::vec(-2.0f64..2.0, 3), B),
    ) {
        let (mut mu, mut lv) = (mu, lv);
        mu[1] = mu[0].clone();
        lv[1] = lv[0].clone();
        let got = to_vec(&kl::pairwise(&tensor(&mu), &tensor(&lv)));
        for i in 0..B {
            for j in 0..B {
                let k = got[i * B + j];
                let mut bound = 0.0;
                let mut gap: f64 = 0.0;
                for c in 0..3 {
                    let r = (lv[i][c] - lv[j][c]).exp();
                    bound += 0.5 * ((mu[i][c] - mu[j][c]).powi(2) / lv[j][c].exp() + r - 1.0 - r.ln());
                    gap = gap.max((mu[i][c] - mu[j][c]).abs()).max((lv[i][c] - lv[j][c]).abs());
                }
                prop_assert!(k >= bound - 1e-9 * (1.0 + k.abs()), "KL {k} < bound {bound}");
                if gap == 0.0 {
                    prop_assert!(k.abs() < 1e-10, "KL of equal distributions: {k}");
                } else if gap > 1e-3 {
                    prop_assert!(k > 0.0, "KL of distinct distributions: {k}");
                }
            }
        }
    }

    /// The softmax-KL structural term is >= the Pinsker bound >= 0, 0 when the two sides'
    /// cosine matrices agree (equal inputs, or inputs that differ by positive row scales),
    /// and > 0 when a row's distributions differ.
    #[test]
    fn structural_kl_is_nonnegative_and_zero_iff_equal(
        p in matrix(4),
        z in matrix(4),
        s in scales(),
        tau in 0.1f64..2.0,
    ) {
        let (pt, zt) = (tensor(&p), tensor(&z));
        let loss = similarity::structural_kl(&pt, &zt, tau, None).double_value(&[]);
        let bound = pinsker_bound(&p, &z, tau) / B as f64;
        prop_assert!(loss >= bound - 1e-12, "{loss} < Pinsker {bound}");
        if bound > 1e-10 {
            prop_assert!(loss > 0.0);
        }
        let same = similarity::structural_kl(&pt, &pt, tau, None).double_value(&[]);
        prop_assert!(same.abs() < 1e-12, "{same}");
        let scaled = tensor(&scale_rows(&p, &s));
        let same = similarity::structural_kl(&pt, &scaled, tau, None).double_value(&[]);
        prop_assert!(same.abs() < 1e-12, "{same}");
        // weights: all equal to c scales the loss by c; zero weights give 0
        let c = Tensor::full([B as i64], 0.3, (Kind::Double, tch::Device::Cpu));
        let w = similarity::structural_kl(&pt, &zt, tau, Some(&c)).double_value(&[]);
        prop_assert!((w - 0.3 * loss).abs() < 1e-12 * (1.0 + loss));
        let w0 = similarity::structural_kl(&pt, &zt, tau, Some(&(c * 0.0))).double_value(&[]);
        prop_assert!(w0 == 0.0);
    }

    /// Cosine-based terms do not change when any row of either input is scaled by a
    /// positive factor.
    #[test]
    fn cosine_terms_are_invariant_to_positive_row_scaling(
        a in matrix(4),
        b in matrix(4),
        sa in scales(),
        sb in scales(),
        tau in 0.05f64..2.0,
    ) {
        prop_assume!(a.iter().chain(&b).all(|r| norm(r) > 1e-3));
        let (at, bt) = (tensor(&a), tensor(&b));
        let (a2, b2) = (tensor(&scale_rows(&a, &sa)), tensor(&scale_rows(&b, &sb)));
        let pairs: [(f64, f64); 4] = [
            (
                similarity::structural_kl(&at, &bt, tau, None).double_value(&[]),
                similarity::structural_kl(&a2, &b2, tau, None).double_value(&[]),
            ),
            (
                alignment::info_nce(&at, &bt, tau).double_value(&[]),
                alignment::info_nce(&a2, &b2, tau).double_value(&[]),
            ),
            (
                similarity::structural(&at, &bt, None).double_value(&[]),
                similarity::structural(&a2, &b2, None).double_value(&[]),
            ),
            (
                similarity::structural_mse(&at, &bt).double_value(&[]),
                similarity::structural_mse(&a2, &b2).double_value(&[]),
            ),
        ];
        for (n, (x, y)) in pairs.iter().enumerate() {
            prop_assert!((x - y).abs() < 1e-9 * (1.0 + x.abs()), "term {n}: {x} vs {y}");
        }
    }

    /// The symmetric terms do not change when the two modalities are swapped: the SAILERX
    /// structural term and its MSE form, symmetric InfoNCE (swapping transposes the
    /// logits), and hard alignment. (The softmax-KL term is not symmetric: KL is not.)
    #[test]
    fn symmetric_terms_are_symmetric(
        a in matrix(3),
        b in matrix(3),
        w in proptest::collection::vec(0.0f64..1.0, B),
        tau in 0.05f64..2.0,
    ) {
        let (at, bt) = (tensor(&a), tensor(&b));
        let wt = Tensor::from_slice(&w);
        let pairs: [(Tensor, Tensor); 5] = [
            (similarity::structural(&at, &bt, Some(&wt)), similarity::structural(&bt, &at, Some(&wt))),
            (similarity::structural_mse(&at, &bt), similarity::structural_mse(&bt, &at)),
            (alignment::info_nce(&at, &bt, tau), alignment::info_nce(&bt, &at, tau)),
            (alignment::hard_mean(&at, &bt), alignment::hard_mean(&bt, &at)),
            (alignment::hard_sum(&at, &bt), alignment::hard_sum(&bt, &at)),
        ];
        for (n, (x, y)) in pairs.iter().enumerate() {
            let (x, y) = (x.double_value(&[]), y.double_value(&[]));
            prop_assert!((x - y).abs() < 1e-10 * (1.0 + x.abs()), "term {n}: {x} vs {y}");
        }
    }

    /// InfoNCE with the true pairing (b == a) is no larger than with the rows of b
    /// shuffled, and strictly smaller when a cell is paired with a non-parallel other cell.
    #[test]
    fn info_nce_is_lowest_for_the_true_pairing(
        a in matrix(4),
        perm in Just((0..B).collect::<Vec<usize>>()).prop_shuffle(),
        tau in 0.05f64..2.0,
    ) {
        let at = tensor(&a);
        let shuffled: Vec<Vec<f64>> = perm.iter().map(|&j| a[j].clone()).collect();
        let aligned = alignment::info_nce(&at, &at, tau).double_value(&[]);
        let wrong = alignment::info_nce(&at, &tensor(&shuffled), tau).double_value(&[]);
        prop_assert!(aligned <= wrong + 1e-12, "{aligned} > {wrong}");
        let moved_apart = (0..B)
            .filter(|&i| perm[i] != i)
            .map(|i| 1.0 - cos(&a[i], &a[perm[i]]))
            .fold(f64::INFINITY, f64::min);
        let well_posed = a.iter().all(|r| norm(r) > 1e-3);
        if well_posed && moved_apart.is_finite() && moved_apart > 1e-6 {
            prop_assert!(aligned < wrong, "{aligned} !< {wrong}");
        }
    }

    /// Count log-likelihoods of whole-number counts are log-probabilities (<= 0), and the
    /// zero-inflated one is NB plus the dropout mass at 0 and NB scaled by (1 - pi) above.
    #[test]
    fn count_log_likelihoods_are_log_probabilities(
        x in proptest::collection::vec(0u32..40, 8),
        mu in proptest::collection::vec(0.0f64..50.0, 8),
        theta in proptest::collection::vec(0.01f64..100.0, 8),
        logit in proptest::collection::vec(-10.0f64..10.0, 8),
    ) {
        let x: Vec<f64> = x.into_iter().map(f64::from).collect();
        let (xt, mt, tt, lt) = (
            Tensor::from_slice(&x),
            Tensor::from_slice(&mu),
            Tensor::from_slice(&theta),
            Tensor::from_slice(&logit),
        );
        let nb = to_vec(&recon::log_nb(&mt, &tt, &xt));
        let zinb = to_vec(&recon::log_zinb(&mt, &tt, &lt, &xt));
        let po = to_vec(&recon::log_poisson(&mt, &xt));
        for n in 0..8 {
            prop_assert!(nb[n] <= 1e-9 && zinb[n] <= 1e-9 && po[n] <= 1e-9);
            let log_keep = -(logit[n].exp().ln_1p()); // log(1 - pi)
            if x[n] == 0.0 {
                prop_assert!(zinb[n] >= nb[n] + log_keep - 1e-9);
                prop_assert!(zinb[n] >= -((-logit[n]).exp().ln_1p()) - 1e-9); // >= log pi
            } else {
                prop_assert!((zinb[n] - (nb[n] + log_keep)).abs() < 1e-8 * (1.0 + nb[n].abs()));
            }
        }
    }
}
