//! The baselines the NeurIPS 2021 predict-modality competition showed to be strong:
//! ridge regression and k-nearest-neighbour regression from a compact representation of
//! the source modality (RNA PCA for RNA -> ATAC, ATAC LSI for ATAC -> RNA) to the target
//! values. Plain linear algebra, no tch.
//!
//! Each baseline picks its one hyperparameter (ridge `alpha`, kNN `k`) on the validation
//! cells, which are disjoint from the test cells: the mean squared error of the validation
//! prediction decides.

use std::path::Path;

use crossomics_data::Csr;
use nalgebra::DMatrix;
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::train::{EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{
    Direction, FitCells, Prediction, TranslationData, Translator, load_json, save_json,
};

/// `[model] kind = "ridge"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RidgeConfig {
    /// Penalties tried, relative to the mean of `diag(Xc^T Xc)` (so the grid does not
    /// depend on the scale of the representation); the best on the validation cells is kept.
    pub alphas: Vec<f64>,
}

impl Default for RidgeConfig {
    fn default() -> Self {
        Self {
            alphas: vec![1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0],
        }
    }
}

/// `[model] kind = "knn_regression"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KnnRegressionConfig {
    /// Neighbour counts tried; the best on the validation cells is kept.
    pub ks: Vec<usize>,
}

impl Default for KnnRegressionConfig {
    fn default() -> Self {
        Self {
            ks: vec![5, 15, 50],
        }
    }
}

/// The source representation and target values of a direction.
fn source<'a>(data: &TranslationData<'a>, d: Direction) -> Result<ArrayView2<'a, f32>> {
    match d {
        Direction::RnaToAtac => TranslationData::need(
            data.rna_pca,
            "the RNA PCA (an `rna_pca` step)",
            "RNA -> ATAC",
        ),
        Direction::AtacToRna => TranslationData::need(
            data.atac_lsi,
            "the ATAC LSI (an `atac_lsi` step)",
            "ATAC -> RNA",
        ),
    }
}

fn target<'a>(data: &TranslationData<'a>, d: Direction) -> Result<&'a Csr> {
    match d {
        Direction::RnaToAtac => {
            TranslationData::need(data.atac, "binarized ATAC", "fitting RNA -> ATAC")
        }
        Direction::AtacToRna => TranslationData::need(
            data.rna_values,
            "log1p-normalized RNA",
            "fitting ATAC -> RNA",
        ),
    }
}

/// Clips a prediction into the target's range: probabilities, or non-negative log1p values.
fn clip(mut y: Array2<f32>, d: Direction) -> Array2<f32> {
    match d {
        Direction::RnaToAtac => y.mapv_inplace(|v| v.clamp(0.0, 1.0)),
        Direction::AtacToRna => y.mapv_inplace(|v| v.max(0.0)),
    }
    y
}

fn prediction(y: Array2<f32>, d: Direction) -> Prediction {
    match d {
        Direction::RnaToAtac => Prediction::Atac { probabilities: y },
        Direction::AtacToRna => Prediction::Rna {
            log1p: y,
            expected_counts: None,
        },
    }
}

/// Mean squared error between rows `cells` of `truth` and `pred` (dense, same rows).
fn mse(truth: &Csr, cells: &[usize], pred: &Array2<f32>) -> f64 {
    let mut total = 0.0f64;
    for (r, &c) in cells.iter().enumerate() {
        let row = truth.row(c);
        let mut sq: f64 = pred.row(r).iter().map(|&p| f64::from(p).powi(2)).sum();
        for (j, v) in row.col_indices().iter().zip(row.values()) {
            let p = f64::from(pred[[r, *j]]);
            let v = f64::from(*v);
            sq += (p - v).powi(2) - p.powi(2);
        }
        total += sq;
    }
    total / (cells.len() * truth.ncols()).max(1) as f64
}

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
            return Err(ModelError::Parameter {
                name: "model.alphas",
                reason: format!("{alphas:?}: need at least one positive penalty"),
            });
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

/// Ridge regression per direction, its penalty chosen on the validation cells.
#[derive(Debug, Clone, Default)]
pub struct Ridge {
    pub config: RidgeConfig,
    maps: Vec<(Direction, LinearMap)>,
}

impl Ridge {
    pub fn new(config: RidgeConfig) -> Self {
        Self {
            config,
            maps: Vec::new(),
        }
    }

    pub fn map(&self, d: Direction) -> Option<&LinearMap> {
        self.maps.iter().find(|(k, _)| *k == d).map(|(_, m)| m)
    }
}

