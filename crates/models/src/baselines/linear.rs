//! Ridge regression with an intercept, from its sufficient statistics: the linear map
//! the ridge baseline and the SAILERX translator fit.

use crossomics_data::Csr;
use nalgebra::DMatrix;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::mse;
use crate::data::FitCells;
use crate::error::{ModelError, Result};

/// `y = y_mean + (x - x_mean) W`, fitted by ridge regression with an intercept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearMap {
    pub x_mean: Vec<f64>,
    pub y_mean: Vec<f64>,
    /// `d x p`, row-major
    pub weights: Vec<f32>,
    pub n_in: usize,
    pub n_out: usize,
    /// the penalty kept, relative to the mean of `diag(Xc^T Xc)`
    pub alpha: f64,
}

/// The sufficient statistics of ridge regression on some rows.
struct RidgeStats {
    x_mean: Vec<f64>,
    y_mean: Vec<f64>,
    gram: DMatrix<f64>,
    cross: DMatrix<f64>,
}

/// Rows of a target: sparse or dense.
#[derive(Debug, Clone, Copy)]
pub enum Rows<'a> {
    Csr(&'a Csr),
    Dense(ArrayView2<'a, f32>),
}

impl Rows<'_> {
    fn ncols(&self) -> usize {
        match self {
            Self::Csr(m) => m.ncols(),
            Self::Dense(a) => a.ncols(),
        }
    }

    fn for_each(&self, row: usize, mut f: impl FnMut(usize, f64)) {
        match self {
            Self::Csr(m) => {
                let r = m.row(row);
                for (j, v) in r.col_indices().iter().zip(r.values()) {
                    f(*j, f64::from(*v));
                }
            }
            Self::Dense(a) => {
                for (j, v) in a.row(row).iter().enumerate() {
                    if *v != 0.0 {
                        f(j, f64::from(*v));
                    }
                }
            }
        }
    }
}

fn ridge_stats(x: ArrayView2<f32>, y: Rows<'_>, cells: &[usize]) -> RidgeStats {
    let (d, p) = (x.ncols(), y.ncols());
    let n = cells.len().max(1) as f64;
    let mut x_mean = vec![0.0f64; d];
    let mut y_mean = vec![0.0f64; p];
    for &c in cells {
        for (m, v) in x_mean.iter_mut().zip(x.row(c)) {
            *m += f64::from(*v) / n;
        }
        y.for_each(c, |j, v| y_mean[j] += v / n);
    }
    let mut gram = DMatrix::<f64>::zeros(d, d);
    let mut cross = DMatrix::<f64>::zeros(d, p);
    let mut xc = vec![0.0f64; d];
    for &c in cells {
        for ((o, v), m) in xc.iter_mut().zip(x.row(c)).zip(&x_mean) {
            *o = f64::from(*v) - m;
        }
        for a in 0..d {
            for b in a..d {
                gram[(a, b)] += xc[a] * xc[b];
            }
        }
        // Xc^T Y = Xc^T (Y - 1 y_mean^T) since the columns of Xc sum to 0
        y.for_each(c, |j, v| {
            for a in 0..d {
                cross[(a, j)] += xc[a] * v;
            }
        });
    }
    for a in 0..d {
        for b in 0..a {
            gram[(a, b)] = gram[(b, a)];
        }
    }
    RidgeStats {
        x_mean,
        y_mean,
        gram,
        cross,
    }
}

impl LinearMap {
    fn solve(stats: &RidgeStats, alpha: f64) -> Result<Self> {
        let d = stats.gram.nrows();
        let scale = (stats.gram.trace() / d.max(1) as f64).max(f64::MIN_POSITIVE);
        let mut a = stats.gram.clone();
        for i in 0..d {
            a[(i, i)] += alpha * scale;
        }
        let chol = a.cholesky().ok_or_else(|| {
            ModelError::Input(format!(
                "ridge: X^T X + alpha I is not positive definite (alpha {alpha})"
            ))
        })?;
        let w = chol.solve(&stats.cross);
        let p = stats.cross.ncols();
        let mut weights = vec![0.0f32; d * p];
        for a in 0..d {
            for j in 0..p {
                weights[a * p + j] = w[(a, j)] as f32;
            }
        }
        Ok(Self {
            x_mean: stats.x_mean.clone(),
            y_mean: stats.y_mean.clone(),
            weights,
            n_in: d,
            n_out: p,
            alpha,
        })
    }

