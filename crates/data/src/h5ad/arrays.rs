//! HDF5 arrays converted: numbers of any type to `f32`, indices to `usize`, and compressed
//! sparse (CSR or CSC) arrays, checked, to a canonical CSR matrix.

use anndata::data::DynArray;
use nalgebra_sparse::{CooMatrix, CscMatrix, CsrMatrix};

/// CSR (rows major) or CSC (columns major) arrays, checked, to CSR without explicit zeros.
pub(crate) fn compressed_to_csr(
    is_csr: bool,
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f32>,
) -> std::result::Result<CsrMatrix<f32>, String> {
    let (major, minor, major_name, minor_name) = if is_csr {
        (nrows, ncols, "row", "column")
    } else {
        (ncols, nrows, "column", "row")
    };
    if indptr.len() != major + 1 {
        return Err(format!(
            "indptr has {} entries, but {major} {major_name}s need {}",
            indptr.len(),
            major + 1
        ));
    }
    if indices.len() != data.len() {
        return Err(format!(
            "{} indices but {} values",
            indices.len(),
            data.len()
        ));
    }
    if indptr[0] != 0 || indptr[major] != data.len() {
        return Err(format!(
            "indptr runs from {} to {}, but there are {} values",
            indptr[0],
            indptr[major],
            data.len()
        ));
    }
    if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!("indptr decreases at {major_name} {i}"));
    }
    if let Some(i) = indices.iter().position(|&j| j >= minor) {
        return Err(format!(
            "index {} at entry {i} is outside the {minor} {minor_name}s",
            indices[i]
        ));
    }
    // drop explicit zeros
    let (indptr, indices, data) = if data.contains(&0.0) {
        let mut p = Vec::with_capacity(indptr.len());
        let mut ix = Vec::with_capacity(indices.len());
        let mut dv = Vec::with_capacity(data.len());
        p.push(0);
        for w in indptr.windows(2) {
            for k in w[0]..w[1] {
                if data[k] != 0.0 {
                    ix.push(indices[k]);
                    dv.push(data[k]);
                }
            }
            p.push(ix.len());
        }
        (p, ix, dv)
    } else {
        (indptr, indices, data)
    };
    let sorted = indptr
        .windows(2)
        .all(|w| indices[w[0]..w[1]].windows(2).all(|p| p[0] < p[1]));
    if sorted {
        let m = if is_csr {
            CsrMatrix::try_from_csr_data(nrows, ncols, indptr, indices, data)
                .map_err(|e| e.to_string())?
        } else {
            let csc = CscMatrix::try_from_csc_data(nrows, ncols, indptr, indices, data)
                .map_err(|e| e.to_string())?;
            CsrMatrix::from(&csc)
        };
        return Ok(m);
    }
    // unsorted or duplicated indices: through COO, which sums duplicates
    let mut coo = CooMatrix::new(nrows, ncols);
    for (a, w) in indptr.windows(2).enumerate() {
        for k in w[0]..w[1] {
            let (r, c) = if is_csr {
                (a, indices[k])
            } else {
                (indices[k], a)
            };
            coo.push(r, c, data[k]);
        }
    }
    Ok(CsrMatrix::from(&coo))
}

/// Numbers of any integer, float or bool type as f32.
pub(super) fn numbers_f32(arr: DynArray) -> std::result::Result<Vec<f32>, String> {
    macro_rules! cast {
        ($a:expr) => {
            $a.iter().map(|&v| v as f32).collect()
        };
    }
    Ok(match arr {
        DynArray::F32(a) => a.iter().copied().collect(),
        DynArray::F64(a) => cast!(a),
        DynArray::I8(a) => cast!(a),
        DynArray::I16(a) => cast!(a),
        DynArray::I32(a) => cast!(a),
        DynArray::I64(a) => cast!(a),
        DynArray::U8(a) => cast!(a),
        DynArray::U16(a) => cast!(a),
        DynArray::U32(a) => cast!(a),
        DynArray::U64(a) => cast!(a),
        DynArray::Bool(a) => a.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
        DynArray::String(_) => return Err("holds strings, not numbers".into()),
    })
}

/// Non-negative integers (sparse indices, pointers, categorical codes) as usize.
pub(super) fn indices_usize(arr: DynArray) -> std::result::Result<Vec<usize>, String> {
    fn conv<T: Copy + TryInto<usize> + std::fmt::Display>(
        a: &ndarray::ArrayD<T>,
    ) -> std::result::Result<Vec<usize>, String> {
        a.iter()
            .enumerate()
            .map(|(i, &v)| {
                v.try_into()
                    .map_err(|_| format!("entry {i} is {v}, not a valid index"))
            })
            .collect()
    }
    match arr {
        DynArray::I8(a) => conv(&a),
        DynArray::I16(a) => conv(&a),
        DynArray::I32(a) => conv(&a),
        DynArray::I64(a) => conv(&a),
        DynArray::U8(a) => conv(&a),
        DynArray::U16(a) => conv(&a),
        DynArray::U32(a) => conv(&a),
        DynArray::U64(a) => conv(&a),
        other => Err(format!("holds {}, not integers", dyn_type_name(&other))),
    }
}

pub(super) fn dyn_type_name(a: &DynArray) -> &'static str {
    match a {
        DynArray::F32(_) => "f32",
        DynArray::F64(_) => "f64",
        DynArray::Bool(_) => "bools",
        DynArray::String(_) => "strings",
        _ => "integers",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triplets(m: &CsrMatrix<f32>) -> Vec<(usize, usize, f32)> {
        m.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect()
    }

    #[test]
    fn csc_unsorted_duplicates_and_zeros_become_canonical_csr() {
        // 2 x 3, CSC: column 0 = {row 1: 2}, column 1 = {}, column 2 = {row 0: 1, row 1: 0}
        let m = compressed_to_csr(
            false,
            2,
            3,
            vec![0, 1, 1, 3],
            vec![1, 0, 1],
            vec![2.0, 1.0, 0.0],
        )
        .unwrap();
        assert_eq!(triplets(&m), vec![(0, 2, 1.0), (1, 0, 2.0)]);
        // CSR with unsorted and duplicated column indices: duplicates add up
        let m =
            compressed_to_csr(true, 1, 3, vec![0, 3], vec![2, 0, 2], vec![1.0, 4.0, 2.0]).unwrap();
        assert_eq!(triplets(&m), vec![(0, 0, 4.0), (0, 2, 3.0)]);
    }

    #[test]
    fn inconsistent_arrays_are_errors() {
        let e = compressed_to_csr(true, 2, 2, vec![0, 1], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr has 2 entries"), "{e}");
        let e = compressed_to_csr(true, 1, 2, vec![0, 2], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr runs from 0 to 2"), "{e}");
        let e = compressed_to_csr(true, 2, 2, vec![0, 2, 1], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr"), "{e}");
        let e = compressed_to_csr(false, 2, 1, vec![0, 1], vec![5], vec![1.0]).unwrap_err();
        assert!(e.contains("outside the 2 rows"), "{e}");
    }
}
