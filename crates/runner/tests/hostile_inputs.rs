//! `crossomics run`, `translate` and `embed` on hostile files (the untrusted-input
//! issue): a MatrixMarket size line claiming 10^12 rows, a fraction in an `integer`
//! matrix, a gzip bomb. Each ends in exit status 1 with the file and the problem named —
//! never an abort (status 134), never a signal.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

fn crossomics(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_crossomics"))
        .args(args)
        .current_dir(cwd)
        .env("OMP_NUM_THREADS", "1")
        .output()
        .expect("the binary runs")
}

/// A plain-layout folder of 3 cells x 2 genes x 2 peaks with `rna` as its RNA matrix.
fn plain_folder(dir: &Path, rna: &[u8]) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("rna_counts.mtx"), rna).unwrap();
    std::fs::write(
        dir.join("atac_counts.mtx"),
        "%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 1\n3 2 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("genes.tsv"), "G1\nG2\n").unwrap();
    std::fs::write(dir.join("peaks.tsv"), "chr1-100-200\nchr1-300-400\n").unwrap();
    std::fs::write(
        dir.join("cells.tsv"),
        "barcode\tcell_type\nA\tx\nB\ty\nC\tx\n",
    )
    .unwrap();
}

fn run_on(rna: &[u8]) -> (Output, String) {
    let tmp = tempfile::tempdir().unwrap();
    plain_folder(&tmp.path().join("data"), rna);
    let cfg = tmp.path().join("c.toml");
    std::fs::write(
        &cfg,
        "name = \"hostile\"\n[dataset]\nformat = \"plain\"\npath = \"data\"\n[model]\nkind = \"sailerx\"\n",
    )
    .unwrap();
    let o = crossomics(&["run", "c.toml", "--out", "out"], tmp.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o, text)
}

fn assert_clean_failure(o: &Output, text: &str, needles: &[&str]) {
    assert_eq!(
        o.status.code(),
        Some(1),
        "not a clean exit: {:?}\n{text}",
        o.status
    );
    for n in needles {
        assert!(text.contains(n), "`{n}` missing:\n{text}");
    }
}

#[test]
fn a_claimed_shape_over_the_limits_is_refused_before_allocating() {
    let (o, text) = run_on(
        b"%%MatrixMarket matrix coordinate integer general\n1000000000000 1000000000000 1\n1 1 1\n",
    );
    assert_clean_failure(
        &o,
        &text,
        &[
            "rna_counts.mtx",
            "1000000000000",
            "max_cells",
            "--max-cells",
        ],
    );
}

#[test]
fn a_fraction_in_an_integer_matrix_is_refused() {
    let (o, text) =
        run_on(b"%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 2.5\n2 2 1\n");
    assert_clean_failure(&o, &text, &["rna_counts.mtx", "line 3", "2.5", "integer"]);
}

#[test]
fn a_gzip_bomb_is_cut_off_at_the_inflation_limit() {
    // 64 MiB of blank lines after the header: compresses to ~64 KiB
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(b"%%MatrixMarket matrix coordinate integer general\n3 2 1\n1 1 1\n")
        .unwrap();
    let blank = vec![b'\n'; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&blank).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    plain_folder(&tmp.path().join("data"), &bomb);
    std::fs::write(
        tmp.path().join("c.toml"),
        "name = \"bomb\"\n[dataset]\nformat = \"plain\"\npath = \"data\"\n[model]\nkind = \"sailerx\"\n[limits]\nmax_inflated_bytes = 1048576\n",
    )
    .unwrap();
    let o = crossomics(&["run", "c.toml", "--out", "out"], tmp.path());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_clean_failure(&o, &text, &["rna_counts.mtx", "max_inflated_bytes"]);
    // a typo in [limits] names the key
    std::fs::write(
        tmp.path().join("c.toml"),
        "name = \"bomb\"\n[dataset]\nformat = \"plain\"\npath = \"data\"\n[model]\nkind = \"sailerx\"\n[limits]\nmax_inflated = 1\n",
    )
    .unwrap();
    let o = crossomics(&["check", "c.toml"], tmp.path());
    let text = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && text.contains("max_inflated"),
        "{text}"
    );
}
