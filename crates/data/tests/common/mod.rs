//! Helpers shared by the integration tests: the repository's data folder, small
//! constructors, and a writer of 10x Cell Ranger `.h5` matrices. Not every test file uses
//! every helper.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use crossomics_data::{PairedDataset, plain};
use hdf5::types::FixedAscii;
use nalgebra_sparse::{CooMatrix, CsrMatrix};

/// `rel` inside the repository's `data/` folder, which must exist.
pub fn shared(rel: &str) -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../data")
        .join(rel);
    assert!(
        p.exists(),
        "{} is missing: the repository's data/ folder (see data/README.md)",
        p.display()
    );
    p
}

/// The plain-layout folder `name` of the repository's `data/`, read.
pub fn plain_data(name: &str) -> PairedDataset {
    plain::read_dir(&shared(name), &crossomics_limits::Limits::default()).unwrap()
}

pub fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

pub fn csr(rows: usize, cols: usize, entries: &[(usize, usize, f32)]) -> CsrMatrix<f32> {
    let mut coo = CooMatrix::new(rows, cols);
    for &(r, c, v) in entries {
        coo.push(r, c, v);
    }
    CsrMatrix::from(&coo)
}

/// The matrix as rows of dense values.
pub fn dense(m: &CsrMatrix<f32>) -> Vec<Vec<f32>> {
    let mut d = vec![vec![0.0; m.ncols()]; m.nrows()];
    for (r, c, v) in m.triplet_iter() {
        d[r][c] = *v;
    }
    d
}

pub struct TenxSpec {
    pub barcodes: Vec<&'static str>,
    pub data: Vec<f32>,
    pub types: [&'static str; 5],
}

impl Default for TenxSpec {
    fn default() -> Self {
        Self {
            barcodes: vec!["AAAC-1", "AAAG-1", "AACT-1"],
            data: vec![3.0, 1.0, 2.0, 1.0, 4.0, 1.0],
            types: [
                "Gene Expression",
                "Gene Expression",
                "Antibody Capture",
                "Peaks",
                "Peaks",
            ],
        }
    }
}

/// Features: 2 genes, 1 antibody, 2 peaks; CSC features x barcodes as Cell Ranger writes.
/// Barcode 0: gene0=3, peak1=1. Barcode 1: gene1=2, antibody=1. Barcode 2: gene0=4, peak0=1.
pub fn write_tenx(path: &Path, spec: &TenxSpec) {
    let file = hdf5::File::create(path).unwrap();
    let m = file.create_group("matrix").unwrap();
    let fixed = |v: &[&str]| -> Vec<FixedAscii<24>> {
        v.iter()
            .map(|s| FixedAscii::from_ascii(s).unwrap())
            .collect()
    };
    let ds = |g: &hdf5::Group, name: &str, v: &[FixedAscii<24>]| {
        g.new_dataset_builder().with_data(v).create(name).unwrap();
    };
    ds(&m, "barcodes", &fixed(&spec.barcodes));
    m.new_dataset_builder()
        .with_data(&[5i32, spec.barcodes.len() as i32])
        .create("shape")
        .unwrap();
    // columns (barcodes): (feature, value)
    let data: Vec<i32> = spec.data.iter().map(|&v| v as i32).collect();
    if spec.data.iter().all(|v| v.fract() == 0.0) {
        m.new_dataset_builder()
            .with_data(&data)
            .create("data")
            .unwrap();
    } else {
        m.new_dataset_builder()
            .with_data(&spec.data)
            .create("data")
            .unwrap();
    }
    m.new_dataset_builder()
        .with_data(&[0i64, 4, 1, 2, 0, 3])
        .create("indices")
        .unwrap();
    m.new_dataset_builder()
        .with_data(&[0i64, 2, 4, 6])
        .create("indptr")
        .unwrap();
    let f = m.create_group("features").unwrap();
    ds(
        &f,
        "id",
        &fixed(&["ENSG01", "ENSG02", "CD3", "chr1:100-200", "chr2:5-50"]),
    );
    ds(
        &f,
        "name",
        &fixed(&[
            "GENE1",
            "GENE2",
            "CD3_TotalSeqB",
            "chr1:100-200",
            "chr2:5-50",
        ]),
    );
    ds(&f, "feature_type", &fixed(&spec.types));
    ds(&f, "genome", &fixed(&["GRCh38"; 5]));
}
