use std::path::{Path, PathBuf};

use crossomics_limits::Limits;

use super::*;
use crate::test_archives::{gz, zip_with};

fn limits() -> Limits {
    Limits {
        max_unpacked_bytes: 1 << 20,
        max_inflated_bytes: 1 << 20,
        max_archive_entries: 100,
        max_line_bytes: 1024,
        ..Limits::portal()
    }
}

fn budget() -> Budget {
    Budget::new(&limits())
}

const MTX: &[u8] = b"%%MatrixMarket matrix coordinate integer general\n% c\n3 2 2\n1 1 5\n3 2 1\n";
const FEATURES: &[u8] =
    b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\nG3\tG3\tGene Expression\n";
const BARCODES: &[u8] = b"AAAC-1\nAAAG-1\n";

fn write_parts(dir: &Path, parts: &[&[u8]]) -> Vec<PathBuf> {
    parts
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let p = dir.join(format!("part-{i}"));
            std::fs::write(&p, b).unwrap();
            p
        })
        .collect()
}

#[test]
fn sniffs_by_content() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<u8>, Sniffed)> = vec![
        ([HDF5_MAGIC, b"rest"].concat(), Sniffed::Hdf5),
        // MuData's 512-byte user block before the superblock
        (
            [
                &b"MuData (format-version=0.1.0;"[..],
                &[b' '; 483],
                HDF5_MAGIC,
                b"rest",
            ]
            .concat(),
            Sniffed::Hdf5,
        ),
        (b"PK\x03\x04rest".to_vec(), Sniffed::Zip),
        (MTX.to_vec(), Sniffed::MatrixMarket { gzip: false }),
        (gz(MTX), Sniffed::MatrixMarket { gzip: true }),
        (BARCODES.to_vec(), Sniffed::Text { gzip: false }),
        (gz(BARCODES), Sniffed::Text { gzip: true }),
        (vec![0u8, 1, 2, 3, 255], Sniffed::Unknown),
        (vec![], Sniffed::Unknown),
    ];
    for (i, (bytes, want)) in cases.into_iter().enumerate() {
        // the name says h5ad; only the content counts
        let p = dir.path().join(format!("{i}.h5ad"));
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(sniff(&p).unwrap(), want, "case {i}");
    }
}

#[test]
fn loose_files_are_named_by_shape_in_any_order() {
    for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
        let dir = tempfile::tempdir().unwrap();
        let all: [&[u8]; 3] = [MTX, FEATURES, BARCODES];
        let gz_features = gz(FEATURES);
        let mut chosen: Vec<&[u8]> = order.iter().map(|&i| all[i]).collect();
        // one of them gzipped
        let pos = order.iter().position(|&i| i == 1).unwrap();
        chosen[pos] = &gz_features;
        let parts = write_parts(dir.path(), &chosen);
        let names = vec![String::new(); 3];
        let input = classify(&parts, &names, dir.path(), &mut budget()).unwrap();
        let folder = dir.path().join("input");
        assert_eq!(input, Input::MatrixMarketDir(folder.clone()));
        assert_eq!(std::fs::read(folder.join("matrix.mtx")).unwrap(), MTX);
        assert_eq!(
            std::fs::read(folder.join("barcodes.tsv")).unwrap(),
            BARCODES
        );
        assert!(folder.join("features.tsv.gz").is_file());
    }
}

#[test]
fn hdf5_uploads_keep_a_plain_name_of_the_users() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = [HDF5_MAGIC, b"rest"].concat();
    for (sent, kept) in [
        ("rna.h5ad", "rna.h5ad"),
        ("C:\\data\\pbmc.h5", "pbmc.h5"),
        ("../../etc/passwd", "passwd"),
        ("my data.h5ad", "input.h5"),
        (".hidden", "input.h5"),
        ("", "input.h5"),
    ] {
        let job = dir.path().join(format!("job-{}", kept.len() + sent.len()));
        std::fs::create_dir_all(&job).unwrap();
        let parts = write_parts(&job, &[&h5]);
        let input = classify(&parts, &[sent.to_string()], &job, &mut budget()).unwrap();
        assert_eq!(input, Input::Hdf5(job.join("input").join(kept)), "{sent}");
    }
}

