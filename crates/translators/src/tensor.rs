//! Crossing between ndarray / CSR matrices and tch tensors through plain slices (which
//! also hides that tch and our crates use different ndarray versions).

use crossomics_data::Csr;
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

/// Rows of a CSR matrix as a dense tensor on `device`.
pub fn rows_of_csr(m: &Csr, rows: &[usize], device: Device) -> Tensor {
    let a = crossomics_data::preprocess::dense_rows(m, rows);
    from_array(a.view(), device)
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
}
