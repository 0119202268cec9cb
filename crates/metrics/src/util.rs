//! Validation and small numeric helpers shared by the metrics.

use ndarray::{Array2, ArrayView2};

use crate::MetricError;

/// Checks that `got == expected`.
pub(crate) fn check_len(
    what: &'static str,
    expected: usize,
    got: usize,
) -> Result<(), MetricError> {
    if expected == got {
        Ok(())
    } else {
        Err(MetricError::LengthMismatch {
            what,
            expected,
            got,
        })
    }
}

/// Checks that every value is finite; reports the first offending row.
pub(crate) fn check_finite(what: &'static str, x: ArrayView2<f32>) -> Result<(), MetricError> {
    for (row, r) in x.rows().into_iter().enumerate() {
        if r.iter().any(|v| !v.is_finite()) {
            return Err(MetricError::NonFinite { what, row });
        }
    }
    Ok(())
}

/// Validated copy of `x` in f64, standard (row-major, contiguous) layout.
///
/// Errors on zero rows, zero columns or a non-finite value.
pub(crate) fn to_f64(what: &'static str, x: ArrayView2<f32>) -> Result<Array2<f64>, MetricError> {
    if x.nrows() == 0 || x.ncols() == 0 {
        return Err(MetricError::Empty { what });
    }
    check_finite(what, x)?;
    Ok(x.mapv(f64::from).as_standard_layout().into_owned())
}

