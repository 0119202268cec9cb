//! Silhouette widths: raw (sklearn), cell-type ASW and batch ASW (scib).

use std::ops::Range;

use ndarray::{Array2, ArrayView2, ArrayViewMut2, s};

use crate::MetricError;
use crate::util::{
    TILE, check_len, dense_codes, gram_error_scale, sq_dist_tile, sq_norms, to_f64, unique,
};

/// Largest `n * n_labels` for which the per-(cell, label) distance sums are kept for all
/// cells at once (128 MiB); above it rows are processed block by block (twice the work).
const MAX_SUMS: usize = 1 << 24;

/// Silhouette of every row on validated data with dense codes `0..n_labels`.
///
/// `a(i)` = mean distance to the other members of i's cluster, `b(i)` = smallest mean
/// distance to another cluster's members, `s(i) = (b - a) / max(a, b)`; singleton clusters
/// and `max(a, b) = 0` give 0 (sklearn's `nan_to_num`).
///
/// Distances come in 256 x 256 tiles from one matrix product each (see
/// `util::sq_dist_tile`: near-duplicates recomputed directly, relative error of a distance
/// below 1e-8). Each unordered pair is visited once when the `n x n_labels` sums fit in
/// `MAX_SUMS`, otherwise every row block scans all columns. `O(n^2 d)` time,
/// `O(n n_labels)` or `O(TILE (n_labels + TILE))` memory: never a distance matrix.
fn silhouette_dense(x: &Array2<f64>, codes: &[usize], n_labels: usize) -> Vec<f64> {
    silhouette_tiled(
        x,
        codes,
        n_labels,
        x.nrows().saturating_mul(n_labels) <= MAX_SUMS,
    )
}

fn silhouette_tiled(
    x: &Array2<f64>,
    codes: &[usize],
    n_labels: usize,
    symmetric: bool,
) -> Vec<f64> {
    let n = x.nrows();
    let mut sizes = vec![0usize; n_labels];
    for &c in codes {
        sizes[c] += 1;
    }
    let norms = sq_norms(x);
    let near_zero = 1e-6_f64.max(1e3 * gram_error_scale(x.ncols()));
    let mut buf = Array2::<f64>::zeros((TILE, TILE));
    let width = |s: usize| TILE.min(n - s);
    let finish = |i: usize, sums: &[f64]| -> f64 {
        let own = codes[i];
        if sizes[own] <= 1 {
            return 0.0;
        }
        let a = sums[own] / (sizes[own] - 1) as f64;
        let b = (0..n_labels)
            .filter(|&c| c != own && sizes[c] > 0)
            .map(|c| sums[c] / sizes[c] as f64)
            .fold(f64::INFINITY, f64::min);
        let m = a.max(b);
        if m > 0.0 { (b - a) / m } else { 0.0 }
    };
    if symmetric {
        // symmetric: tile (I, J) with J >= I adds d(i, j) to both sums[i][c_j] and sums[j][c_i]
        let mut sums = vec![0.0f64; n * n_labels];
        for ib in (0..n).step_by(TILE) {
            for jb in (ib..n).step_by(TILE) {
                let (wi, wj) = (width(ib), width(jb));
                let tile = self_dist_tile(x, &norms, near_zero, &mut buf, ib..ib + wi, jb..jb + wj);
                for ii in 0..wi {
                    let i = ib + ii;
                    let ci = codes[i];
                    let trow = tile.row(ii);
                    let trow = trow.as_slice().expect("contiguous tile row");
                    let j0 = if ib == jb { ii + 1 } else { 0 };
                    let mut local = 0.0f64;
                    for (jj, &g) in trow.iter().enumerate().skip(j0) {
                        let j = jb + jj;
                        let d = g.sqrt();
                        let cj = codes[j];
                        if cj == ci {
                            local += d;
                        } else {
                            sums[i * n_labels + cj] += d;
                        }
                        sums[j * n_labels + ci] += d;
                    }
                    sums[i * n_labels + ci] += local;
                }
            }
        }
        (0..n)
            .map(|i| finish(i, &sums[i * n_labels..(i + 1) * n_labels]))
            .collect()
    } else {
        let mut out = Vec::with_capacity(n);
        let mut sums = vec![0.0f64; TILE * n_labels];
        for ib in (0..n).step_by(TILE) {
            let wi = width(ib);
            sums.iter_mut().for_each(|v| *v = 0.0);
            for jb in (0..n).step_by(TILE) {
                let wj = width(jb);
                let tile = self_dist_tile(x, &norms, near_zero, &mut buf, ib..ib + wi, jb..jb + wj);
                for ii in 0..wi {
                    let i = ib + ii;
                    let srow = &mut sums[ii * n_labels..(ii + 1) * n_labels];
                    for (jj, &g) in tile.row(ii).iter().enumerate() {
                        if jb + jj != i {
                            srow[codes[jb + jj]] += g.sqrt();
                        }
                    }
                }
            }
            for ii in 0..wi {
                out.push(finish(ib + ii, &sums[ii * n_labels..(ii + 1) * n_labels]));
            }
        }
        out
    }
}

