//! The baselines the NeurIPS 2021 predict-modality competition showed to be strong:
//! ridge regression and k-nearest-neighbour regression from a compact representation of
//! the source modality (RNA PCA for RNA -> ATAC, ATAC LSI for ATAC -> RNA) to the target
//! values. Plain linear algebra, no tch.
//!
//! Each baseline picks its one hyperparameter (ridge `alpha`, kNN `k`) on the validation
//! cells, which are disjoint from the test cells: the mean squared error of the validation
//! prediction decides.

mod knn;
mod linear;
mod mean;
mod ridge;

#[cfg(test)]
mod tests;

use crossomics_data::Csr;
use ndarray::{Array2, ArrayView2};

use crate::data::CellData;
use crate::error::Result;
use crate::translate::{Direction, Prediction};

pub use knn::{KnnRegression, KnnRegressionConfig};
pub use linear::{LinearMap, Rows, fit_dense_map, pick_on_validation};
pub use mean::{Mean, MeanConfig};
pub use ridge::{Ridge, RidgeConfig};

/// The source representation and target values of a direction.
pub(crate) fn source<'a>(data: &CellData<'a>, d: Direction) -> Result<ArrayView2<'a, f32>> {
    match d {
        Direction::RnaToAtac => CellData::need(
            data.rna_pca,
            "the RNA PCA (an `rna_pca` step)",
            "RNA -> ATAC",
        ),
        Direction::AtacToRna => CellData::need(
            data.atac_lsi,
            "the ATAC LSI (an `atac_lsi` step)",
            "ATAC -> RNA",
        ),
    }
}

pub(crate) fn target<'a>(data: &CellData<'a>, d: Direction) -> Result<&'a Csr> {
    match d {
        Direction::RnaToAtac => CellData::need(data.atac, "binarized ATAC", "fitting RNA -> ATAC"),
        Direction::AtacToRna => CellData::need(
            data.rna_values,
            "log1p-normalized RNA",
            "fitting ATAC -> RNA",
        ),
    }
}

/// Clips a prediction into the target's range: probabilities, or non-negative log1p values.
pub(crate) fn clip(mut y: Array2<f32>, d: Direction) -> Array2<f32> {
    match d {
        Direction::RnaToAtac => y.mapv_inplace(|v| v.clamp(0.0, 1.0)),
        Direction::AtacToRna => y.mapv_inplace(|v| v.max(0.0)),
    }
    y
}

pub(crate) fn prediction(y: Array2<f32>, d: Direction) -> Prediction {
    match d {
        Direction::RnaToAtac => Prediction::Atac { probabilities: y },
        Direction::AtacToRna => Prediction::Rna {
            log1p: y,
            expected_counts: None,
        },
    }
}

/// Mean squared error between rows `cells` of `truth` and `pred` (dense, same rows).
pub(crate) fn mse(truth: &Csr, cells: &[usize], pred: &Array2<f32>) -> f64 {
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
