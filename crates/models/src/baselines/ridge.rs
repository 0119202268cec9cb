//! The ridge-regression baseline: a linear map from the source's compact representation
//! to the target, per direction.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::linear::{LinearMap, Rows, pick_on_validation};
use super::{clip, prediction, source, target};
use crate::data::{CellData, FitCells};
use crate::error::{ModelError, Result};
use crate::spec::{BuildContext, Checked, ModelSpec, Needs, ParamError};
use crate::train::{EpochRecord, TrainHistory, TrainOptions};
use crate::translate::{Direction, Prediction, Translator, load_json, save_json};

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

impl Translator for Ridge {
    fn fit(
        &mut self,
        data: &CellData<'_>,
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
        data: &CellData<'_>,
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

impl ModelSpec for RidgeConfig {
    const TRANSLATES: bool = true;
    const BASELINE: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        if self.alphas.is_empty() {
            return Err(ParamError::new("alphas", "no penalty to try"));
        }
        if let Some(a) = self.alphas.iter().find(|a| !(a.is_finite() && **a > 0.0)) {
            return Err(ParamError::new(
                "alphas",
                format!("{a} is not a positive number"),
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
        Ok(Box::new(Ridge::new((**this).clone())))
    }
}