#[test]
fn a_square_matrix_tells_features_from_barcodes_by_columns() {
    let dir = tempfile::tempdir().unwrap();
    let mtx = b"%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 3\n";
    let features = b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\n";
    let parts = write_parts(dir.path(), &[BARCODES, mtx, features]);
    let input = classify(&parts, &[], dir.path(), &mut budget()).unwrap();
    assert_eq!(input, Input::MatrixMarketDir(dir.path().join("input")));
    let read = |n: &str| std::fs::read(dir.path().join("input").join(n)).unwrap();
    assert_eq!(read("barcodes.tsv"), BARCODES);
    assert_eq!(read("features.tsv"), features);
}

#[test]
fn loose_files_that_do_not_fit_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["m.mtx", "f.tsv", "b.tsv"].map(String::from).to_vec();
    let parts = write_parts(
        dir.path(),
        &[MTX, FEATURES, b"AAAC-1\nAAAG-1\nAACT-1\nTTTT-1\n"],
    );
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.message.contains("3 features x 2 barcodes") && e.message.contains("b.tsv"),
        "{e}"
    );
    let parts = write_parts(dir.path(), &[MTX, FEATURES]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(e.message.contains("exactly two tables"), "{e}");
    let parts = write_parts(dir.path(), &[FEATURES, BARCODES]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(e.message.contains("no MatrixMarket matrix"), "{e}");
    let parts = write_parts(dir.path(), &[MTX]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.message.contains("m.mtx is a MatrixMarket matrix alone"),
        "{e}"
    );
    let parts = write_parts(dir.path(), &[b"barcode,gene\n"]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.unsupported && e.message.contains("text starting `barcode,gene`"),
        "{e}"
    );
    let parts = write_parts(dir.path(), &[b""]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.unsupported && e.message.contains("the file is empty"),
        "{e}"
    );
    let e = classify(&[], &[], dir.path(), &mut budget()).unwrap_err();
    assert!(e.message.contains("no file was uploaded"), "{e}");
}

#[test]
fn archives_must_hold_one_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let names = vec!["sample.zip".to_string()];
    let one = zip_with(&[
        ("filtered_feature_bc_matrix/matrix.mtx.gz", &gz(MTX)),
        ("filtered_feature_bc_matrix/features.tsv.gz", &gz(FEATURES)),
        ("filtered_feature_bc_matrix/barcodes.tsv.gz", &gz(BARCODES)),
    ]);
    let job = dir.path().join("a");
    std::fs::create_dir_all(&job).unwrap();
    let parts = write_parts(&job, &[&one]);
    let input = classify(&parts, &names, &job, &mut budget()).unwrap();
    assert_eq!(
        input,
        Input::MatrixMarketDir(job.join("input/filtered_feature_bc_matrix"))
    );

    let two = zip_with(&[("a/matrix.mtx", MTX), ("b/matrix.mtx", MTX)]);
    let job = dir.path().join("b");
    std::fs::create_dir_all(&job).unwrap();
    let parts = write_parts(&job, &[&two]);
    let e = classify(&parts, &names, &job, &mut budget()).unwrap_err();
    assert!(e.message.contains("2 10x matrix folders"), "{e}");

    let none = zip_with(&[("readme.txt", b"hello")]);
    let job = dir.path().join("c");
    std::fs::create_dir_all(&job).unwrap();
    let parts = write_parts(&job, &[&none]);
    let e = classify(&parts, &names, &job, &mut budget()).unwrap_err();
    assert!(
        e.message
            .contains("sample.zip: the archive holds no matrix.mtx"),
        "{e}"
    );
}

/// `n` concatenated gzip members of `block`: what a bomb looks like, made cheaply.
fn gz_repeat(block: &[u8], n: usize) -> Vec<u8> {
    gz(block).repeat(n)
}

