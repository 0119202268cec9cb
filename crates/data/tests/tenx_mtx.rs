//! The 10x Genomics Cell Ranger ARC matrix folder (`matrix.mtx.gz`, `features.tsv.gz`,
//! `barcodes.tsv.gz`): a written folder reads back, through the config too, and every
//! bad input is an error naming the file.

use std::io::Write;
use std::path::Path;

use crossomics_data::config::DatasetConfig;
use crossomics_data::tenx;

fn gz(path: &Path, text: &str) {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(text.as_bytes()).unwrap();
    std::fs::write(path, e.finish().unwrap()).unwrap();
}

const FEATURES: &str = "ENSG01\tCD3E\tGene Expression\tGRCh38\n\
ENSG02\tMS4A1\tGene Expression\tGRCh38\n\
ENSG03\tLYZ\tGene Expression\tGRCh38\n\
chr1:100-600\tchr1:100-600\tPeaks\tGRCh38\n\
chr2:50-90\tchr2:50-90\tPeaks\tGRCh38\n";

/// features x barcodes (5 x 3), 1-based MatrixMarket coordinates.
const MATRIX: &str = "%%MatrixMarket matrix coordinate integer general\n\
%metadata_json: {}\n\
5 3 6\n\
1 1 4\n\
2 2 2\n\
3 3 7\n\
4 1 1\n\
5 2 1\n\
5 3 3\n";

fn folder(dir: &Path, matrix: &str, features: &str, barcodes: &str) {
    std::fs::create_dir_all(dir).unwrap();
    gz(&dir.join("matrix.mtx.gz"), matrix);
    gz(&dir.join("features.tsv.gz"), features);
    gz(&dir.join("barcodes.tsv.gz"), barcodes);
}

#[test]
fn a_cell_ranger_arc_folder_reads_as_a_paired_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pbmc/outs/filtered_feature_bc_matrix");
    folder(&dir, MATRIX, FEATURES, "AAAC-1\nTTTG-1\nGGGA-1\n");
    let d = tenx::read_mtx_dir(&dir, &crossomics_limits::Limits::default()).unwrap();
    assert_eq!(d.name, "pbmc");
    assert_eq!(d.cells.barcodes(), ["AAAC-1", "TTTG-1", "GGGA-1"]);
    assert_eq!(d.genes, ["CD3E", "MS4A1", "LYZ"]);
    assert_eq!(
        d.peaks.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["chr1:100-600", "chr2:50-90"]
    );
    let rna: Vec<(usize, usize, f32)> = d.rna.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect();
    assert_eq!(rna, [(0, 0, 4.0), (1, 1, 2.0), (2, 2, 7.0)]);
    let atac: Vec<(usize, usize, f32)> =
        d.atac.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect();
    assert_eq!(atac, [(0, 0, 1.0), (1, 1, 1.0), (2, 1, 3.0)]);

    // the same through a config, uncompressed files accepted too
    let plain = tmp.path().join("plain");
    std::fs::create_dir_all(&plain).unwrap();
    std::fs::write(plain.join("matrix.mtx"), MATRIX).unwrap();
    std::fs::write(plain.join("features.tsv"), FEATURES).unwrap();
    std::fs::write(plain.join("barcodes.tsv"), "AAAC-1\nTTTG-1\nGGGA-1\n").unwrap();
    let cfg: DatasetConfig = toml::from_str("format = \"tenx_mtx\"\npath = \"plain\"").unwrap();
    let again = cfg
        .load(tmp.path(), &crossomics_limits::Limits::default())
        .unwrap();
    assert_eq!((again.rna.clone(), again.atac.clone()), (d.rna, d.atac));
}

fn error_of(matrix: &str, features: &str, barcodes: &str) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("m");
    folder(&dir, matrix, features, barcodes);
    tenx::read_mtx_dir(&dir, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn bad_folders_are_errors_that_name_the_file() {
    let barcodes = "AAAC-1\nTTTG-1\nGGGA-1\n";
    let e = error_of(MATRIX, FEATURES, "AAAC-1\nTTTG-1\n");
    assert!(
        e.contains("barcodes.tsv.gz") && e.contains("2 lines"),
        "{e}"
    );
    let e = error_of(
        MATRIX,
        &FEATURES.replace("chr2:50-90\tchr2:50-90\tPeaks\tGRCh38\n", ""),
        barcodes,
    );
    assert!(
        e.contains("features.tsv.gz") && e.contains("4 lines"),
        "{e}"
    );
    let e = error_of(MATRIX, FEATURES, "AAAC-1\nAAAC-1\nGGGA-1\n");
    assert!(
        e.contains("barcodes.tsv.gz") && e.contains("occurs twice"),
        "{e}"
    );
    // a fraction in an `integer` matrix is refused by the MatrixMarket reader itself
    let e = error_of(&MATRIX.replace("3 3 7", "3 3 7.5"), FEATURES, barcodes);
    assert!(
        e.contains("matrix.mtx.gz") && e.contains("line 6") && e.contains("not an integer"),
        "{e}"
    );
    // in a `real` matrix it is read, and refused as a count
    let e = error_of(
        &MATRIX
            .replace("3 3 7", "3 3 7.5")
            .replace("coordinate integer", "coordinate real"),
        FEATURES,
        barcodes,
    );
    assert!(
        e.contains("matrix.mtx.gz") && e.contains("not a non-negative integer"),
        "{e}"
    );
    let e = error_of(
        MATRIX,
        &FEATURES.replace("Peaks", "Antibody Capture"),
        barcodes,
    );
    assert!(e.contains("features.tsv.gz") && e.contains("Peaks"), "{e}");
    let e = error_of(
        MATRIX,
        &FEATURES.replace("chr2:50-90\tchr2", "chr2:fifty-90\tchr2"),
        barcodes,
    );
    assert!(
        e.contains("features.tsv.gz") && e.contains("chr2:fifty-90"),
        "{e}"
    );
    let e = error_of(
        MATRIX,
        &FEATURES.replace("\tCD3E\tGene Expression\tGRCh38", ""),
        barcodes,
    );
    assert!(e.contains("features.tsv.gz") && e.contains("line 1"), "{e}");
    // a truncated gzip
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t");
    folder(&dir, MATRIX, FEATURES, barcodes);
    let bytes = std::fs::read(dir.join("features.tsv.gz")).unwrap();
    std::fs::write(dir.join("features.tsv.gz"), &bytes[..bytes.len() / 2]).unwrap();
    let e = tenx::read_mtx_dir(&dir, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("features.tsv.gz"), "{e}");
    // a missing file
    std::fs::remove_file(dir.join("matrix.mtx.gz")).unwrap();
    let e = tenx::read_mtx_dir(&dir, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("matrix.mtx.gz"), "{e}");
}
