//! Crossing between ndarray / CSR matrices and tch tensors through plain slices (which
//! also hides that tch and our crates use different ndarray versions).

use crossomics_data::Csr;
use crossomics_data::loader::{CsrRows, DenseRows, RowSource};
use ndarray::{Array2, ArrayView2};
use tch::{Device, Kind, Tensor};

/// A dense f32 matrix as a tensor on `device`.
pub fn from_array(a: ArrayView2<f32>, device: Device) -> Tensor {
    let (n, d) = a.dim();
    let t = match a.as_slice() {
        Some(s) => Tensor::from_slice(s),
        None => Tensor::from_slice(&a.iter().copied().collect::<Vec<_>>()),
    };
    t.view([n as i64, d as i64]).to_device(device)
}

/// Rows of `a` as a tensor on `device`.
pub fn rows_of_array(a: ArrayView2<f32>, rows: &[usize], device: Device) -> Tensor {
    let d = a.ncols();
    let mut flat = Vec::with_capacity(rows.len() * d);
    for &r in rows {
        flat.extend(a.row(r).iter().copied());
    }
    Tensor::from_slice(&flat)
        .view([rows.len() as i64, d as i64])
        .to_device(device)
}

/// A row-major `rows x cols` f32 buffer as a tensor on `device`. `Tensor::from_slice` is
/// the one copy (the view is free); on a GPU `to_device` then uploads it.
pub fn from_buffer(values: &[f32], rows: usize, cols: usize, device: Device) -> Tensor {
    assert_eq!(
        values.len(),
        rows * cols,
        "a {rows} x {cols} buffer needs {} values",
        rows * cols
    );
    Tensor::from_slice(values)
        .view([rows as i64, cols as i64])
        .to_device(device)
}

/// A loader batch's dense rows (`crossomics_data::loader::Batch::dense`) as a tensor.
pub fn from_dense_rows(rows: DenseRows<'_>, device: Device) -> Tensor {
    from_buffer(rows.values, rows.nrows, rows.ncols, device)
}

/// A loader batch's CSR rows (`crossomics_data::loader::Batch::sparse`) as a sparse CSR
/// tensor (`torch.sparse_csr`, f32 values, i64 indices) on `device`, for a sparse first
/// layer.
pub fn from_csr_rows(rows: CsrRows<'_>, device: Device) -> Tensor {
    let crow = Tensor::from_slice(rows.indptr).to_device(device);
    let col = Tensor::from_slice(rows.indices).to_device(device);
    let values = Tensor::from_slice(rows.values).to_device(device);
    Tensor::sparse_csr_tensor_crow_col_value_size(
        &crow,
        &col,
        &values,
        [rows.nrows as i64, rows.ncols as i64],
        (Kind::Float, device),
    )
}

/// Rows of a CSR matrix as a dense tensor on `device`: densified straight into one flat
/// buffer, which the tensor copies once.
pub fn rows_of_csr(m: &Csr, rows: &[usize], device: Device) -> Tensor {
    rows_of(m, rows, device)
}

/// Rows of any minibatch source (`crossomics_data::loader::RowSource`) as a dense
/// tensor: what a model reads when the loop did not load its rows ahead.
pub fn rows_of(m: &dyn RowSource, rows: &[usize], device: Device) -> Tensor {
    let mut flat = Vec::new();
    crossomics_data::loader::densify_rows(m, rows, &mut flat);
    from_buffer(&flat, rows.len(), m.ncols(), device)
}

/// Selected entries of a vector as a 1-D tensor on `device`.
pub fn entries(v: &[f32], rows: &[usize], device: Device) -> Tensor {
    let picked: Vec<f32> = rows.iter().map(|&r| v[r]).collect();
    Tensor::from_slice(&picked).to_device(device)
}

/// A 2-D tensor back as an ndarray (copied to the CPU as f32).
pub fn to_array(t: &Tensor) -> Array2<f32> {
    let size = t.size();
    assert_eq!(
        size.len(),
        2,
        "to_array needs a 2-D tensor, got shape {size:?}"
    );
    let flat = Vec::<f32>::try_from(
        t.to_device(Device::Cpu)
            .to_kind(Kind::Float)
            .contiguous()
            .flatten(0, -1),
    )
    .expect("a float tensor converts to Vec<f32>");
    Array2::from_shape_vec((size[0] as usize, size[1] as usize), flat)
        .expect("shape matches the data")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn round_trip_and_row_selection() {
        let a = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        assert_eq!(to_array(&from_array(a.view(), Device::Cpu)), a);
        let picked = to_array(&rows_of_array(a.view(), &[2, 0], Device::Cpu));
        assert_eq!(picked, array![[5.0f32, 6.0], [1.0, 2.0]]);
        let t = a.t();
        assert_eq!(to_array(&from_array(t, Device::Cpu)), t.to_owned());
        let e = Vec::<f32>::try_from(entries(&[1.0, 2.0, 3.0], &[2, 1], Device::Cpu)).unwrap();
        assert_eq!(e, vec![3.0, 2.0]);
    }

    #[test]
    fn csr_rows_and_loader_batches_become_the_same_tensors() {
        use crossomics_data::loader::{Loader, Source};
        use nalgebra_sparse::CooMatrix;
        let mut coo = CooMatrix::new(4, 5);
        for (i, j, v) in [
            (0, 1, 1.0),
            (0, 4, 2.0),
            (2, 0, 3.0),
            (3, 3, 4.0),
            (3, 4, 5.0),
        ] {
            coo.push(i, j, v);
        }
        let m = Csr::from(&coo);
        let rows = [3, 0, 1, 3];
        let want = crossomics_data::preprocess::dense_rows(&m, &rows);
        assert_eq!(to_array(&rows_of_csr(&m, &rows, Device::Cpu)), want);
        assert_eq!(to_array(&rows_of_csr(&m, &[], Device::Cpu)).dim(), (0, 5));

        let loader = Loader::new([Source::new(&m).with_sparse(true)]).unwrap();
        let batch = loader.load(rows.to_vec());
        let dense = from_dense_rows(batch.dense(0).unwrap(), Device::Cpu);
        assert_eq!(to_array(&dense), want);
        let sparse = from_csr_rows(batch.sparse(0).unwrap(), Device::Cpu);
        assert_eq!(sparse.size(), vec![4, 5]);
        assert_eq!(to_array(&sparse.to_dense(None::<Kind>, false)), want);
    }
}