/// The squared distances between rows `rows` and rows `cols` of `x`, written into the
/// top left corner of `buf` (see `util::sq_dist_tile`).
fn self_dist_tile<'b>(
    x: &Array2<f64>,
    norms: &[f64],
    near_zero: f64,
    buf: &'b mut Array2<f64>,
    rows: Range<usize>,
    cols: Range<usize>,
) -> ArrayViewMut2<'b, f64> {
    let mut tile = buf.slice_mut(s![..rows.len(), ..cols.len()]);
    sq_dist_tile(x, norms, rows, x, norms, cols, near_zero, tile.view_mut());
    tile
}

fn prepare(
    x: ArrayView2<f32>,
    labels: &[usize],
) -> Result<(Array2<f64>, Vec<usize>, usize), MetricError> {
    check_len("labels", x.nrows(), labels.len())?;
    let x = to_f64("x", x)?;
    let (codes, n_labels) = dense_codes(labels);
    if n_labels < 2 || n_labels > x.nrows() - 1 {
        return Err(MetricError::degenerate(format!(
            "silhouette needs 2 <= number of labels <= n_samples - 1, got {n_labels} labels for {} samples",
            x.nrows()
        )));
    }
    Ok((x, codes, n_labels))
}

/// Silhouette width of every row, as `sklearn.metrics.silhouette_samples(x, labels)`
/// (Euclidean; see [`silhouette_score`] for the definition and errors).
pub fn silhouette_samples(x: ArrayView2<f32>, labels: &[usize]) -> Result<Vec<f64>, MetricError> {
    let (x, codes, n_labels) = prepare(x, labels)?;
    Ok(silhouette_dense(&x, &codes, n_labels))
}

/// Mean silhouette width (Rousseeuw 1987), as `sklearn.metrics.silhouette_score(x, labels)`
/// with the Euclidean metric: mean over rows of `s(i) = (b(i) - a(i)) / max(a(i), b(i))`,
/// `a(i)` the mean distance to the rest of i's cluster, `b(i)` the smallest mean distance
/// to another cluster; rows of singleton clusters count as 0. Range [-1, 1].
///
/// Errors: fewer than 2 or more than `n - 1` distinct labels (Degenerate, where sklearn
/// raises), length mismatch, empty or non-finite input.
pub fn silhouette_score(x: ArrayView2<f32>, labels: &[usize]) -> Result<f64, MetricError> {
    let s = silhouette_samples(x, labels)?;
    Ok(s.iter().sum::<f64>() / s.len() as f64)
}

/// Cell-type average silhouette width scaled to [0, 1] as scib's
/// `scib.metrics.silhouette(adata, label_key, embed, metric="euclidean", scale=True)`:
/// `(silhouette_score(x, cell_types) + 1) / 2`. Higher is better.
pub fn cell_type_asw(x: ArrayView2<f32>, labels: &[usize]) -> Result<f64, MetricError> {
    Ok((silhouette_score(x, labels)? + 1.0) / 2.0)
}

/// Result of [`batch_asw`].
#[derive(Debug, Clone, PartialEq)]
pub struct BatchAsw {
    /// Mean over scored cell types of the per-type mean of `1 - |s_batch(i)|`.
    pub value: f64,
    /// `(cell type, its mean 1 - |s|)` for each scored type, in increasing label order.
    pub per_label: Vec<(usize, f64)>,
    /// Cell types skipped because they hold a single batch or one batch per cell.
    pub n_skipped: usize,
}

