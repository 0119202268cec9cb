//! What SAILERX reads, taken from the common [`CellData`].

use crossomics_data::Csr;
use ndarray::{Array2, ArrayView2};

use crate::data::CellData;
use crate::error::{ModelError, Result};

/// The RNA side of the symmetric variant, rows the same cells as the ATAC.
#[derive(Debug, Clone, Copy)]
pub struct RnaInput<'a> {
    /// What the RNA encoder reads (normalized, log1p), cells x genes.
    pub values: &'a Csr,
    /// What its negative binomial decoder reconstructs: raw counts, cells x genes.
    pub counts: &'a Csr,
    /// Confounders the RNA decoder is conditioned on (standardized log RNA depth, batch).
    pub covariates: ArrayView2<'a, f32>,
}

/// What SAILERX trains on, all rows the same cells.
#[derive(Debug, Clone, Copy)]
pub struct SailerxInput<'a> {
    /// Binarized peaks, cells x peaks.
    pub atac: &'a Csr,
    /// RNA PCA scores, the alignment target (cells x components).
    pub rna_pca: ArrayView2<'a, f32>,
    /// Confounders the decoder is conditioned on (cells x c; c may be 0).
    pub covariates: ArrayView2<'a, f32>,
    /// Per-cell alignment weights (all 1 to switch weighting off).
    pub cell_weights: &'a [f32],
    /// The RNA VAE's input: required by `symmetric`, ignored otherwise.
    pub rna: Option<RnaInput<'a>>,
}

impl SailerxInput<'_> {
    pub fn check(&self) -> Result<()> {
        let n = self.atac.nrows();
        let rows = [
            ("RNA PCA", self.rna_pca.nrows()),
            ("covariates", self.covariates.nrows()),
            ("cell weights", self.cell_weights.len()),
        ];
        let rna_rows = self.rna.iter().flat_map(|r| {
            [
                ("RNA values", r.values.nrows()),
                ("RNA counts", r.counts.nrows()),
                ("RNA covariates", r.covariates.nrows()),
            ]
        });
        for (what, got) in rows.into_iter().chain(rna_rows) {
            if got != n {
                return Err(ModelError::Input(format!(
                    "{what} has {got} rows, the ATAC matrix {n}"
                )));
            }
        }
        if self
            .rna_pca
            .iter()
            .chain(self.covariates.iter())
            .chain(self.cell_weights)
            .any(|v| !v.is_finite())
        {
            return Err(ModelError::Input(
                "non-finite value in the RNA PCA, covariates or cell weights".into(),
            ));
        }
        if let Some(r) = &self.rna {
            if r.values.ncols() != r.counts.ncols() {
                return Err(ModelError::Input(format!(
                    "RNA values have {} genes, RNA counts {}",
                    r.values.ncols(),
                    r.counts.ncols()
                )));
            }
            if r.counts
                .values()
                .iter()
                .any(|v| !(v.is_finite() && *v >= 0.0))
                || r.values.values().iter().any(|v| !v.is_finite())
                || r.covariates.iter().any(|v| !v.is_finite())
            {
                return Err(ModelError::Input(
                    "RNA counts must be finite and non-negative, RNA values and covariates finite"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// Stand-ins for the inputs that embedding does not read (the RNA PCA, the alignment
/// weights) when the data lacks them.
#[derive(Debug)]
pub(super) struct Placeholders {
    pca: Array2<f32>,
    weights: Vec<f32>,
}

impl Placeholders {
    pub(super) fn of(data: &CellData<'_>) -> Self {
        let n = data.n_cells().unwrap_or(0);
        Self {
            pca: Array2::zeros((n, 0)),
            weights: vec![1.0; n],
        }
    }
}

impl<'a> SailerxInput<'a> {
    /// SAILERX's input from the common data. `training`: the RNA PCA (the alignment
    /// target) is required, else a placeholder stands in; `symmetric`: the RNA values,
    /// counts and confounders of the RNA VAE. (Views are re-borrowed: ndarray's views do
    /// not shorten their lifetime by themselves.)
    pub(super) fn from_cells(
        data: &'a CellData<'_>,
        spare: &'a Placeholders,
        training: bool,
        symmetric: bool,
    ) -> Result<Self> {
        let by = "SAILERX";
        let atac: &'a Csr = CellData::need(data.atac, "binarized ATAC", by)?;
        let covariates =
            CellData::need(data.covariates.as_ref(), "the decoder confounders", by)?.view();
        let rna_pca = match data.rna_pca.as_ref() {
            Some(p) => p.view(),
            None if !training => spare.pca.view(),
            None => {
                return Err(ModelError::Input(
                    "training SAILERX needs the RNA PCA".into(),
                ));
            }
        };
        let rna = if symmetric {
            let by = "the symmetric SAILERX";
            Some(RnaInput {
                values: CellData::need(data.rna_values, "the normalized RNA", by)?,
                counts: CellData::need(data.rna_counts, "the RNA counts", by)?,
                covariates: CellData::need(
                    data.rna_covariates.as_ref(),
                    "the RNA confounders",
                    by,
                )?
                .view(),
            })
        } else {
            None
        };
        Ok(Self {
            atac,
            rna_pca,
            covariates,
            cell_weights: data.cell_weights.unwrap_or(&spare.weights),
            rna,
        })
    }
}
