//! write -> read == identity for every writer of the data crate that the h5ad tests do not
//! already cover: MatrixMarket, `.npy`, `.npz`, and cell tables as CSV, TSV and Parquet.

use std::path::Path;

use crossomics_data::{Csr, mtx, tables};
use nalgebra_sparse::CooMatrix;
use ndarray::Array2;
use polars::prelude::*;
use proptest::prelude::*;

/// A sparse matrix with distinct coordinates and non-zero values (stored zeros would not
/// survive a round trip through formats that drop them, and are not data).
fn sparse_matrix() -> impl Strategy<Value = Csr> {
    (0usize..12, 0usize..12).prop_flat_map(|(r, c)| {
        let cells = r * c;
        proptest::collection::vec((any::<bool>(), -1e6f32..1e6f32), cells).prop_map(move |v| {
            let mut coo = CooMatrix::new(r, c);
            for (k, (keep, value)) in v.into_iter().enumerate() {
                if keep && value != 0.0 {
                    coo.push(k / c, k % c, value);
                }
            }
            Csr::from(&coo)
        })
    })
}

fn dense_matrix() -> impl Strategy<Value = Array2<f32>> {
    (0usize..8, 0usize..8).prop_flat_map(|(r, c)| {
        proptest::collection::vec(
            prop_oneof![-1e30f32..1e30f32, Just(0.0f32), Just(f32::MIN_POSITIVE)],
            r * c,
        )
        .prop_map(move |v| Array2::from_shape_vec((r, c), v).unwrap())
    })
}

fn no_temporary_files(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .unwrap()
        .all(|e| !e.unwrap().file_name().to_string_lossy().ends_with(".tmp"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn matrix_market_round_trips_exactly(m in sparse_matrix(), gzip in any::<bool>()) {
        let mut bytes = Vec::new();
        mtx::write(&m, &mut bytes).unwrap();
        if gzip {
            use std::io::Write;
            let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            gz.write_all(&bytes).unwrap();
            bytes = gz.finish().unwrap();
        }
        let back = mtx::read(bytes.as_slice(), Path::new("m.mtx"), &crossomics_limits::Limits::default()).unwrap();
        prop_assert_eq!(back, m);
    }

    #[test]
    fn npy_round_trips_exactly(a in dense_matrix()) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        tables::write_npy(&path, a.view()).unwrap();
        prop_assert_eq!(tables::read_npy(&path, &crossomics_limits::Limits::default()).unwrap(), a);
        prop_assert!(no_temporary_files(dir.path()));
    }

    #[test]
    fn npz_round_trips_exactly(arrays in proptest::collection::vec(dense_matrix(), 1..4)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npz");
        let names: Vec<String> = (0..arrays.len()).map(|i| format!("array_{i}")).collect();
        let named: Vec<(&str, ndarray::ArrayView2<f32>)> =
            names.iter().map(String::as_str).zip(arrays.iter().map(|a| a.view())).collect();
        tables::write_npz(&path, &named).unwrap();
        let back = tables::read_npz(&path, &crossomics_limits::Limits::default()).unwrap();
        prop_assert_eq!(back.len(), arrays.len());
        for ((name, a), (got_name, got)) in names.iter().zip(&arrays).zip(&back) {
            prop_assert_eq!(name, got_name);
            prop_assert_eq!(a, got);
        }
        prop_assert!(no_temporary_files(dir.path()));
    }

    #[test]
    fn tables_round_trip_through_csv_tsv_and_parquet(
        rows in proptest::collection::vec(("[a-zA-Z0-9_]{1,12}", "[a-zA-Z]{0,8}", -1e9f64..1e9), 1..20),
    ) {
        // distinct barcodes, as a cell table has
        let mut seen = std::collections::HashSet::new();
        let rows: Vec<_> = rows.into_iter().filter(|r| seen.insert(r.0.clone())).collect();
        let barcodes: Vec<String> = rows.iter().map(|r| format!("c{}", r.0)).collect();
        let labels: Vec<String> = rows.iter().map(|r| format!("t{}", r.1)).collect();
        let scores: Vec<f64> = rows.iter().map(|r| r.2).collect();
        let frame = df!("barcode" => barcodes, "cell_type" => labels, "score" => scores).unwrap();
        let dir = tempfile::tempdir().unwrap();
        for ext in ["csv", "tsv", "parquet"] {
            let path = dir.path().join(format!("cells.{ext}"));
            tables::write_table(&path, &frame).unwrap();
            let back = tables::read_table(&path).unwrap();
            prop_assert!(back.equals_missing(&frame), "{ext}: {back:?} != {frame:?}");
        }
        prop_assert!(no_temporary_files(dir.path()));
    }
}
