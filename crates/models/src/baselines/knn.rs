//! The kNN-regression baseline: the mean target of the nearest training cells in the
//! source's compact representation, per direction.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};

use super::linear::pick_on_validation;
use super::{clip, prediction, source, target};
use crate::data::{CellData, FitCells};
use crate::error::{ModelError, Result};
use crate::spec::{BuildContext, Checked, ModelSpec, Needs, ParamError};
use crate::train::{EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{Direction, Prediction, Translator, load_json, save_json};

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
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        if self.config.ks.is_empty() || self.config.ks.contains(&0) {
            return Err(ParamError::new(
                "ks",
                format!("{:?}: need at least one k >= 1", self.config.ks),
            )
            .into());
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
        data: &CellData<'_>,
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

impl ModelSpec for KnnRegressionConfig {
    const TRANSLATES: bool = true;
    const BASELINE: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err(ParamError::new(
                "ks",
                format!(
                    "{:?}: give at least one neighbour count, each >= 1",
                    self.ks
                ),
            ));
        }
        Ok(())
    }

    fn needs(&self) -> Needs {
        Needs {
            atac_lsi: true,
            ..Needs::default()
        }
    }

    fn translator(this: &Checked<Self>, _: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        Ok(Box::new(KnnRegression::new((**this).clone())))
    }
}
