//! Principal component analysis by randomized SVD (Halko, Martinsson & Tropp 2011,
//! algorithm 4.4 with power iterations), on nalgebra so that no LAPACK is needed.

use nalgebra::DMatrix;
use ndarray::{Array1, Array2, ArrayView2};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

use crate::error::{DataError, Result};

/// A fitted PCA: the cells' scores and what is needed to project new cells.
#[derive(Debug, Clone)]
pub struct Pca {
    /// cells x components
    pub scores: Array2<f32>,
    /// components x features (unit rows)
    pub components: Array2<f32>,
    pub mean: Array1<f32>,
    /// variance explained by each component (ddof = 1, as scikit-learn)
    pub explained_variance: Vec<f64>,
}

impl Pca {
    /// Projects new cells (same features) onto the fitted components.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let centered = &x - &self.mean;
        centered.dot(&self.components.t())
    }
}

/// Fits `n_components` principal components of the rows of `x` (centered, not scaled).
/// Signs are fixed so that each component's largest-magnitude loading is positive.
pub fn fit(x: ArrayView2<f32>, n_components: usize, seed: u64) -> Result<Pca> {
    fit_with(x, n_components, seed, true)
}

/// A truncated SVD of `x` itself, not centered (scikit-learn's `TruncatedSVD`, the LSI
/// of the peaks): the same result with `mean` zero, `scores` = `x . V` (= `U S`).
/// `explained_variance` is then each component's mean square (over `n - 1`).
pub fn fit_uncentered(x: ArrayView2<f32>, n_components: usize, seed: u64) -> Result<Pca> {
    fit_with(x, n_components, seed, false)
}

