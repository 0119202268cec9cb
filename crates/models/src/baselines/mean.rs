//! The trivial baseline: every cell gets the per-feature mean of the training cells'
//! target (peak opening rates, mean log1p expression), whatever its source. A model that
//! does not beat it has learned nothing cell-specific.

use std::path::Path;

use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::{prediction, target};
use crate::data::{CellData, FitCells};
use crate::error::{ModelError, Result};
use crate::spec::{BuildContext, Checked, ModelSpec, ParamError};
use crate::train::{EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{Direction, Prediction, Translator, load_json, save_json};

/// `[model] kind = "mean"` (no parameters).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MeanConfig {}

impl ModelSpec for MeanConfig {
    const TRANSLATES: bool = true;
    const BASELINE: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        Ok(())
    }

    fn translator(_: &Checked<Self>, _: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        Ok(Box::new(Mean::default()))
    }
}

/// The training cells' mean of each target feature, per direction.
#[derive(Debug, Default)]
pub struct Mean {
    means: Vec<(Direction, Vec<f32>)>,
}

impl Translator for Mean {
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        if cells.train.is_empty() {
            return Err(ModelError::Input("no training cells".into()));
        }
        self.means.clear();
        for d in [Direction::RnaToAtac, Direction::AtacToRna] {
            let Ok(y) = target(data, d) else { continue };
            let mut sums = vec![0f64; y.ncols()];
            for &c in cells.train {
                let row = y.row(c);
                for (j, v) in row.col_indices().iter().zip(row.values()) {
                    sums[*j] += f64::from(*v);
                }
            }
            let n = cells.train.len() as f64;
            self.means
                .push((d, sums.into_iter().map(|s| (s / n) as f32).collect()));
        }
        Ok(TrainHistory::default())
    }

    fn translate(
        &self,
        _: &CellData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let (_, means) = self
            .means
            .iter()
            .find(|(d, _)| *d == direction)
            .ok_or_else(|| ModelError::Input(format!("mean: {direction} was not fitted")))?;
        let row = ndarray::ArrayView1::from(means.as_slice());
        let y = Array2::from_shape_fn((cells.len(), means.len()), |(_, j)| row[j]);
        Ok(prediction(y, direction))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        save_json(dir, "mean.json", &self.means)
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.means = load_json(dir, "mean.json")?;
        Ok(())
    }
}
