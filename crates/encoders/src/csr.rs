//! A minibatch of cells in CSR form, borrowed as plain slices.

use tch::{Device, Kind, Tensor};

use crate::EncoderError;

/// Rows of a sparse cells x features matrix: row `i` holds the columns
/// `indices[indptr[i]..indptr[i + 1]]` with `values` at the same positions.
///
/// The layout is the one `crossomics_data::loader::CsrRows` hands out (re-based to the
/// batch, so `indptr[0] == 0`); this crate takes the slices rather than the type so
/// that it does not depend on the data crate. Columns within a row need not be sorted;
/// a column repeated within a row counts as the sum of its values (COO semantics), in
/// the sparse layers and in [`CsrBatch::to_dense`] alike.
#[derive(Debug, Clone, Copy)]
pub struct CsrBatch<'a> {
    pub nrows: usize,
    pub ncols: usize,
    pub indptr: &'a [i64],
    pub indices: &'a [i64],
    pub values: &'a [f32],
}

impl<'a> CsrBatch<'a> {
    /// Checks the layout: `indptr` has `nrows + 1` non-decreasing entries from 0 to
    /// `nnz`, `indices` and `values` have `nnz` entries, every column is in `0..ncols`.
    pub fn new(
        nrows: usize,
        ncols: usize,
        indptr: &'a [i64],
        indices: &'a [i64],
        values: &'a [f32],
    ) -> Result<Self, EncoderError> {
        let bad = |why: String| Err(EncoderError::Csr(why));
        if indptr.len() != nrows + 1 {
            return bad(format!(
                "indptr has {} entries, expected nrows + 1 = {}",
                indptr.len(),
                nrows + 1
            ));
        }
        if indptr[0] != 0 {
            return bad(format!("indptr[0] = {}, expected 0", indptr[0]));
        }
        if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
            return bad(format!("indptr decreases at row {i}"));
        }
        let nnz = indptr[nrows];
        if indices.len() as i64 != nnz || values.len() as i64 != nnz {
            return bad(format!(
                "indptr[nrows] = {nnz} but there are {} indices and {} values",
                indices.len(),
                values.len()
            ));
        }
        if let Some(&c) = indices.iter().find(|&&c| c < 0 || c >= ncols as i64) {
            return bad(format!("column index {c} outside 0..{ncols}"));
        }
        Ok(Self {
            nrows,
            ncols,
            indptr,
            indices,
            values,
        })
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// The rows as a dense `nrows x ncols` f32 tensor on `device` (repeated columns summed).
    pub fn to_dense(&self, device: Device) -> Tensor {
        let mut flat = vec![0f32; self.nrows * self.ncols];
        for r in 0..self.nrows {
            let row = &mut flat[r * self.ncols..(r + 1) * self.ncols];
            for k in self.indptr[r] as usize..self.indptr[r + 1] as usize {
                row[self.indices[k] as usize] += self.values[k];
            }
        }
        Tensor::from_slice(&flat)
            .view([self.nrows as i64, self.ncols as i64])
            .to_device(device)
    }
}

/// The entries of a batch regrouped into bags, one bag per (cell, group), in order
/// `cell * n_groups + group`: bag `b` holds `indices[offsets[b]..offsets[b + 1]]`.
#[derive(Debug)]
pub(crate) struct Bags {
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
    /// `nrows * n_groups + 1` entries.
    pub offsets: Vec<i64>,
}

impl Bags {
    /// Counting sort of each row's entries by the group of their column (stable, so a
    /// row's order within a group is kept): O(nnz + rows x groups). Column `c` is
    /// stored as `slot_of[c]` (the weight row it uses).
    pub fn build(x: &CsrBatch<'_>, group_of: &[i64], n_groups: usize, slot_of: &[i64]) -> Self {
        let nnz = x.nnz();
        let mut indices = vec![0i64; nnz];
        let mut values = vec![0f32; nnz];
        let mut offsets = vec![0i64; x.nrows * n_groups + 1];
        let mut cursor = vec![0i64; n_groups];
        for r in 0..x.nrows {
            let (lo, hi) = (x.indptr[r] as usize, x.indptr[r + 1] as usize);
            let counts = &mut offsets[r * n_groups + 1..(r + 1) * n_groups + 1];
            for &c in &x.indices[lo..hi] {
                counts[group_of[c as usize] as usize] += 1;
            }
            let mut start = lo as i64;
            for (g, count) in counts.iter_mut().enumerate() {
                cursor[g] = start;
                start += *count;
                *count = start;
            }
            for k in lo..hi {
                let c = x.indices[k];
                let g = group_of[c as usize] as usize;
                let at = cursor[g] as usize;
                indices[at] = slot_of[c as usize];
                values[at] = x.values[k];
                cursor[g] += 1;
            }
        }
        Self {
            indices,
            values,
            offsets,
        }
    }
}

/// The bag (row of the sparse operand) of every entry, from the offsets.
pub(crate) fn row_ids(offsets: &[i64]) -> Vec<i64> {
    let mut rows = Vec::with_capacity(*offsets.last().unwrap_or(&0) as usize);
    for (r, w) in offsets.windows(2).enumerate() {
        rows.extend(std::iter::repeat_n(r as i64, (w[1] - w[0]) as usize));
    }
    rows
}

pub(crate) fn i64_tensor(v: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device)
}

pub(crate) fn value_tensor(v: &[f32], kind: Kind, device: Device) -> Tensor {
    Tensor::from_slice(v).to_device(device).to_kind(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_problem() {
        let e = |r: Result<CsrBatch<'_>, EncoderError>| r.unwrap_err().to_string();
        assert!(e(CsrBatch::new(2, 3, &[0, 1], &[0], &[1.0])).contains("nrows + 1"));
        assert!(e(CsrBatch::new(1, 3, &[1, 1], &[], &[])).contains("indptr[0]"));
        assert!(e(CsrBatch::new(2, 3, &[0, 1, 0], &[0], &[1.0])).contains("decreases"));
        assert!(e(CsrBatch::new(1, 3, &[0, 2], &[0], &[1.0])).contains("indices"));
        assert!(e(CsrBatch::new(1, 3, &[0, 1], &[3], &[1.0])).contains("outside"));
        assert!(CsrBatch::new(0, 3, &[0], &[], &[]).is_ok());
    }

    #[test]
    fn bags_group_each_row_and_keep_values() {
        // groups: col 0,2 -> 1; col 1,3 -> 0
        let group_of = [1, 0, 1, 0];
        let x =
            CsrBatch::new(3, 4, &[0, 3, 3, 5], &[0, 1, 2, 3, 2], &[1., 2., 3., 4., 5.]).unwrap();
        let b = Bags::build(&x, &group_of, 2, &[0, 1, 2, 3]);
        assert_eq!(b.offsets, vec![0, 1, 3, 3, 3, 4, 5]);
        assert_eq!(b.indices, vec![1, 0, 2, 3, 2]);
        assert_eq!(b.values, vec![2., 1., 3., 4., 5.]);
        assert_eq!(row_ids(&b.offsets), vec![0, 1, 1, 4, 5]);
        let mapped = Bags::build(&x, &group_of, 2, &[10, 11, 12, 13]);
        assert_eq!(mapped.indices, vec![11, 10, 12, 13, 12]);
        let d = Vec::<f32>::try_from(x.to_dense(Device::Cpu).view([-1])).unwrap();
        assert_eq!(d, vec![1., 2., 3., 0., 0., 0., 0., 0., 0., 0., 5., 4.]);
    }
}