/// Picks the candidate with the lowest validation MSE (the first when there are no
/// validation cells).
pub(crate) fn pick_on_validation<T>(
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

impl Translator for Ridge {
    fn kind(&self) -> &'static str {
        "ridge"
    }

    fn fit(
        &mut self,
        data: &TranslationData<'_>,
        cells: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        self.maps.clear();
        for d in Direction::BOTH {
            let (x, y) = (source(data, d)?, target(data, d)?);
            let maps = LinearMap::fit_all(x, Rows::Csr(y), cells.train, &self.config.alphas)?;
            let best =
                pick_on_validation(maps, cells.val, y, |m| Ok(clip(m.apply(x, cells.val)?, d)))?;
            tracing::info!(
                "ridge {d}: alpha {} chosen on the validation cells",
                best.alpha
            );
            self.maps.push((d, best));
        }
        Ok(TrainHistory::default())
    }

    fn translate(
        &self,
        data: &TranslationData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let map = self
            .map(direction)
            .ok_or_else(|| ModelError::Input(format!("ridge: not fitted for {direction}")))?;
        let y = map.apply(source(data, direction)?, cells)?;
        Ok(prediction(clip(y, direction), direction))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_json(dir, "ridge.json", &self.maps)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.maps = load_json(dir, "ridge.json")?;
        Ok(())
    }
}

/// kNN regression per direction: the mean target of the `k` training cells nearest in
/// the source representation (Euclidean), `k` chosen on the validation cells.
#[derive(Debug, Clone, Default)]
pub struct KnnRegression {
    pub config: KnnRegressionConfig,
    fitted: Vec<KnnFit>,
}

/// What a fitted direction keeps: the training cells' source rows and target rows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct KnnFit {
    direction: Direction,
    k: usize,
    /// training cells x source dims, row-major
    source: Vec<f32>,
    dims: usize,
    /// target rows of the training cells (CSR parts)
    offsets: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f32>,
    n_out: usize,
}

impl KnnFit {
    fn source_view(&self) -> ArrayView2<'_, f32> {
        ArrayView2::from_shape(
            (self.source.len() / self.dims.max(1), self.dims),
            &self.source,
        )
        .expect("stored with its shape")
    }

    /// The mean of the `k` nearest training targets for each row of `queries`.
    fn predict(&self, queries: ArrayView2<f32>, k: usize) -> Result<Array2<f32>> {
        let n_train = self.offsets.len() - 1;
        let k = k.min(n_train).max(1);
        let nn = crossomics_metrics::knn::exact_knn(self.source_view(), queries, k)
            .map_err(|e| ModelError::Input(format!("kNN regression: {e}")))?;
        let mut out = Array2::<f32>::zeros((queries.nrows(), self.n_out));
        let mut acc = vec![0.0f64; self.n_out];
        for q in 0..queries.nrows() {
            acc.iter_mut().for_each(|a| *a = 0.0);
            for &t in nn.indices_of(q) {
                for e in self.offsets[t]..self.offsets[t + 1] {
                    acc[self.indices[e]] += f64::from(self.values[e]);
                }
            }
            for (o, a) in out.row_mut(q).iter_mut().zip(&acc) {
                *o = (*a / k as f64) as f32;
            }
        }
        Ok(out)
    }
}

impl KnnRegression {
    pub fn new(config: KnnRegressionConfig) -> Self {
        Self {
            config,
            fitted: Vec::new(),
        }
    }

    /// The `k` chosen for a direction.
    pub fn k(&self, d: Direction) -> Option<usize> {
        self.fitted.iter().find(|f| f.direction == d).map(|f| f.k)
    }
}

fn select_rows_of(x: ArrayView2<f32>, cells: &[usize]) -> Array2<f32> {
    x.select(ndarray::Axis(0), cells)
}

