//! The one data contract of every model: [`CellData`], the prepared inputs of some cells
//! (in memory, rows = cells), which cells to fit on ([`FitCells`]), and what is known of a
//! cell before its other modality is predicted ([`CellData::source_only`]).

use crossomics_data::Csr;
use ndarray::ArrayView2;

use crossomics_encoders::CsrBatch;

use crate::error::{ModelError, Result};
use crate::train::ExtraCells;
use crate::train::Minibatch;
use crate::translate::Direction;

/// The prepared inputs of some cells, as every model reads them: each present field has
/// one row per cell, the same cells in the same order. Fitting needs both modalities;
/// translating and embedding from one modality need only that modality's fields
/// ([`CellData::source_only`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct CellData<'a> {
    /// RNA, log1p normalized (cells x genes).
    pub rna_values: Option<&'a Csr>,
    /// RNA raw counts (the count likelihood's target).
    pub rna_counts: Option<&'a Csr>,
    /// `s_i = library_i / target_sum` of every cell (the count likelihood's scale).
    pub rna_size_factors: Option<&'a [f32]>,
    /// RNA PCA scores (a compact RNA representation for the baselines).
    pub rna_pca: Option<ArrayView2<'a, f32>>,
    /// ATAC, binarized (cells x peaks).
    pub atac: Option<&'a Csr>,
    /// ATAC LSI scores (a compact ATAC representation for the baselines).
    pub atac_lsi: Option<ArrayView2<'a, f32>>,
    /// CrossMP's gene activity: ATAC through the peak-to-gene regulatory potential,
    /// log1p (cells x genes of the activity table).
    pub gene_activity: Option<&'a Csr>,
    /// SAILERX's per-cell alignment weights (training only; all 1 when absent).
    pub cell_weights: Option<&'a [f32]>,
    /// Confounders a decoder is conditioned on (cells x c), e.g. SAILERX's ATAC decoder;
    /// for cells whose ATAC is unknown all 0 (the mean standardized depth, no batch).
    pub covariates: Option<ArrayView2<'a, f32>>,
    /// Confounders of an RNA decoder (the symmetric SAILERX): standardized log RNA depth
    /// and the batch one-hot.
    pub rna_covariates: Option<ArrayView2<'a, f32>>,
}

impl<'a> CellData<'a> {
    /// The number of cells, from the first field present.
    pub fn n_cells(&self) -> Option<usize> {
        self.rna_values
            .map(|m| m.nrows())
            .or(self.rna_counts.map(|m| m.nrows()))
            .or(self.rna_pca.map(|a| a.nrows()))
            .or(self.atac.map(|m| m.nrows()))
            .or(self.atac_lsi.map(|a| a.nrows()))
            .or(self.gene_activity.map(|m| m.nrows()))
    }

    /// Checks that every present field has the same number of rows and finite values.
    pub fn check(&self) -> Result<()> {
        let n = self
            .n_cells()
            .ok_or_else(|| ModelError::Input("no input at all".into()))?;
        let rows = [
            ("RNA values", self.rna_values.map(|m| m.nrows())),
            ("RNA counts", self.rna_counts.map(|m| m.nrows())),
            ("RNA size factors", self.rna_size_factors.map(<[f32]>::len)),
            ("RNA PCA", self.rna_pca.map(|a| a.nrows())),
            ("ATAC", self.atac.map(|m| m.nrows())),
            ("ATAC LSI", self.atac_lsi.map(|a| a.nrows())),
            ("gene activity", self.gene_activity.map(|m| m.nrows())),
            ("covariates", self.covariates.map(|a| a.nrows())),
            ("RNA covariates", self.rna_covariates.map(|a| a.nrows())),
            ("cell weights", self.cell_weights.map(<[f32]>::len)),
        ];
        for (what, got) in rows {
            if let Some(got) = got
                && got != n
            {
                return Err(ModelError::Input(format!(
                    "{what} has {got} rows, other inputs {n}"
                )));
            }
        }
        let finite_csr =
            |m: Option<&Csr>| m.is_none_or(|m| m.values().iter().all(|v| v.is_finite()));
        let finite_arr =
            |a: Option<ArrayView2<f32>>| a.is_none_or(|a| a.iter().all(|v| v.is_finite()));
        if !(finite_csr(self.rna_values)
            && finite_csr(self.rna_counts)
            && finite_csr(self.atac)
            && finite_csr(self.gene_activity)
            && finite_arr(self.rna_pca)
            && finite_arr(self.atac_lsi)
            && finite_arr(self.covariates)
            && finite_arr(self.rna_covariates)
            && self
                .rna_size_factors
                .is_none_or(|s| s.iter().all(|v| v.is_finite() && *v > 0.0)))
        {
            return Err(ModelError::Input(
                "non-finite input values (or a size factor that is not positive)".into(),
            ));
        }
        Ok(())
    }

    /// A required field, or an error naming it and what needs it.
    pub fn need<T>(field: Option<T>, what: &str, by: &str) -> Result<T> {
        field.ok_or_else(|| ModelError::Input(format!("{by} needs {what}")))
    }
}

impl<'a> CellData<'a> {
    /// Only what is known of a cell before its `direction`'s target is predicted: the
    /// source modality's fields; an RNA -> ATAC translation decodes with every ATAC
    /// confounder at its reference, `reference_covariates` (0: the mean standardized
    /// depth, no batch), since the cell's ATAC depth and batch are unknown.
    pub fn source_only(
        &self,
        direction: Direction,
        reference_covariates: ArrayView2<'a, f32>,
    ) -> CellData<'a> {
        match direction {
            Direction::RnaToAtac => CellData {
                rna_values: self.rna_values,
                rna_counts: self.rna_counts,
                rna_size_factors: self.rna_size_factors,
                rna_pca: self.rna_pca,
                rna_covariates: self.rna_covariates,
                covariates: Some(reference_covariates),
                ..CellData::default()
            },
            Direction::AtacToRna => CellData {
                atac: self.atac,
                atac_lsi: self.atac_lsi,
                gene_activity: self.gene_activity,
                covariates: self.covariates,
                ..CellData::default()
            },
        }
    }
}

/// The training cells of a model and where its validation loss comes from.
#[derive(Debug, Clone, Copy)]
pub struct FitCells<'c> {
    pub train: &'c [usize],
    /// Disjoint from the test cells, always (the published CrossMP code validated on its
    /// test set).
    pub val: &'c [usize],
    /// Training cells whose RNA is hidden from the model (SAILERX's hybrid mode), each
    /// `every`-th step a batch of them; only for models whose `Needs` take them.
    pub extra: Option<ExtraCells<'c>>,
}

pub use crossomics_data::preprocess::dense_rows;

/// Source `source`'s rows of a loaded minibatch as CSR slices, for a sparse first layer
/// (`None` when they were not loaded as CSR).
pub fn csr_batch<'b>(batch: &Minibatch<'b>, source: usize) -> Result<Option<CsrBatch<'b>>> {
    batch
        .sparse(source)
        .map(|rows| {
            CsrBatch::new(
                rows.nrows,
                rows.ncols,
                rows.indptr,
                rows.indices,
                rows.values,
            )
        })
        .transpose()
        .map_err(|e| ModelError::Input(format!("minibatch source {source}: {e}")))
}