/// Validated f64 copies ([`to_f64`]) of two matrices sharing a column space, each named
/// in errors; `b` must have as many columns as `a`.
pub(crate) fn to_f64_pair(
    (a_name, a): (&'static str, ArrayView2<f32>),
    (b_name, b): (&'static str, ArrayView2<f32>),
) -> Result<(Array2<f64>, Array2<f64>), MetricError> {
    let a = to_f64(a_name, a)?;
    let b = to_f64(b_name, b)?;
    if a.ncols() != b.ncols() {
        return Err(MetricError::DimensionMismatch {
            what: b_name,
            expected: a.ncols(),
            got: b.ncols(),
        });
    }
    Ok((a, b))
}

/// Squared Euclidean distance, accumulated in f64.
#[inline]
pub(crate) fn sq_dist(a: &[f64], b: &[f64]) -> f64 {
    // Four accumulators let the compiler vectorise without reassociating one sum.
    let mut acc = [0.0f64; 4];
    let chunks = a.len() / 4 * 4;
    let (a4, a_rest) = a.split_at(chunks);
    let (b4, b_rest) = b.split_at(chunks);
    for (x, y) in a4.chunks_exact(4).zip(b4.chunks_exact(4)) {
        for l in 0..4 {
            let d = x[l] - y[l];
            acc[l] += d * d;
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in a_rest.iter().zip(b_rest) {
        let d = x - y;
        s += d * d;
    }
    s
}

/// Squared row norms of a standard-layout matrix.
pub(crate) fn sq_norms(x: &Array2<f64>) -> Vec<f64> {
    (0..x.nrows())
        .map(|i| row(x, i).iter().map(|v| v * v).sum())
        .collect()
}

/// Rows per tile of [`sq_dist_tile`]: 256 x 256 f64 tiles (512 KiB) keep the GEMM efficient
/// and the memory of every caller `O(n)`.
pub(crate) const TILE: usize = 256;

/// Bound on the rounding error of a squared distance computed as
/// `|a|^2 + |b|^2 - 2 a.b` in f64 from d-dimensional rows:
/// `|error| <= gram_error_scale(d) * (|a|^2 + |b|^2)` (a generous multiple of `d u`).
pub(crate) fn gram_error_scale(d: usize) -> f64 {
    (4 * d + 16) as f64 * f64::EPSILON
}

/// Squared Euclidean distances between rows `rows_a` of `a` and rows `rows_b` of `b`
/// into `out` (`rows_a.len() x rows_b.len()`), by one matrix product
/// (`|a|^2 + |b|^2 - 2 a.b`, matrixmultiply's f64 GEMM). Entries below
/// `near_zero * (|a|^2 + |b|^2)`, where cancellation makes the product form inaccurate
/// (near-duplicate rows), are recomputed directly, so relative accuracy is at least
/// `gram_error_scale(d) / near_zero`; every value is >= 0.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sq_dist_tile(
    a: &Array2<f64>,
    a_norms: &[f64],
    rows_a: std::ops::Range<usize>,
    b: &Array2<f64>,
    b_norms: &[f64],
    rows_b: std::ops::Range<usize>,
    near_zero: f64,
    mut out: ndarray::ArrayViewMut2<f64>,
) {
    use ndarray::{linalg::general_mat_mul, s};
    let (ra, rb) = (rows_a.clone(), rows_b.clone());
    general_mat_mul(
        -2.0,
        &a.slice(s![ra.clone(), ..]),
        &b.slice(s![rb.clone(), ..]).t(),
        0.0,
        &mut out,
    );
    for (ii, i) in ra.enumerate() {
        let orow = out.row_mut(ii).into_slice().expect("standard layout");
        for (o, j) in orow.iter_mut().zip(rb.clone()) {
            let scale = a_norms[i] + b_norms[j];
            let g = *o + scale;
            *o = if g > near_zero * scale {
                g
            } else {
                sq_dist(row(a, i), row(b, j))
            };
        }
    }
}

/// Row `i` of a standard-layout matrix as a slice.
#[inline]
pub(crate) fn row(x: &Array2<f64>, i: usize) -> &[f64] {
    let d = x.ncols();
    &x.as_slice().expect("standard layout")[i * d..(i + 1) * d]
}

/// Maps arbitrary label codes to `0..n_unique` (in increasing order of the code).
pub(crate) fn dense_codes(labels: &[usize]) -> (Vec<usize>, usize) {
    let mut uniq = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let codes = labels
        .iter()
        .map(|l| uniq.binary_search(l).expect("label present"))
        .collect();
    (codes, uniq.len())
}

/// Sorted distinct labels.
pub(crate) fn unique(labels: &[usize]) -> Vec<usize> {
    let mut uniq = labels.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    uniq
}

/// `ln(n!)`: exact table below 256, Stirling series (error < 1e-17 relative) above.
pub(crate) fn ln_factorial(n: u64) -> f64 {
    const TABLE: usize = 256;
    static LN_FACT: std::sync::OnceLock<[f64; TABLE]> = std::sync::OnceLock::new();
    let table = LN_FACT.get_or_init(|| {
        let mut t = [0.0; TABLE];
        for i in 1..TABLE {
            t[i] = t[i - 1] + (i as f64).ln();
        }
        t
    });
    if (n as usize) < TABLE {
        return table[n as usize];
    }
    let x = n as f64;
    let x2 = x * x;
    x * x.ln() - x + 0.5 * (2.0 * std::f64::consts::PI * x).ln() + 1.0 / (12.0 * x)
        - 1.0 / (360.0 * x * x2)
        + 1.0 / (1260.0 * x * x2 * x2)
}

/// Ranks with ties given their average rank (1-based), as `scipy.stats.rankdata(method="average")`.
pub(crate) fn average_ranks(values: &[f64]) -> Vec<f64> {
    let n = values.len();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; n];
    let mut start = 0;
    while start < n {
        let mut end = start + 1;
        while end < n && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // positions start..end (0-based) share ranks start+1..=end
        let r = (start + 1 + end) as f64 / 2.0;
        for &i in &order[start..end] {
            ranks[i] = r;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ln_factorial_matches_sum_of_logs() {
        let mut s = 0.0f64;
        for n in 1..2000u64 {
            s += (n as f64).ln();
            let got = ln_factorial(n);
            assert!((got - s).abs() <= 1e-12 * s.max(1.0), "n={n}: {got} vs {s}");
        }
        assert_eq!(ln_factorial(0), 0.0);
    }

    #[test]
    fn average_ranks_ties() {
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 2.0]),
            vec![3.5, 1.0, 3.5, 2.0]
        );
        assert_eq!(average_ranks(&[]), Vec::<f64>::new());
    }

    #[test]
    fn dense_codes_compresses() {
        let (c, n) = dense_codes(&[10, 3, 10, 7]);
        assert_eq!(c, vec![2, 0, 2, 1]);
        assert_eq!(n, 3);
    }
}
