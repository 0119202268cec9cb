//! Turning counts into model inputs, the way the published methods do.

use nalgebra_sparse::CsrMatrix;
use ndarray::Array2;

use crate::error::{DataError, Result};

/// Total counts of each cell (row sums), accumulated in f64.
pub fn library_sizes(m: &CsrMatrix<f32>) -> Vec<f64> {
    m.row_iter()
        .map(|r| r.values().iter().map(|&v| f64::from(v)).sum())
        .collect()
}

/// Number of cells in which each feature is non-zero.
pub fn cells_per_feature(m: &CsrMatrix<f32>) -> Vec<usize> {
    let mut n = vec![0usize; m.ncols()];
    for (c, v) in m.col_indices().iter().zip(m.values()) {
        if *v != 0.0 {
            n[*c] += 1;
        }
    }
    n
}

/// Columns present in at least `min_cells` cells and at most `max_fraction` of cells.
pub fn feature_filter(m: &CsrMatrix<f32>, min_cells: usize, max_fraction: f64) -> Vec<usize> {
    let max_cells = (max_fraction * m.nrows() as f64).floor() as usize;
    cells_per_feature(m)
        .iter()
        .enumerate()
        .filter(|(_, n)| **n >= min_cells && **n <= max_cells)
        .map(|(i, _)| i)
        .collect()
}

/// Number of non-zero features of each cell.
pub fn features_per_cell(m: &CsrMatrix<f32>) -> Vec<usize> {
    m.row_iter()
        .map(|r| r.values().iter().filter(|v| **v != 0.0).count())
        .collect()
}

/// Cells with `min_genes..=max_genes` genes detected and at least `min_peaks` peaks open
/// (BABEL keeps cells with 200-7000 genes).
pub fn cell_qc(
    d: &crate::PairedDataset,
    min_genes: usize,
    max_genes: usize,
    min_peaks: usize,
) -> Vec<usize> {
    let genes = features_per_cell(&d.rna);
    let peaks = features_per_cell(&d.atac);
    (0..d.n_cells())
        .filter(|&i| genes[i] >= min_genes && genes[i] <= max_genes && peaks[i] >= min_peaks)
        .collect()
}