/// Batch ASW as scib's `silhouette_batch(adata, batch_key, label_key, embed,
/// metric="euclidean", scale=True)`: for each cell type t, the silhouette `s_batch(i)` of its
/// cells with respect to batch labels, computed on that type's cells only; the type's score
/// is the mean of `1 - |s_batch(i)|`; the result is the unweighted mean over types.
/// 1 means batches are perfectly mixed within every type.
///
/// A type with a single batch, or as many batches as cells, is skipped (as scib) and counted
/// in `n_skipped`. Errors: every type skipped (Degenerate), length mismatches, empty or
/// non-finite input.
pub fn batch_asw(
    x: ArrayView2<f32>,
    batch: &[usize],
    labels: &[usize],
) -> Result<BatchAsw, MetricError> {
    check_len("batch", x.nrows(), batch.len())?;
    check_len("labels", x.nrows(), labels.len())?;
    let x = to_f64("x", x)?;
    let mut per_label = Vec::new();
    let mut n_skipped = 0;
    for t in unique(labels) {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == t).collect();
        let sub_batch: Vec<usize> = members.iter().map(|&i| batch[i]).collect();
        let (codes, n_b) = dense_codes(&sub_batch);
        if n_b == 1 || n_b == members.len() {
            n_skipped += 1;
            continue;
        }
        let sub = x.select(ndarray::Axis(0), &members);
        let s = silhouette_dense(&sub, &codes, n_b);
        let score = s.iter().map(|v| 1.0 - v.abs()).sum::<f64>() / s.len() as f64;
        per_label.push((t, score));
    }
    if per_label.is_empty() {
        return Err(MetricError::degenerate(
            "batch ASW: every cell type has a single batch or one batch per cell",
        ));
    }
    let value = per_label.iter().map(|p| p.1).sum::<f64>() / per_label.len() as f64;
    Ok(BatchAsw {
        value,
        per_label,
        n_skipped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_computed_silhouette() {
        // 1-D points 0, 1 (label 0) and 5 (label 1).
        // s(0): a=1, b=5 -> 0.8; s(1): a=1, b=4 -> 0.75; s(2): singleton -> 0.
        let x = array![[0.0f32], [1.0], [5.0]];
        let s = silhouette_samples(x.view(), &[0, 0, 1]).unwrap();
        assert!((s[0] - 0.8).abs() < 1e-12 && (s[1] - 0.75).abs() < 1e-12 && s[2] == 0.0);
        let score = silhouette_score(x.view(), &[0, 0, 1]).unwrap();
        assert!((score - 1.55 / 3.0).abs() < 1e-12);
        assert!(
            (cell_type_asw(x.view(), &[0, 0, 1]).unwrap() - (1.55 / 3.0 + 1.0) / 2.0).abs() < 1e-12
        );
    }

    #[test]
    fn degenerate_silhouette() {
        let x = array![[0.0f32], [1.0], [5.0]];
        assert!(matches!(
            silhouette_score(x.view(), &[0, 0, 0]),
            Err(MetricError::Degenerate(_))
        ));
        assert!(matches!(
            silhouette_score(x.view(), &[0, 1, 2]),
            Err(MetricError::Degenerate(_))
        ));
        assert!(matches!(
            silhouette_score(x.view(), &[0, 1]),
            Err(MetricError::LengthMismatch { .. })
        ));
        let one = array![[0.0f32]];
        assert!(silhouette_score(one.view(), &[0]).is_err());
        // all points identical: a = b = 0 -> 0, no NaN
        let same = array![[1.0f32], [1.0], [1.0], [1.0]];
        assert_eq!(silhouette_score(same.view(), &[0, 0, 1, 1]).unwrap(), 0.0);
        let nan = array![[0.0f32], [f32::INFINITY], [1.0]];
        assert_eq!(
            silhouette_score(nan.view(), &[0, 0, 1]),
            Err(MetricError::NonFinite { what: "x", row: 1 })
        );
    }

    #[test]
    fn batch_asw_skips_and_scores() {
        // type 0: points 0,0,1,1 with batches 0,1,0,1: a = 1, b = 0.5 -> s = -0.5 -> 1 - |s| = 0.5
        // type 1: a single batch -> skipped
        let x = array![[0.0f32], [0.0], [1.0], [1.0], [9.0], [9.5]];
        let r = batch_asw(x.view(), &[0, 1, 0, 1, 0, 0], &[0, 0, 0, 0, 1, 1]).unwrap();
        assert_eq!(r.n_skipped, 1);
        assert_eq!(r.per_label.len(), 1);
        assert!((r.value - 0.5).abs() < 1e-12);
        assert!(matches!(
            batch_asw(x.view(), &[0; 6], &[0, 0, 0, 0, 1, 1]),
            Err(MetricError::Degenerate(_))
        ));
    }
    #[test]
    fn tiled_paths_match_direct_definition() {
        use crate::util::{row, sq_dist};
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        // 600 rows (several tiles, a ragged last one), duplicates and exact ties included
        let mut x = Array2::from_shape_fn((600, 7), |_| rng.gen_range(-3.0..3.0f64));
        for i in (0..600).step_by(37) {
            let r = x.row(i + 1).to_owned();
            x.row_mut(i).assign(&r);
        }
        let codes: Vec<usize> = (0..600).map(|_| rng.gen_range(0..5)).collect();
        let direct: Vec<f64> = (0..600)
            .map(|i| {
                let mut sums = [0.0f64; 5];
                let mut sizes = [0usize; 5];
                for j in 0..600 {
                    sizes[codes[j]] += 1;
                    if j != i {
                        sums[codes[j]] += sq_dist(row(&x, i), row(&x, j)).sqrt();
                    }
                }
                let own = codes[i];
                let a = sums[own] / (sizes[own] - 1) as f64;
                let b = (0..5)
                    .filter(|&c| c != own)
                    .map(|c| sums[c] / sizes[c] as f64)
                    .fold(f64::INFINITY, f64::min);
                (b - a) / a.max(b)
            })
            .collect();
        for symmetric in [true, false] {
            let got = silhouette_tiled(&x, &codes, 5, symmetric);
            for (g, d) in got.iter().zip(&direct) {
                assert!((g - d).abs() < 1e-10, "{symmetric}: {g} vs {d}");
            }
        }
    }
}