    /// Fits on rows `cells` of `x` and `y`, one map per penalty in `alphas`.
    pub fn fit_all(
        x: ArrayView2<f32>,
        y: Rows<'_>,
        cells: &[usize],
        alphas: &[f64],
    ) -> Result<Vec<Self>> {
        if cells.len() < 2 {
            return Err(ModelError::Input(format!(
                "ridge: {} training cells, need at least 2",
                cells.len()
            )));
        }
        if alphas.is_empty() || alphas.iter().any(|a| !(*a > 0.0 && a.is_finite())) {
            return Err(crate::ParamError::new(
                "alphas",
                format!("{alphas:?}: need at least one positive penalty"),
            )
            .into());
        }
        let stats = ridge_stats(x, y, cells);
        alphas.iter().map(|&a| Self::solve(&stats, a)).collect()
    }

    /// The prediction for rows `cells` of `x`.
    pub fn apply(&self, x: ArrayView2<f32>, cells: &[usize]) -> Result<Array2<f32>> {
        if x.ncols() != self.n_in {
            return Err(ModelError::Input(format!(
                "ridge: the input has {} columns, the map was fitted on {}",
                x.ncols(),
                self.n_in
            )));
        }
        let (d, p) = (self.n_in, self.n_out);
        let w = DMatrix::<f64>::from_fn(d, p, |a, j| f64::from(self.weights[a * p + j]));
        let xc = DMatrix::<f64>::from_fn(cells.len(), d, |r, a| {
            f64::from(x[[cells[r], a]]) - self.x_mean[a]
        });
        let y = xc * w;
        Ok(Array2::from_shape_fn((cells.len(), p), |(r, j)| {
            (y[(r, j)] + self.y_mean[j]) as f32
        }))
    }
}

/// Picks the candidate with the lowest validation MSE (the first when there are no
/// validation cells).
pub fn pick_on_validation<T>(
    candidates: Vec<T>,
    val: &[usize],
    truth: &Csr,
    predict: impl Fn(&T) -> Result<Array2<f32>>,
) -> Result<T> {
    if val.is_empty() || candidates.len() == 1 {
        return candidates
            .into_iter()
            .next()
            .ok_or_else(|| ModelError::Input("no candidate to choose from".into()));
    }
    let mut best: Option<(f64, T)> = None;
    for c in candidates {
        let e = mse(truth, val, &predict(&c)?);
        if best.as_ref().is_none_or(|(b, _)| e < *b) {
            best = Some((e, c));
        }
    }
    Ok(best.expect("at least one candidate").1)
}

/// A ridge map between two dense representations (e.g. a latent space and a PCA), its
/// penalty chosen on validation rows by the MSE of the dense target.
pub fn fit_dense_map(
    x: ArrayView2<f32>,
    y: ArrayView2<f32>,
    cells: FitCells<'_>,
    alphas: &[f64],
) -> Result<LinearMap> {
    let maps = LinearMap::fit_all(x, Rows::Dense(y), cells.train, alphas)?;
    if cells.val.is_empty() || maps.len() == 1 {
        return Ok(maps.into_iter().next().expect("at least one alpha"));
    }
    let mut best: Option<(f64, LinearMap)> = None;
    for m in maps {
        let pred = m.apply(x, cells.val)?;
        let mut e = 0.0f64;
        for (r, &c) in cells.val.iter().enumerate() {
            for j in 0..y.ncols() {
                e += (f64::from(pred[[r, j]]) - f64::from(y[[c, j]])).powi(2);
            }
        }
        if best.as_ref().is_none_or(|(b, _)| e < *b) {
            best = Some((e, m));
        }
    }
    Ok(best.expect("at least one alpha").1)
}