/// The `q`-th percentile (0..=100) of all entries of the matrix, implicit zeros included,
/// with numpy's default linear interpolation.
pub fn percentile_with_zeros(m: &CsrMatrix<f32>, q: f64) -> Result<f64> {
    let total = m.nrows() * m.ncols();
    if total == 0 {
        return Err(DataError::Empty {
            what: "matrix".into(),
            reason: "no entries to take a percentile of".into(),
        });
    }
    if !(0.0..=100.0).contains(&q) {
        return Err(DataError::invalid(
            "percentile",
            format!("{q} is not in [0, 100]"),
        ));
    }
    let mut stored: Vec<f64> = m
        .values()
        .iter()
        .map(|&v| f64::from(v))
        .filter(|v| *v != 0.0)
        .collect();
    stored.sort_by(f64::total_cmp);
    let negatives = stored.partition_point(|v| *v < 0.0);
    let zeros = total - stored.len();
    // the k-th smallest of all entries
    let kth = |k: usize| -> f64 {
        if k < negatives {
            stored[k]
        } else if k < negatives + zeros {
            0.0
        } else {
            stored[k - zeros]
        }
    };
    let pos = q / 100.0 * (total - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = (lo + 1).min(total - 1);
    Ok(kth(lo) + (pos - lo as f64) * (kth(hi) - kth(lo)))
}

/// Clips stored values into the `[lo_q, hi_q]` percentiles of all entries (BABEL clips
/// normalized RNA at 0.5 / 99.5). Implicit zeros stay zero, which is exact whenever the
/// lower percentile is <= 0 (any matrix that is at least `lo_q`% zeros); otherwise an error.
pub fn clip_percentiles(m: &CsrMatrix<f32>, lo_q: f64, hi_q: f64) -> Result<CsrMatrix<f32>> {
    let lo = percentile_with_zeros(m, lo_q)?;
    let hi = percentile_with_zeros(m, hi_q)?;
    if lo > 0.0 && m.nnz() < m.nrows() * m.ncols() {
        return Err(DataError::invalid(
            "percentile clipping",
            format!(
                "the {lo_q}th percentile is {lo} > 0: clipping would make the sparse matrix dense"
            ),
        ));
    }
    let mut out = m.clone();
    for v in out.values_mut() {
        *v = f64::from(*v).clamp(lo, hi) as f32;
    }
    Ok(out)
}

/// Median of the positive library sizes: scanpy's `normalize_total` default target.
pub fn median_library_size(sizes: &[f64]) -> Option<f64> {
    let mut positive: Vec<f64> = sizes.iter().copied().filter(|s| *s > 0.0).collect();
    if positive.is_empty() {
        return None;
    }
    positive.sort_by(f64::total_cmp);
    let n = positive.len();
    Some(if n % 2 == 1 {
        positive[n / 2]
    } else {
        0.5 * (positive[n / 2 - 1] + positive[n / 2])
    })
}

/// Size-factor normalization then log1p: `x_ij -> ln(1 + x_ij * target / s_i)` with
/// `s_i` the library size of cell i and `target` the median library size unless given
/// (scanpy `normalize_total` + `log1p`). Cells with no counts stay zero.
pub fn normalize_log1p(m: &CsrMatrix<f32>, target_sum: Option<f64>) -> Result<CsrMatrix<f32>> {
    let sizes = library_sizes(m);
    let target = match target_sum {
        Some(t) if t > 0.0 && t.is_finite() => t,
        Some(t) => {
            return Err(DataError::invalid(
                "normalization target_sum",
                format!("{t} is not a positive number"),
            ));
        }
        None => median_library_size(&sizes).ok_or_else(|| DataError::Empty {
            what: "RNA counts".into(),
            reason: "every cell has zero counts, nothing to normalize".into(),
        })?,
    };
    let mut out = m.clone();
    for (i, mut row) in out.row_iter_mut().enumerate() {
        let scale = if sizes[i] > 0.0 {
            target / sizes[i]
        } else {
            0.0
        };
        for v in row.values_mut() {
            *v = (f64::from(*v) * scale).ln_1p() as f32;
        }
    }
    Ok(out)
}

/// Every non-zero count becomes 1 (ATAC peaks are treated as open or closed).
pub fn binarize(m: &CsrMatrix<f32>) -> CsrMatrix<f32> {
    let mut out = m.clone();
    for v in out.values_mut() {
        *v = if *v != 0.0 { 1.0 } else { 0.0 };
    }
    out
}

/// TF-IDF of binarized peaks as Signac's `RunTFIDF` (method 1):
/// `log1p(x_ij / n_i * N / c_j * scale)` with `n_i` the cell's open peaks, `c_j` the
/// peak's open cells, `N` the number of cells and `scale` = 1e4. The first step of LSI.
pub fn tfidf(binary: &CsrMatrix<f32>, scale: f64) -> CsrMatrix<f32> {
    tfidf_with_idf(binary, &peak_idf(binary), scale)
}

/// The inverse document frequency `N / c_j` of each peak (`c_j` its open cells, at least 1).
pub fn peak_idf(binary: &CsrMatrix<f32>) -> Vec<f64> {
    let n = binary.nrows() as f64;
    cells_per_feature(binary)
        .into_iter()
        .map(|c| n / (c.max(1) as f64))
        .collect()
}

/// TF-IDF with given (fitted) IDF weights: `log1p(x_ij / n_i * idf_j * scale)`.
pub fn tfidf_with_idf(binary: &CsrMatrix<f32>, idf: &[f64], scale: f64) -> CsrMatrix<f32> {
    map_term_frequency(binary, |tf, j| (tf * idf[j] * scale).ln_1p())
}

/// Every stored entry replaced by `f(tf, column)`, `tf = x_ij / n_i` (`n_i` the row's
/// total, at least 1): the shared body of the TF-IDF forms.
fn map_term_frequency(m: &CsrMatrix<f32>, f: impl Fn(f64, usize) -> f64) -> CsrMatrix<f32> {
    let per_cell = library_sizes(m);
    let mut out = m.clone();
    for (i, mut row) in out.row_iter_mut().enumerate() {
        let (cols, vals) = row.cols_and_values_mut();
        for (c, v) in cols.iter().zip(vals) {
            *v = f(f64::from(*v) / per_cell[i].max(1.0), *c) as f32;
        }
    }
    out
}

/// The TF-IDF of an LSI in the form `form`, with given (fitted) IDF weights `N / c_j`
/// ([`peak_idf`]); `scale` is the Signac form's scale factor.
pub fn lsi_tfidf(
    m: &CsrMatrix<f32>,
    idf: &[f64],
    form: crate::config::LsiTfidf,
    scale: f64,
) -> CsrMatrix<f32> {
    match form {
        crate::config::LsiTfidf::Signac => tfidf_with_idf(m, idf, scale),
        crate::config::LsiTfidf::Muon => {
            let log_idf: Vec<f64> = idf.iter().map(|v| v.ln_1p()).collect();
            map_term_frequency(m, |tf, j| tf.ln_1p() * log_idf[j])
        }
    }
}

/// Selected rows as a dense row-major array (the layout tch takes).
pub fn dense_rows(m: &CsrMatrix<f32>, rows: &[usize]) -> Array2<f32> {
    let mut out = Array2::<f32>::zeros((rows.len(), m.ncols()));
    for (i, &r) in rows.iter().enumerate() {
        let row = m.row(r);
        let mut dst = out.row_mut(i);
        for (c, v) in row.col_indices().iter().zip(row.values()) {
            dst[*c] = *v;
        }
    }
    out
}

/// The whole matrix dense.
pub fn to_dense(m: &CsrMatrix<f32>) -> Array2<f32> {
    let rows: Vec<usize> = (0..m.nrows()).collect();
    dense_rows(m, &rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_relative_eq;
    use nalgebra_sparse::CooMatrix;

    fn example() -> CsrMatrix<f32> {
        let mut coo = CooMatrix::new(3, 3);
        for (r, c, v) in [(0, 0, 1.0), (0, 1, 3.0), (1, 1, 2.0), (1, 2, 6.0)] {
            coo.push(r, c, v);
        }
        CsrMatrix::from(&coo)
    }

    #[test]
    fn normalize_log1p_matches_the_formula() {
        let m = example();
        // library sizes 4, 8, 0 -> median of positive = 6
        let n = to_dense(&normalize_log1p(&m, None).unwrap());
        assert_relative_eq!(
            n[[0, 0]],
            (1.0f64 + 1.0 * 6.0 / 4.0).ln() as f32,
            epsilon = 1e-6
        );
        assert_relative_eq!(
            n[[1, 2]],
            (1.0f64 + 6.0 * 6.0 / 8.0).ln() as f32,
            epsilon = 1e-6
        );
        assert_eq!(n.row(2).sum(), 0.0);
        let n = to_dense(&normalize_log1p(&m, Some(1e4)).unwrap());
        assert_relative_eq!(
            n[[0, 1]],
            (1.0f64 + 3.0 * 1e4 / 4.0).ln() as f32,
            epsilon = 1e-5
        );
        assert!(normalize_log1p(&m, Some(f64::NAN)).is_err());
    }

    #[test]
    fn all_zero_counts_cannot_be_normalized() {
        let m = CsrMatrix::<f32>::zeros(2, 2);
        assert!(
            normalize_log1p(&m, None)
                .unwrap_err()
                .to_string()
                .contains("zero counts")
        );
    }

    #[test]
    fn tfidf_matches_the_formula() {
        let m = binarize(&example());
        // cell 0 has peaks 0,1 open; peak 1 is open in 2 of 3 cells
        let t = to_dense(&tfidf(&m, 1e4));
        assert_relative_eq!(
            t[[0, 1]],
            (0.5f64 * 3.0 / 2.0 * 1e4).ln_1p() as f32,
            epsilon = 1e-5
        );
        assert_relative_eq!(
            t[[0, 0]],
            (0.5f64 * 3.0 / 1.0 * 1e4).ln_1p() as f32,
            epsilon = 1e-5
        );
        assert_eq!(t[[2, 0]], 0.0);
    }

    #[test]
    fn muon_tfidf_matches_the_formula() {
        let m = binarize(&example());
        let idf = peak_idf(&m);
        let t = to_dense(&lsi_tfidf(&m, &idf, crate::config::LsiTfidf::Muon, 1e4));
        // cell 0 has peaks 0,1 open; peak 1 is open in 2 of 3 cells, peak 0 in 1
        let want = |tf: f64, idf: f64| (tf.ln_1p() * idf.ln_1p()) as f32;
        assert_relative_eq!(t[[0, 1]], want(0.5, 1.5), epsilon = 1e-6);
        assert_relative_eq!(t[[0, 0]], want(0.5, 3.0), epsilon = 1e-6);
        assert_eq!(t[[2, 0]], 0.0);
        // the Signac form is `tfidf`
        assert_eq!(
            lsi_tfidf(&m, &idf, crate::config::LsiTfidf::Signac, 1e4),
            tfidf(&m, 1e4)
        );
    }

    #[test]
    fn percentiles_count_the_zeros_like_numpy() {
        let m = example(); // entries: 1, 3, 2, 6 and five zeros
        // numpy: np.percentile([0,0,0,0,0,1,2,3,6], q)
        for (q, want) in [
            (0.0, 0.0),
            (50.0, 0.0),
            (62.5, 1.0),
            (90.0, 3.6),
            (99.5, 5.88),
            (100.0, 6.0),
        ] {
            let got = percentile_with_zeros(&m, q).unwrap();
            assert!((got - want).abs() < 1e-9, "q={q}: {got} vs {want}");
        }
        let c = to_dense(&clip_percentiles(&m, 0.5, 90.0).unwrap());
        assert_relative_eq!(c[[1, 2]], 3.6, epsilon = 1e-6);
        assert_eq!(c[[0, 0]], 1.0);
        assert!(percentile_with_zeros(&m, 101.0).is_err());
    }

    #[test]
    fn cell_qc_keeps_cells_in_range() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let genes = features_per_cell(&d.rna);
        let peaks = features_per_cell(&d.atac);
        let kept = cell_qc(&d, 100, 200, 50);
        assert!(!kept.is_empty() && kept.len() < d.n_cells());
        for i in 0..d.n_cells() {
            let ok = (100..=200).contains(&genes[i]) && peaks[i] >= 50;
            assert_eq!(kept.contains(&i), ok, "cell {i}");
        }
    }

    #[test]
    fn binarize_and_filters() {
        let m = example();
        assert!(binarize(&m).values().iter().all(|v| *v == 1.0));
        assert_eq!(cells_per_feature(&m), vec![1, 2, 1]);
        assert_eq!(feature_filter(&m, 2, 1.0), vec![1]);
        assert_eq!(feature_filter(&m, 1, 0.5), vec![0, 2]);
        assert_eq!(median_library_size(&library_sizes(&m)), Some(6.0));
    }
}