#[test]
fn loose_gzip_bombs_are_cut_off_at_the_inflation_limit() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv"]
        .map(String::from)
        .to_vec();
    // a matrix header, then 8 MiB of comment lines
    let mut bomb = gz(b"%%MatrixMarket matrix coordinate integer general\n");
    bomb.extend(gz_repeat(&b"%\n".repeat(1 << 19), 8));
    let parts = write_parts(dir.path(), &[&bomb, &gz(FEATURES), BARCODES]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(e.too_large, "{e}");
    assert!(
        e.message.starts_with("matrix.mtx.gz: ") && e.message.contains("--max-inflated-bytes"),
        "{e}"
    );
    // a table that inflates to 8 MiB (of empty lines: counting lines does not stop it)
    let table = gz_repeat(&b"\n".repeat(1 << 20), 8);
    let parts = write_parts(dir.path(), &[&gz(MTX), &table, BARCODES]);
    let roomy = Limits {
        max_unpacked_bytes: 64 << 20,
        ..limits()
    };
    let e = classify(&parts, &names, dir.path(), &mut Budget::new(&roomy)).unwrap_err();
    assert!(
        e.too_large
            && e.message.contains("features.tsv.gz")
            && e.message.contains("max_inflated_bytes"),
        "{e}"
    );
    // each file fits, together they do not: the unpacked budget of the job
    let l = Limits {
        max_unpacked_bytes: 1 << 20,
        max_inflated_bytes: 4 << 20,
        ..limits()
    };
    let mut half = gz(b"%%MatrixMarket matrix coordinate integer general\n");
    half.extend(gz_repeat(&b"%\n".repeat(1 << 18), 3));
    let parts = write_parts(dir.path(), &[&half, &gz(FEATURES), BARCODES]);
    let e = classify(&parts, &names, dir.path(), &mut Budget::new(&l)).unwrap_err();
    assert!(
        e.too_large && e.message.contains("--max-unpacked-bytes"),
        "{e}"
    );
}

#[test]
fn a_line_longer_than_the_limit_is_refused_after_reading_only_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = ["m.mtx", "f.tsv.gz", "b.tsv"].map(String::from).to_vec();
    // a 1 GiB line of 'A' in 1024 gzip members of 1 MiB: a few MiB of upload
    let line = gz_repeat(&vec![b'A'; 1 << 20], 1024);
    let parts = write_parts(dir.path(), &[MTX, &line, BARCODES]);
    let l = Limits {
        max_inflated_bytes: 4 << 30,
        max_unpacked_bytes: 4 << 30,
        ..limits()
    };
    let t = std::time::Instant::now();
    let e = classify(&parts, &names, dir.path(), &mut Budget::new(&l)).unwrap_err();
    assert!(
        e.too_large && e.message.contains("f.tsv.gz") && e.message.contains("--max-line-bytes"),
        "{e}"
    );
    // stopped at the first line, not after inflating the gigabyte
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
    // the same in a matrix header
    let mut mtx = b"%%MatrixMarket matrix coordinate integer general\n%".to_vec();
    mtx.extend(vec![b'x'; 4096]);
    let parts = write_parts(dir.path(), &[&mtx, FEATURES, BARCODES]);
    let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.message.contains("m.mtx") && e.message.contains("max_line_bytes"),
        "{e}"
    );
}

#[test]
fn a_matrix_claiming_more_cells_than_the_limit_is_refused_at_its_size_line() {
    let dir = tempfile::tempdir().unwrap();
    let mtx = b"%%MatrixMarket matrix coordinate integer general\n3 1000000000000 1\n1 1 1\n";
    let parts = write_parts(dir.path(), &[mtx, FEATURES, BARCODES]);
    let e = classify(&parts, &["a.mtx".into()], dir.path(), &mut budget()).unwrap_err();
    assert!(
        e.too_large && e.message.contains("a.mtx") && e.message.contains("--max-cells"),
        "{e}"
    );
}
