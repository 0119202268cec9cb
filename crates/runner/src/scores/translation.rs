//! The translation metrics of one direction's predictions on the test cells, in the
//! order of the table's columns (definitions in `docs/models.md`, "Translation metrics").
//! ATAC: AUROC and AUPRC per peak (first: flattened values are dominated by the peaks'
//! means), flattened and per cell, RMSE against the binarized peaks (`rmse_atac`),
//! expected calibration error of the probabilities in 10 bins (`calibration_error`).
//! RNA: Pearson and Spearman per gene, flattened and per cell, RMSE (`rmse_rna`), on
//! log1p normalized values. (Two RMSE names, so that a table's
//! column never mixes the directions.)

use anyhow::Result;
use crossomics_metrics::prediction;
use crossomics_models::Direction;
use ndarray::ArrayView2;

/// Named values of a prediction against the truth (test cells x target features), for
/// the direction the metric scores.
pub trait PredictionMetric: Sync {
    /// The direction whose predictions the metric scores.
    fn direction(&self) -> Direction;
    fn score(
        &self,
        truth: ArrayView2<'_, f32>,
        predicted: ArrayView2<'_, f32>,
    ) -> Result<Vec<(String, f64)>>;
}

/// The translation task's metric set.
pub const METRICS: &[&dyn PredictionMetric] = &[&AtacRanking, &Calibration, &RnaCorrelation];

/// Every metric of `metrics` that scores `direction`, in order.
pub fn score_all(
    metrics: &[&dyn PredictionMetric],
    direction: Direction,
    truth: ArrayView2<'_, f32>,
    predicted: ArrayView2<'_, f32>,
) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for m in metrics.iter().filter(|m| m.direction() == direction) {
        out.extend(m.score(truth, predicted)?);
    }
    Ok(out)
}

/// AUROC / AUPRC flattened, per cell, per peak, and the RMSE (RNA -> ATAC).
#[derive(Debug)]
pub struct AtacRanking;

impl PredictionMetric for AtacRanking {
    fn direction(&self) -> Direction {
        Direction::RnaToAtac
    }

    fn score(
        &self,
        truth: ArrayView2<'_, f32>,
        p: ArrayView2<'_, f32>,
    ) -> Result<Vec<(String, f64)>> {
        let r = prediction::atac_report(truth, p)?;
        // per peak first: flattened values are dominated by the peaks' means
        Ok(vec![
            ("auroc_per_peak".to_string(), r.auroc[2].value),
            ("auprc_per_peak".into(), r.auprc[2].value),
            ("auroc".into(), r.auroc[0].value),
            ("auprc".into(), r.auprc[0].value),
            ("auroc_per_cell".into(), r.auroc[1].value),
            ("auprc_per_cell".into(), r.auprc[1].value),
            ("rmse_atac".into(), prediction::rmse(truth, p)?),
        ])
    }
}

/// Expected calibration error of the peak probabilities, 10 bins (RNA -> ATAC).
#[derive(Debug)]
pub struct Calibration;

impl PredictionMetric for Calibration {
    fn direction(&self) -> Direction {
        Direction::RnaToAtac
    }

    fn score(
        &self,
        truth: ArrayView2<'_, f32>,
        p: ArrayView2<'_, f32>,
    ) -> Result<Vec<(String, f64)>> {
        Ok(vec![(
            "calibration_error".into(),
            prediction::calibration(truth, p, 10)?.ece,
        )])
    }
}

/// Pearson / Spearman flattened, per cell, per gene, and the RMSE (ATAC -> RNA).
#[derive(Debug)]
pub struct RnaCorrelation;

impl PredictionMetric for RnaCorrelation {
    fn direction(&self) -> Direction {
        Direction::AtacToRna
    }

    fn score(
        &self,
        truth: ArrayView2<'_, f32>,
        p: ArrayView2<'_, f32>,
    ) -> Result<Vec<(String, f64)>> {
        let r = prediction::rna_report(truth, p)?;
        // per gene first: flattened values are dominated by the genes' means
        Ok(vec![
            ("pearson_per_gene".to_string(), r.pearson[2].value),
            ("spearman_per_gene".into(), r.spearman[2].value),
            ("pearson".into(), r.pearson[0].value),
            ("spearman".into(), r.spearman[0].value),
            ("pearson_per_cell".into(), r.pearson[1].value),
            ("spearman_per_cell".into(), r.spearman[1].value),
            ("rmse_rna".into(), r.rmse),
        ])
    }
}