impl Translator for KnnRegression {
    fn kind(&self) -> &'static str {
        "knn_regression"
    }

    fn fit(
        &mut self,
        data: &TranslationData<'_>,
        cells: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        if self.config.ks.is_empty() || self.config.ks.contains(&0) {
            return Err(ModelError::Parameter {
                name: "model.ks",
                reason: format!("{:?}: need at least one k >= 1", self.config.ks),
            });
        }
        if cells.train.is_empty() {
            return Err(ModelError::Input(
                "kNN regression: no training cells".into(),
            ));
        }
        self.fitted.clear();
        for d in Direction::BOTH {
            let (x, y) = (source(data, d)?, target(data, d)?);
            let mut offsets = vec![0];
            let (mut indices, mut values) = (Vec::new(), Vec::new());
            for &c in cells.train {
                let row = y.row(c);
                indices.extend_from_slice(row.col_indices());
                values.extend_from_slice(row.values());
                offsets.push(indices.len());
            }
            let base = KnnFit {
                direction: d,
                k: 0,
                source: select_rows_of(x, cells.train).iter().copied().collect(),
                dims: x.ncols(),
                offsets,
                indices,
                values,
                n_out: y.ncols(),
            };
            let val_x = select_rows_of(x, cells.val);
            let candidates: Vec<usize> = self.config.ks.clone();
            let k =
                pick_on_validation(candidates, cells.val, y, |&k| base.predict(val_x.view(), k))?;
            tracing::info!("kNN regression {d}: k = {k} chosen on the validation cells");
            self.fitted.push(KnnFit { k, ..base });
        }
        Ok(TrainHistory::default())
    }

    fn translate(
        &self,
        data: &TranslationData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let fit = self
            .fitted
            .iter()
            .find(|f| f.direction == direction)
            .ok_or_else(|| {
                ModelError::Input(format!("kNN regression: not fitted for {direction}"))
            })?;
        let x = source(data, direction)?;
        if x.ncols() != fit.dims {
            return Err(ModelError::Input(format!(
                "kNN regression: the input has {} columns, the model {}",
                x.ncols(),
                fit.dims
            )));
        }
        let y = fit.predict(select_rows_of(x, cells).view(), fit.k)?;
        Ok(prediction(clip(y, direction), direction))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_json(dir, "knn_regression.json", &self.fitted)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.fitted = load_json(dir, "knn_regression.json")?;
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra_sparse::CooMatrix;

    fn csr_from(a: &Array2<f32>) -> Csr {
        let mut coo = CooMatrix::new(a.nrows(), a.ncols());
        for ((i, j), v) in a.indexed_iter() {
            if *v != 0.0 {
                coo.push(i, j, *v);
            }
        }
        Csr::from(&coo)
    }

    /// Ridge against the closed form computed densely: `W = (Xc^T Xc + lambda I)^-1 Xc^T Yc`.
    #[test]
    fn ridge_matches_the_dense_closed_form() {
        let n = 30;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
        let y = Array2::from_shape_fn((n, 4), |(i, j)| {
            if (i + j) % 3 == 0 {
                0.0
            } else {
                x[[i, 0]] * j as f32 - x[[i, 2]] + 1.5
            }
        });
        let cells: Vec<usize> = (0..n).collect();
        let map =
            &LinearMap::fit_all(x.view(), Rows::Csr(&csr_from(&y)), &cells, &[0.5]).unwrap()[0];
        let dense =
            &LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &cells, &[0.5]).unwrap()[0];
        assert_eq!(map, dense, "sparse and dense targets give the same map");
        // brute force in f64
        let xm: Vec<f64> = (0..3)
            .map(|j| (0..n).map(|i| f64::from(x[[i, j]])).sum::<f64>() / n as f64)
            .collect();
        let ym: Vec<f64> = (0..4)
            .map(|j| (0..n).map(|i| f64::from(y[[i, j]])).sum::<f64>() / n as f64)
            .collect();
        let xc = DMatrix::from_fn(n, 3, |i, j| f64::from(x[[i, j]]) - xm[j]);
        let yc = DMatrix::from_fn(n, 4, |i, j| f64::from(y[[i, j]]) - ym[j]);
        let g = xc.transpose() * &xc;
        let lambda = 0.5 * g.trace() / 3.0;
        let w = (g + DMatrix::identity(3, 3) * lambda)
            .try_inverse()
            .unwrap()
            * xc.transpose()
            * yc;
        for a in 0..3 {
            for j in 0..4 {
                assert!(
                    (f64::from(map.weights[a * 4 + j]) - w[(a, j)]).abs() < 1e-5,
                    "{a},{j}"
                );
            }
        }
        let pred = map.apply(x.view(), &[2, 5]).unwrap();
        for (r, &c) in [2usize, 5].iter().enumerate() {
            for j in 0..4 {
                let want: f64 = ym[j]
                    + (0..3)
                        .map(|a| (f64::from(x[[c, a]]) - xm[a]) * w[(a, j)])
                        .sum::<f64>();
                assert!((f64::from(pred[[r, j]]) - want).abs() < 1e-4);
            }
        }
        assert!(LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &cells, &[]).is_err());
        assert!(LinearMap::fit_all(x.view(), Rows::Dense(y.view()), &[0], &[1.0]).is_err());
        assert!(map.apply(y.view(), &[0]).is_err(), "wrong input width");
    }

    /// Two groups of cells with their own peaks: both baselines must recover them, and the
    /// kNN prediction is the mean of the neighbours' rows.
    #[test]
    fn baselines_predict_both_directions_and_choose_on_validation() {
        let n = 60;
        let group = |i: usize| i % 2;
        let pca = Array2::from_shape_fn((n, 2), |(i, j)| {
            if j == group(i) {
                3.0 + (i % 5) as f32 * 0.1
            } else {
                (i % 3) as f32 * 0.1
            }
        });
        let lsi = pca.mapv(|v| v * 0.5);
        let atac = csr_from(&Array2::from_shape_fn((n, 6), |(i, j)| {
            f32::from(u8::from(j / 3 == group(i)))
        }));
        let rna = csr_from(&Array2::from_shape_fn((n, 4), |(i, j)| {
            if j / 2 == group(i) { 2.0 } else { 0.0 }
        }));
        let data = TranslationData {
            rna_values: Some(&rna),
            rna_pca: Some(pca.view()),
            atac: Some(&atac),
            atac_lsi: Some(lsi.view()),
            ..Default::default()
        };
        let cells: Vec<usize> = (0..n).collect();
        let fit = FitCells {
            train: &cells[..40],
            val: &cells[40..50],
        };
        let test = &cells[50..];
        let mut models: Vec<Box<dyn Translator>> = vec![
            Box::new(Ridge::new(RidgeConfig::default())),
            Box::new(KnnRegression::new(KnnRegressionConfig {
                ks: vec![1, 5, 39],
            })),
        ];
        for m in &mut models {
            m.fit(&data, fit, &TrainOptions::default(), 0, &mut |_| {})
                .unwrap();
            let source_only = TranslationData {
                rna_values: None,
                atac: None,
                ..data
            };
            let Prediction::Atac { probabilities } = m
                .translate(&source_only, test, Direction::RnaToAtac)
                .unwrap()
            else {
                panic!("ATAC expected");
            };
            assert_eq!(probabilities.dim(), (10, 6));
            assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
            for (r, &c) in test.iter().enumerate() {
                for j in 0..6 {
                    let want = f32::from(u8::from(j / 3 == group(c)));
                    assert!(
                        (probabilities[[r, j]] - want).abs() < 0.25,
                        "{}: {r},{j}",
                        m.kind()
                    );
                }
            }
            let Prediction::Rna { log1p, .. } = m
                .translate(&source_only, test, Direction::AtacToRna)
                .unwrap()
            else {
                panic!("RNA expected");
            };
            assert_eq!(log1p.dim(), (10, 4));
            assert!(log1p.iter().all(|v| *v >= 0.0));
            // save and load give the same predictions
            let dir = tempfile::tempdir().unwrap();
            m.save(dir.path()).unwrap();
            let mut back: Box<dyn Translator> = match m.kind() {
                "ridge" => Box::new(Ridge::new(RidgeConfig::default())),
                _ => Box::new(KnnRegression::new(KnnRegressionConfig::default())),
            };
            back.load(dir.path()).unwrap();
            assert_eq!(
                back.translate(&source_only, test, Direction::AtacToRna)
                    .unwrap(),
                m.translate(&source_only, test, Direction::AtacToRna)
                    .unwrap()
            );
            // no source: a clear error
            let none = TranslationData::default();
            let e = m
                .translate(&none, test, Direction::RnaToAtac)
                .unwrap_err()
                .to_string();
            assert!(e.contains("RNA PCA"), "{e}");
        }
        // k = 39 averages nearly everything and is a poor fit: validation must not pick it
        let mut knn = KnnRegression::new(KnnRegressionConfig { ks: vec![39, 5] });
        knn.fit(&data, fit, &TrainOptions::default(), 0, &mut |_| {})
            .unwrap();
        assert_eq!(knn.k(Direction::RnaToAtac), Some(5));
        // the kNN prediction is the mean of the k nearest training rows (brute force)
        let mut one = KnnRegression::new(KnnRegressionConfig { ks: vec![3] });
        one.fit(
            &data,
            FitCells {
                train: &cells[..40],
                val: &[],
            },
            &TrainOptions::default(),
            0,
            &mut |_| {},
        )
        .unwrap();
        let got = one.translate(&data, &[45], Direction::RnaToAtac).unwrap();
        let mut d: Vec<(f64, usize)> = (0..40)
            .map(|t| {
                let e: f64 = (0..2)
                    .map(|j| (f64::from(pca[[t, j]]) - f64::from(pca[[45, j]])).powi(2))
                    .sum();
                (e, t)
            })
            .collect();
        d.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let dense_atac = crate::translate::dense_rows(&atac, &cells);
        for j in 0..6 {
            let want: f32 = d[..3].iter().map(|(_, t)| dense_atac[[*t, j]]).sum::<f32>() / 3.0;
            assert!((got.values()[[0, j]] - want).abs() < 1e-6);
        }
    }
}
