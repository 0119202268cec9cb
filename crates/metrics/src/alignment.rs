//! Alignment of two embeddings of the same cells (row i of both is cell i).

use ndarray::{Array2, ArrayView2};

use crate::MetricError;
use crate::util::{check_len, row, sq_dist, to_f64_pair};

fn validate_pair(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
) -> Result<(Array2<f64>, Array2<f64>), MetricError> {
    check_len("b rows", a.nrows(), b.nrows())?;
    let (a, b) = to_f64_pair(("a", a), ("b", b))?;
    if a.nrows() < 2 {
        return Err(MetricError::degenerate(
            "alignment metrics need at least 2 cells",
        ));
    }
    Ok((a, b))
}

/// For each cell, the number of *other* cells strictly closer than its true partner,
/// in both directions: `(rank_a[i] = #{j : d(a_i, b_j) < d(a_i, b_i)},
/// rank_b[j] = #{i : d(a_i, b_j) < d(a_j, b_j)})`.
///
/// One pass over all pairs, `O(n^2 d)` time and `O(n)` memory (no distance matrix).
fn partner_ranks(a: &Array2<f64>, b: &Array2<f64>) -> (Vec<usize>, Vec<usize>) {
    let n = a.nrows();
    let diag: Vec<f64> = (0..n).map(|i| sq_dist(row(a, i), row(b, i))).collect();
    let mut rank_a = vec![0usize; n];
    let mut rank_b = vec![0usize; n];
    for i in 0..n {
        let ai = row(a, i);
        for j in 0..n {
            let d = sq_dist(ai, row(b, j));
            rank_a[i] += usize::from(d < diag[i]);
            rank_b[j] += usize::from(d < diag[j]);
        }
    }
    (rank_a, rank_b)
}

/// Per-cell FOSCTTM in both directions: `(a_to_b, b_to_a)`, see [`foscttm`].
pub fn foscttm_per_cell(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
) -> Result<(Vec<f64>, Vec<f64>), MetricError> {
    let (a, b) = validate_pair(a, b)?;
    let denom = (a.nrows() - 1) as f64;
    let (ra, rb) = partner_ranks(&a, &b);
    Ok((
        ra.into_iter().map(|r| r as f64 / denom).collect(),
        rb.into_iter().map(|r| r as f64 / denom).collect(),
    ))
}

/// Fraction Of Samples Closer Than the True Match (Liu et al. 2019, `docs/models.md`).
///
/// For cell i, `f_A(i) = #{j : ||a_i - b_j|| < ||a_i - b_i||} / (n - 1)` (strictly closer,
/// Euclidean) and symmetrically `f_B(i) = #{j : ||b_i - a_j|| < ||b_i - a_i||} / (n - 1)`;
/// the result is `(mean_i f_A + mean_i f_B) / 2`. 0 is perfect, 0.5 is random.
///
/// The denominator counts the other cells (SCOT's `calc_frac_idx`); scglue's `foscttm`
/// divides by `n` instead, i.e. its value is ours times `(n - 1) / n`.
/// No distance matrix is stored: memory is `O(n)` (10,000 x 10,000 is fine).
///
/// Errors: fewer than 2 cells (Degenerate), row or column mismatch, non-finite input.
pub fn foscttm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Result<f64, MetricError> {
    let (fa, fb) = foscttm_per_cell(a, b)?;
    let n = fa.len() as f64;
    Ok((fa.iter().sum::<f64>() / n + fb.iter().sum::<f64>() / n) / 2.0)
}

/// Top-k matching accuracy: fraction of cells whose true partner is among the `k`
/// nearest cells of the other modality, i.e. fewer than `k` cells are strictly closer,
/// averaged over both directions (`k = 1` is the usual "matching accuracy").
///
/// Errors: `k == 0` or `k > n`, plus the errors of [`foscttm`].
pub fn top_k_matching_accuracy(
    a: ArrayView2<f32>,
    b: ArrayView2<f32>,
    k: usize,
) -> Result<f64, MetricError> {
    let (a, b) = validate_pair(a, b)?;
    let n = a.nrows();
    if k == 0 || k > n {
        return Err(MetricError::invalid(
            "k",
            format!("must be in 1..={n}, got {k}"),
        ));
    }
    let (ra, rb) = partner_ranks(&a, &b);
    let hits = ra.iter().chain(&rb).filter(|&&r| r < k).count();
    Ok(hits as f64 / (2 * n) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn identical_embeddings_are_perfect() {
        let a = array![[0.0f32, 0.0], [1.0, 0.0], [0.0, 5.0]];
        assert_eq!(foscttm(a.view(), a.view()).unwrap(), 0.0);
        assert_eq!(top_k_matching_accuracy(a.view(), a.view(), 1).unwrap(), 1.0);
    }

    #[test]
    fn swapped_partners_are_worst() {
        let a = array![[0.0f32], [10.0]];
        let b = array![[10.0f32], [0.0]];
        assert_eq!(foscttm(a.view(), b.view()).unwrap(), 1.0);
        assert_eq!(top_k_matching_accuracy(a.view(), b.view(), 1).unwrap(), 0.0);
        assert_eq!(top_k_matching_accuracy(a.view(), b.view(), 2).unwrap(), 1.0);
    }

    #[test]
    fn hand_computed_asymmetric_case() {
        // a: 0, 1, 2 ; b: 0.9, 1, 2  -> a->b: cell0 (d=0.9): b1 at 1 no; none closer? d(a0,b0)=0.9,
        // d(a0,b1)=1, d(a0,b2)=2 -> 0. cell1: d(a1,b1)=0, none. cell2: 0. b->a: b0=0.9: d to a0=0.9,
        // a1 at 0.1 closer -> 1. others 0. FOSCTTM = (0 + 1/3/2) / 2 = 1/12.
        let a = array![[0.0f32], [1.0], [2.0]];
        let b = array![[0.9f32], [1.0], [2.0]];
        let (fa, fb) = foscttm_per_cell(a.view(), b.view()).unwrap();
        assert_eq!(fa, vec![0.0, 0.0, 0.0]);
        assert_eq!(fb, vec![0.5, 0.0, 0.0]);
        assert!((foscttm(a.view(), b.view()).unwrap() - 1.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn degenerate_inputs() {
        let one = array![[1.0f32, 2.0]];
        assert!(matches!(
            foscttm(one.view(), one.view()),
            Err(MetricError::Degenerate(_))
        ));
        let a = array![[1.0f32], [2.0]];
        let b = array![[1.0f32], [2.0], [3.0]];
        assert!(matches!(
            foscttm(a.view(), b.view()),
            Err(MetricError::LengthMismatch { .. })
        ));
        let c = array![[1.0f32, 0.0], [2.0, 0.0]];
        assert!(matches!(
            foscttm(a.view(), c.view()),
            Err(MetricError::DimensionMismatch { .. })
        ));
        let nan = array![[1.0f32], [f32::NAN]];
        assert_eq!(
            foscttm(a.view(), nan.view()),
            Err(MetricError::NonFinite { what: "b", row: 1 })
        );
        // all cells identical in both modalities: nothing is strictly closer -> 0
        let same = array![[1.0f32], [1.0], [1.0]];
        assert_eq!(foscttm(same.view(), same.view()).unwrap(), 0.0);
        assert!(top_k_matching_accuracy(a.view(), a.view(), 0).is_err());
    }
}
