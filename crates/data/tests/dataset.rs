//! The paired dataset: row and column selection against dense indexing, and the shapes
//! its parts must agree on.

mod common;

use common::{csr, dense};
use crossomics_data::dataset::{select_columns, select_rows};
use crossomics_data::{CellTable, PairedDataset, Peak};

#[test]
fn select_rows_and_columns_match_dense_indexing() {
    let m = csr(
        3,
        4,
        &[
            (0, 0, 1.0),
            (0, 3, 2.0),
            (1, 1, 3.0),
            (2, 2, 4.0),
            (2, 3, 5.0),
        ],
    );
    let d = dense(&m);
    let rows = [2, 0, 2];
    let got = dense(&select_rows(&m, &rows));
    for (i, &r) in rows.iter().enumerate() {
        assert_eq!(got[i], d[r]);
    }
    let cols = [3, 1];
    let got = dense(&select_columns(&m, &cols));
    for r in 0..3 {
        assert_eq!(got[r], vec![d[r][3], d[r][1]]);
    }
}

#[test]
fn shapes_must_agree() {
    let cells = CellTable::new(vec!["a".into(), "b".into()]);
    let peak = Peak::parse("chr1-1-2").unwrap();
    let ok = PairedDataset::new(
        "t",
        csr(2, 1, &[]),
        csr(2, 1, &[]),
        cells.clone(),
        vec!["G".into()],
        vec![peak.clone()],
    );
    assert!(ok.is_ok());
    let err = PairedDataset::new(
        "t",
        csr(3, 1, &[]),
        csr(2, 1, &[]),
        cells,
        vec!["G".into()],
        vec![peak],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("RNA matrix rows") && err.contains("3 entries"),
        "{err}"
    );
}
