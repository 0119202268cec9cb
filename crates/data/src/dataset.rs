//! The paired dataset: RNA and ATAC counts measured in the same cells.

use nalgebra_sparse::CsrMatrix;

pub use crate::cells::CellTable;
use crate::error::{DataError, Result};
use crate::genome::Peak;

/// RNA and ATAC counts of the same cells (row i is cell i in both), with their
/// feature tables. Construction checks that every shape agrees.
#[derive(Debug, Clone)]
pub struct PairedDataset {
    pub name: String,
    pub rna: CsrMatrix<f32>,
    pub atac: CsrMatrix<f32>,
    pub cells: CellTable,
    pub genes: Vec<String>,
    pub peaks: Vec<Peak>,
}

impl PairedDataset {
    pub fn new(
        name: impl Into<String>,
        rna: CsrMatrix<f32>,
        atac: CsrMatrix<f32>,
        cells: CellTable,
        genes: Vec<String>,
        peaks: Vec<Peak>,
    ) -> Result<Self> {
        let name = name.into();
        let what = |s: &str| format!("dataset `{name}`: {s}");
        if cells.is_empty() {
            return Err(DataError::Empty {
                what: what("cells"),
                reason: "no cells".into(),
            });
        }
        let checks = [
            (
                "RNA matrix rows",
                rna.nrows(),
                cells.len(),
                "the cell table",
            ),
            (
                "ATAC matrix rows",
                atac.nrows(),
                cells.len(),
                "the cell table",
            ),
            (
                "gene table",
                genes.len(),
                rna.ncols(),
                "the RNA matrix columns",
            ),
            (
                "peak table",
                peaks.len(),
                atac.ncols(),
                "the ATAC matrix columns",
            ),
        ];
        for (part, got, expected, by) in checks {
            if got != expected {
                return Err(DataError::invalid(
                    what(part),
                    format!("{got} entries, but {by} has {expected}"),
                ));
            }
        }
        if genes.is_empty() || peaks.is_empty() {
            return Err(DataError::Empty {
                what: what("features"),
                reason: format!("{} genes and {} peaks", genes.len(), peaks.len()),
            });
        }
        Ok(Self {
            name,
            rna,
            atac,
            cells,
            genes,
            peaks,
        })
    }

    pub fn n_cells(&self) -> usize {
        self.cells.len()
    }

    /// The dataset restricted to some cells (in the given order).
    pub fn subset_cells(&self, cells: &[usize]) -> Self {
        Self {
            name: self.name.clone(),
            rna: select_rows(&self.rna, cells),
            atac: select_rows(&self.atac, cells),
            cells: self.cells.subset(cells),
            genes: self.genes.clone(),
            peaks: self.peaks.clone(),
        }
    }

    /// The dataset restricted to some genes and peaks (in the given order).
    pub fn subset_features(&self, genes: &[usize], peaks: &[usize]) -> Self {
        Self {
            name: self.name.clone(),
            rna: select_columns(&self.rna, genes),
            atac: select_columns(&self.atac, peaks),
            cells: self.cells.clone(),
            genes: genes.iter().map(|&g| self.genes[g].clone()).collect(),
            peaks: peaks.iter().map(|&p| self.peaks[p].clone()).collect(),
        }
    }

    /// Peak column indices grouped by chromosome, in order of first appearance
    /// (the layout of chromosome-split ATAC encoders).
    pub fn chromosome_groups(&self) -> Vec<(String, Vec<usize>)> {
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, peak) in self.peaks.iter().enumerate() {
            match groups.iter_mut().find(|(c, _)| *c == peak.chrom) {
                Some((_, idx)) => idx.push(i),
                None => groups.push((peak.chrom.clone(), vec![i])),
            }
        }
        groups
    }
}

/// Rows of a CSR matrix, copying only the selected rows' entries.
pub fn select_rows(m: &CsrMatrix<f32>, rows: &[usize]) -> CsrMatrix<f32> {
    let mut offsets = Vec::with_capacity(rows.len() + 1);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    offsets.push(0);
    for &r in rows {
        let row = m.row(r);
        indices.extend_from_slice(row.col_indices());
        values.extend_from_slice(row.values());
        offsets.push(indices.len());
    }
    CsrMatrix::try_from_csr_data(rows.len(), m.ncols(), offsets, indices, values)
        .expect("rows of a valid CSR matrix form a valid CSR matrix")
}

/// Columns of a CSR matrix, renumbered in the given order; entries of other columns are dropped.
pub fn select_columns(m: &CsrMatrix<f32>, cols: &[usize]) -> CsrMatrix<f32> {
    let mapping: Vec<Option<usize>> = cols.iter().copied().map(Some).collect();
    crate::fitted::align_columns(m, &mapping)
}
