//! The valid seed files of the h5ad and tenx-h5 targets: written by
//! `crossomics_data::h5ad::write`, in the Cell Ranger layout, and generated.

use std::path::Path;

use hdf5::Group;
use hdf5::types::{FixedAscii, VarLenUnicode};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::Array2;
use rand::Rng;

use crossomics_data::CellTable;
use crossomics_data::h5ad::{self, Matrix};

use super::generate::generate_h5ad;
use super::values::{random_csr, tenx_features};
use crate::mutate::CaseRng;

/// The valid seed files of the h5ad target, as bytes: written by
/// `crossomics_data::h5ad::write` (CSR and dense X, obs columns that become categoricals,
/// an embedding) plus generated files.
pub fn h5ad_seeds(rng: &mut CaseRng, dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, (rows, cols, dense)) in [
        (3usize, 4usize, false),
        (6, 5, true),
        (12, 9, false),
        (1, 1, true),
        (20, 15, false),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("seed{k}.h5ad"));
        let mut coo = CooMatrix::new(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                if rng.gen_bool(0.35) {
                    coo.push(r, c, rng.gen_range(1..12) as f32);
                }
            }
        }
        let csr = CsrMatrix::from(&coo);
        let barcodes: Vec<String> = (0..rows).map(|i| format!("AAAC-{i}")).collect();
        let mut cells = CellTable::new(barcodes);
        let types: Vec<String> = (0..rows)
            .map(|i| ["T", "B", "NK"][i % 3].to_string())
            .collect();
        if let Ok(c) = cells.clone().with_column("cell_type", types) {
            cells = c;
        }
        if k % 2 == 0 {
            let batch: Vec<String> = (0..rows).map(|i| format!("b{}", i % 2)).collect();
            if let Ok(c) = cells.clone().with_column("batch", batch) {
                cells = c;
            }
        }
        let var_names: Vec<String> = (0..cols).map(|j| format!("GENE{j}")).collect();
        let emb = Array2::from_shape_fn((rows, 2), |(i, j)| (i + j) as f32 * 0.5);
        let dense_x = Array2::from_shape_fn((rows, cols), |(i, j)| {
            csr.get_entry(i, j).map(|e| e.into_value()).unwrap_or(0.0)
        });
        let x = if dense {
            Matrix::Dense(dense_x.view())
        } else {
            Matrix::Sparse(&csr)
        };
        let obsm: Vec<(&str, ndarray::ArrayView2<'_, f32>)> = if k % 2 == 1 {
            vec![("X_umap", emb.view())]
        } else {
            vec![]
        };
        if h5ad::write(&path, Some(x), &cells, &var_names, &obsm).is_ok()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    // generated files widen the corpus (CSC, old categoricals, nullable columns, ...)
    for k in 0..6 {
        let path = dir.join(format!("gen{k}.h5ad"));
        let planted = generate_h5ad(rng, &path);
        if planted.items.is_empty()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// The valid seed files of the tenx-h5 target (genes only, peaks only, both; fixed and
/// variable-length strings, integer and float counts).
pub fn tenx_h5_seeds(rng: &mut CaseRng, dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 0..8 {
        let path = dir.join(format!("seed{k}.h5"));
        write_tenx_seed(rng, &path, k);
        if let Ok(bytes) = std::fs::read(&path) {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// A valid Cell Ranger feature-barcode matrix, laid out as in
/// `crates/runner/tests/portal.rs`'s `write_tenx_h5`.
fn write_tenx_seed(rng: &mut CaseRng, path: &Path, k: usize) {
    let genes = if k % 3 == 2 { 0 } else { 2 + k };
    let peaks = if k % 3 == 1 { 0 } else { 1 + k };
    let n_features = genes + peaks;
    let n_barcodes = 2 + 2 * k;
    let (indptr, indices, data) = random_csr(rng, n_barcodes, n_features, false);
    let Ok(file) = hdf5::File::create(path) else {
        return;
    };
    let Ok(m) = file.create_group("matrix") else {
        return;
    };
    let data_i32: Vec<i32> = data.iter().map(|&v| v as i32).collect();
    let _ = if k.is_multiple_of(2) {
        m.new_dataset_builder()
            .with_data(&data_i32[..])
            .create("data")
    } else {
        let f: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        m.new_dataset_builder()
            .chunk(4.min(f.len().max(1)))
            .deflate(4)
            .with_data(&f[..])
            .create("data")
    };
    let _ = m
        .new_dataset_builder()
        .with_data(&indices[..])
        .create("indices");
    let _ = m
        .new_dataset_builder()
        .with_data(&indptr[..])
        .create("indptr");
    let _ = m
        .new_dataset_builder()
        .with_data(&[n_features as i64, n_barcodes as i64][..])
        .create("shape");
    let barcodes: Vec<String> = (0..n_barcodes)
        .map(|i| format!("AAACGAA{i:04}-1"))
        .collect();
    let fixed = |v: &[String]| -> Vec<FixedAscii<64>> {
        v.iter()
            .map(|s| FixedAscii::from_ascii(s).unwrap_or_default())
            .collect()
    };
    let vlen = |v: &[String]| -> Vec<VarLenUnicode> {
        v.iter().map(|s| s.parse().unwrap_or_default()).collect()
    };
    let put = |g: &Group, name: &str, v: &[String]| {
        let _ = if k % 4 == 3 {
            g.new_dataset_builder().with_data(&vlen(v)[..]).create(name)
        } else {
            g.new_dataset_builder()
                .with_data(&fixed(v)[..])
                .create(name)
        };
    };
    put(&m, "barcodes", &barcodes);
    let Ok(f) = m.create_group("features") else {
        return;
    };
    let (ids, fnames, types) = tenx_features(genes, peaks, || None);
    put(&f, "id", &ids);
    put(&f, "name", &fnames);
    put(&f, "feature_type", &types);
    let genome: Vec<String> = ids.iter().map(|_| "GRCh38".to_string()).collect();
    put(&f, "genome", &genome);
}