fn fit_with(x: ArrayView2<f32>, n_components: usize, seed: u64, center: bool) -> Result<Pca> {
    let (n, p) = x.dim();
    if n < 2 || p == 0 {
        return Err(DataError::Empty {
            what: "PCA input".into(),
            reason: format!("{n} cells x {p} features; need at least 2 cells and 1 feature"),
        });
    }
    let max_k = n.min(p);
    if n_components == 0 || n_components > max_k {
        return Err(DataError::invalid(
            "PCA n_components",
            format!("{n_components} is not in 1..={max_k} for a {n} x {p} matrix"),
        ));
    }
    if let Some(((r, c), v)) = x.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DataError::invalid(
            "PCA input",
            format!("value {v} at row {r}, column {c}"),
        ));
    }
    let mean: Array1<f64> = if center {
        x.mapv(f64::from)
            .mean_axis(ndarray::Axis(0))
            .expect("n >= 2")
    } else {
        Array1::zeros(p)
    };
    let xc = DMatrix::<f64>::from_fn(n, p, |i, j| f64::from(x[[i, j]]) - mean[j]);

    let l = (n_components + 10).min(max_k);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let omega = DMatrix::<f64>::from_fn(p, l, |_, _| StandardNormal.sample(&mut rng));
    let mut q = (&xc * omega).qr().q();
    for _ in 0..4 {
        let z = (xc.transpose() * &q).qr().q();
        q = (&xc * z).qr().q();
    }
    let b = q.transpose() * &xc; // l x p
    let svd = b.svd(true, true);
    let v_t = svd.v_t.expect("requested");
    let mut order: Vec<usize> = (0..svd.singular_values.len()).collect();
    order.sort_by(|&a, &b| svd.singular_values[b].total_cmp(&svd.singular_values[a]));
    let mut components = Array2::<f32>::zeros((n_components, p));
    let mut v = DMatrix::<f64>::zeros(p, n_components);
    for (k, &idx) in order.iter().take(n_components).enumerate() {
        let row = v_t.row(idx);
        let pivot = row
            .iter()
            .copied()
            .max_by(|a, b| a.abs().total_cmp(&b.abs()))
            .unwrap_or(1.0);
        let sign = if pivot < 0.0 { -1.0 } else { 1.0 };
        for j in 0..p {
            components[[k, j]] = (sign * row[j]) as f32;
            v[(j, k)] = sign * row[j];
        }
    }
    // Scores are the projection of the centered cells on the components, exactly what
    // `transform` computes for new cells (not U S of the randomized factorization, which
    // differs from it by the part of the data outside the sampled subspace).
    let projected = &xc * &v;
    let scores = Array2::from_shape_fn((n, n_components), |(i, k)| projected[(i, k)] as f32);
    let explained_variance = (0..n_components)
        .map(|k| projected.column(k).iter().map(|s| s * s).sum::<f64>() / (n as f64 - 1.0))
        .collect();
    Ok(Pca {
        scores,
        components,
        mean: mean.mapv(|m| m as f32),
        explained_variance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn low_rank(n: usize, p: usize, seed: u64) -> Array2<f32> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let a = Array2::<f64>::from_shape_fn((n, 3), |_| StandardNormal.sample(&mut rng));
        let b = Array2::<f64>::from_shape_fn((3, p), |_| StandardNormal.sample(&mut rng));
        let noise = Array2::<f64>::from_shape_fn((n, p), |_| {
            let e: f64 = StandardNormal.sample(&mut rng);
            0.01 * e
        });
        (a.dot(&b) + noise).mapv(|v| v as f32)
    }

    #[test]
    fn matches_the_exact_svd() {
        let x = low_rank(60, 40, 1);
        let pca = fit(x.view(), 5, 7).unwrap();
        // exact: eigenvalues of the covariance from a full SVD
        let mean = x.mapv(f64::from).mean_axis(ndarray::Axis(0)).unwrap();
        let xc = DMatrix::<f64>::from_fn(60, 40, |i, j| f64::from(x[[i, j]]) - mean[j]);
        let mut s: Vec<f64> = xc
            .svd(false, false)
            .singular_values
            .iter()
            .copied()
            .collect();
        s.sort_by(|a, b| b.total_cmp(a));
        for (k, sk) in s.iter().take(5).enumerate() {
            let exact = sk * sk / 59.0;
            assert!(
                (pca.explained_variance[k] - exact).abs() <= 1e-6 * exact.max(1.0),
                "{k}"
            );
        }
        // scores are the projection of the centered data on the components
        let proj = pca.transform(x.view());
        for (a, b) in proj.iter().zip(pca.scores.iter()) {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
        // deterministic given the seed
        assert_eq!(fit(x.view(), 5, 7).unwrap().scores, pca.scores);
    }

    #[test]
    fn uncentered_matches_the_exact_svd_of_the_data_itself() {
        // shifted away from the origin, so that centering would change the answer
        let x = low_rank(50, 30, 3).mapv(|v| v + 2.0);
        let svd = fit_uncentered(x.view(), 4, 5).unwrap();
        assert!(svd.mean.iter().all(|&m| m == 0.0));
        let exact = DMatrix::<f64>::from_fn(50, 30, |i, j| f64::from(x[[i, j]])).svd(true, true);
        let mut order: Vec<usize> = (0..exact.singular_values.len()).collect();
        order.sort_by(|&a, &b| exact.singular_values[b].total_cmp(&exact.singular_values[a]));
        let v_t = exact.v_t.unwrap();
        for (k, &idx) in order.iter().take(4).enumerate() {
            // the same direction up to sign, and the scores are x . v
            let dot: f64 = (0..30)
                .map(|j| f64::from(svd.components[[k, j]]) * v_t[(idx, j)])
                .sum();
            assert!((dot.abs() - 1.0).abs() < 1e-4, "component {k}: |cos| {dot}");
            let s = exact.singular_values[idx];
            let norm: f64 = svd
                .scores
                .column(k)
                .iter()
                .map(|&v| f64::from(v).powi(2))
                .sum::<f64>()
                .sqrt();
            assert!((norm - s).abs() < 1e-3 * s, "{norm} vs singular value {s}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        let x = Array2::<f32>::zeros((1, 3));
        assert!(fit(x.view(), 1, 0).is_err());
        let mut x = Array2::<f32>::zeros((4, 3));
        assert!(fit(x.view(), 4, 0).is_err());
        x[[1, 1]] = f32::NAN;
        assert!(fit(x.view(), 2, 0).unwrap_err().to_string().contains("NaN"));
    }
}
