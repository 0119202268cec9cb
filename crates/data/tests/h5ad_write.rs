//! The h5ad writer: what it writes reads back the same, it replaces a file atomically and
//! checks its input, and Python `anndata.read_h5ad` reads it (and we read what Python
//! writes).
//!
//! The Python round trip uses a venv at `<repo>/.venv-anndata` with the anndata version
//! pinned in `scripts/requirements-anndata.txt`, created here on first use (idempotent),
//! or the interpreter named by `CROSSOMICS_ANNDATA_PYTHON`. It is skipped, loudly, only
//! when pip cannot reach PyPI, and then not at all when `CROSSOMICS_REQUIRE_PYTHON=1`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{csr, s};
use crossomics_data::CellTable;
use crossomics_data::h5ad::{self, Matrix, ReadOptions};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::Array2;
use proptest::prelude::*;

fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}

fn arb_matrix() -> impl Strategy<Value = CsrMatrix<f32>> {
    (1usize..7, 1usize..7).prop_flat_map(|(r, c)| {
        proptest::collection::vec(
            prop_oneof![
                3 => Just(0.0f32),
                2 => (1u32..50).prop_map(|v| v as f32),
                1 => -1e3f32..1e3,
            ],
            r * c,
        )
        .prop_map(move |values| {
            let mut coo = CooMatrix::new(r, c);
            for (k, v) in values.into_iter().enumerate() {
                if v != 0.0 {
                    coo.push(k / c, k % c, v);
                }
            }
            CsrMatrix::from(&coo)
        })
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn write_then_read_gives_back_the_same_data(m in arb_matrix(), dense in any::<bool>(), dims in 1usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.h5ad");
        let cells = CellTable::new(names("cell-", m.nrows()))
            .with_column("group", (0..m.nrows()).map(|i| format!("g{}", i % 2)).collect())
            .unwrap();
        let genes = names("gene", m.ncols());
        let emb = Array2::from_shape_fn((m.nrows(), dims), |(i, j)| i as f32 * 0.5 - j as f32);
        let dense_x = Array2::from_shape_fn((m.nrows(), m.ncols()), |(i, j)| {
            m.get_entry(i, j).map(|e| e.into_value()).unwrap_or(0.0)
        });
        let x = if dense { Matrix::from(&dense_x) } else { Matrix::from(&m) };
        h5ad::write(&path, Some(x), &cells, &genes, &[("X_emb", emb.view())]).unwrap();
        let back = h5ad::read(&path, None).unwrap();
        prop_assert_eq!(&back.matrix, &m);
        prop_assert_eq!(back.cells, cells);
        prop_assert_eq!(back.features, genes);
        prop_assert_eq!(h5ad::read_obsm(&path, "X_emb").unwrap(), emb);
        let summary = h5ad::inspect(&path).unwrap();
        prop_assert_eq!(summary.x.unwrap(), if dense { "array f32" } else { "csr_matrix f32" });
        // nothing but the file is left in the folder
        prop_assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}

#[test]
fn writing_replaces_a_file_atomically_and_checks_its_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pred.h5ad");
    let m = csr(2, 2, &[(0, 0, 1.0), (1, 1, 2.0)]);
    let cells = CellTable::new(s(&["a", "b"]));
    let genes = s(&["G1", "G2"]);
    h5ad::write(&path, Some(Matrix::from(&m)), &cells, &genes, &[]).unwrap();
    // overwrite with an embedding-only file (no X)
    let emb = Array2::from_shape_vec((2, 1), vec![0.5f32, -0.5]).unwrap();
    h5ad::write(&path, None, &cells, &[], &[("X_latent", emb.view())]).unwrap();
    assert_eq!(h5ad::read_obsm(&path, "X_latent").unwrap(), emb);
    assert!(h5ad::inspect(&path).unwrap().x.is_none());

    let bad = |x: Option<Matrix<'_>>, cells: &CellTable, genes: &[String], emb: &Array2<f32>| {
        h5ad::write(&path, x, cells, genes, &[("e", emb.view())])
            .unwrap_err()
            .to_string()
    };
    let nan = csr(2, 2, &[(1, 0, f32::NAN)]);
    let err = bad(Some(Matrix::from(&nan)), &cells, &genes, &emb);
    assert!(
        err.contains("pred.h5ad") && err.contains("row 1, column 0"),
        "{err}"
    );
    let err = bad(Some(Matrix::from(&m)), &cells, &genes[..1], &emb);
    assert!(err.contains("X is 2 x 2"), "{err}");
    let err = bad(
        Some(Matrix::from(&m)),
        &CellTable::new(s(&["a", "a"])),
        &genes,
        &emb,
    );
    assert!(err.contains("`a` occurs twice"), "{err}");
    let short = Array2::zeros((1, 1));
    let err = bad(Some(Matrix::from(&m)), &cells, &genes, &short);
    assert!(
        err.contains("obsm/e") && err.contains("1 rows for 2 cells"),
        "{err}"
    );
    // the file from before is intact, and no temporary is left behind
    assert_eq!(h5ad::read_obsm(&path, "X_latent").unwrap(), emb);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // into a folder that does not exist: an error naming the file
    let err = h5ad::write(
        &dir.path().join("no/such/dir/x.h5ad"),
        Some(Matrix::from(&m)),
        &cells,
        &genes,
        &[],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("x.h5ad"), "{err}");
}

// ---------------------------------------------------------------------------------------
// Python anndata

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python with the pinned anndata, or `None` (after a loud message) when PyPI cannot
/// be reached to install it.
fn anndata_python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CROSSOMICS_ANNDATA_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let repo = repo();
    let req_path = repo.join("scripts/requirements-anndata.txt");
    let requirements = std::fs::read_to_string(&req_path).unwrap();
    let venv = repo.join(".venv-anndata");
    let python = venv.join("bin/python");
    let marker = venv.join("crossomics-requirements.txt");
    let ready = || std::fs::read_to_string(&marker).is_ok_and(|m| m == requirements);
    if ready() {
        return Some(python);
    }
    // one installer at a time across test processes
    let lock = repo.join(".venv-anndata.lock");
    let start = std::time::Instant::now();
    while std::fs::create_dir(&lock).is_err() {
        if ready() {
            return Some(python);
        }
        let stale = std::fs::metadata(&lock)
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|e| e.as_secs() > 900));
        if stale {
            let _ = std::fs::remove_dir(&lock);
        }
        assert!(
            start.elapsed().as_secs() < 900,
            "waited 15 minutes for {}",
            lock.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    struct Unlock(PathBuf);
    impl Drop for Unlock {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }
    let _unlock = Unlock(lock);
    if ready() {
        return Some(python);
    }
    let _ = std::fs::remove_dir_all(&venv);
    let base = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&base)
        .args(["-m", "venv"])
        .arg(&venv)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {base} to make {}: {e}", venv.display()));
    assert!(
        out.status.success(),
        "{base} -m venv {} failed (is python3-venv installed?):\n{}",
        venv.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("installing {} into {}", req_path.display(), venv.display());
    let out = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
        ])
        .arg(&req_path)
        .output()
        .unwrap();
    if !out.status.success() {
        let log = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let _ = std::fs::remove_dir_all(&venv);
        let offline = [
            "NewConnectionError",
            "Failed to establish a new connection",
            "Temporary failure in name resolution",
            "Could not fetch URL",
            "Max retries exceeded",
            "Network is unreachable",
            "No matching distribution found",
        ]
        .iter()
        .any(|s| log.contains(s));
        let required = std::env::var("CROSSOMICS_REQUIRE_PYTHON").is_ok_and(|v| v == "1");
        if offline && !required {
            eprintln!(
                "\n*** SKIPPED: the Python anndata round trip: pip cannot reach PyPI to install {} ***\n{log}",
                req_path.display()
            );
            return None;
        }
        panic!("pip install -r {} failed:\n{log}", req_path.display());
    }
    std::fs::write(&marker, &requirements).unwrap();
    Some(python)
}

fn check_script(python: &Path, args: &[&str]) -> String {
    let out = Command::new(python)
        .arg(repo().join("scripts/check_h5ad.py"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "check_h5ad.py {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn python_anndata_reads_what_we_write_and_we_read_what_it_writes() {
    let Some(python) = anndata_python() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();

    // Rust -> Python: CSR X with fractional values, obs names and a column, obsm
    let path = dir.path().join("ours.h5ad");
    let x = csr(
        3,
        4,
        &[(0, 1, 0.1), (0, 3, 5.0), (2, 0, -2.5), (2, 2, 1e-3)],
    );
    let cells = CellTable::new(s(&["AAAC-1", "AAAG-1", "AACT-1"]))
        .with_column("cell_type", s(&["T", "B", "T"]))
        .unwrap();
    let genes = s(&["CD3E", "MS4A1", "NKG7", "chr1:100-200"]);
    let emb = Array2::from_shape_fn((3, 2), |(i, j)| i as f32 / 3.0 + j as f32);
    h5ad::write(
        &path,
        Some(Matrix::from(&x)),
        &cells,
        &genes,
        &[("X_sailerx", emb.view())],
    )
    .unwrap();
    let dump = check_script(&python, &["dump", path.to_str().unwrap()]);
    let mut entries = Vec::new();
    let mut seen = Vec::new();
    for line in dump.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        seen.push(f[0].to_string());
        match f[0] {
            "shape" => assert_eq!(&f[1..], ["3", "4"]),
            "x_format" => assert_eq!(f[1], "csr"),
            "obs_names" => assert_eq!(&f[1..], cells.barcodes()),
            "var_names" => assert_eq!(&f[1..], &genes[..]),
            "obs" => {
                assert_eq!(f[1], "cell_type");
                assert_eq!(&f[2..], cells.column("cell_type").unwrap());
            }
            "obsm" => {
                assert_eq!(&f[1..4], ["X_sailerx", "3", "2"]);
                let values: Vec<f64> = f[4..].iter().map(|v| v.parse().unwrap()).collect();
                let expected: Vec<f64> = emb.iter().map(|&v| v as f64).collect();
                assert_eq!(values, expected);
            }
            "x" => entries.push((
                f[1].parse::<usize>().unwrap(),
                f[2].parse::<usize>().unwrap(),
                f[3].parse::<f64>().unwrap(),
            )),
            other => panic!("unexpected record {other}"),
        }
    }
    for record in ["shape", "x_format", "obs_names", "var_names", "obs", "obsm"] {
        assert!(seen.iter().any(|r| r == record), "no {record} in:\n{dump}");
    }
    let expected: Vec<(usize, usize, f64)> = x
        .triplet_iter()
        .map(|(r, c, v)| (r, c, *v as f64))
        .collect();
    assert_eq!(entries, expected);

    // Python -> Rust: the current anndata encoding (categorical groups, nullable ints,
    // CSC float64 X, an int32 counts layer, obsm)
    let theirs = dir.path().join("theirs.h5ad");
    check_script(&python, &["write", theirs.to_str().unwrap()]);
    let m = h5ad::read(&theirs, None).unwrap();
    let want = csr(4, 3, &[(0, 1, 1.5), (1, 0, 2.0), (3, 0, 0.25), (3, 2, 7.0)]);
    assert_eq!(m.matrix, want);
    assert_eq!(
        m.cells.barcodes(),
        &s(&["AAAC-1", "AAAG-1", "AACT-1", "AAGT-1"])[..]
    );
    assert_eq!(m.features, s(&["CD3E", "MS4A1", "NKG7"]));
    let col = |n: &str| m.cells.column(n).unwrap().to_vec();
    assert_eq!(col("cell_type"), s(&["T", "B", "T", "NK"]));
    // booleans are typed now (polars Boolean), printed lower-case
    assert_eq!(col("is_train"), s(&["true", "false", "true", "true"]));
    assert_eq!(col("depth"), s(&["1.0", "2.5", "NaN", "4.0"]));
    assert_eq!(col("n_genes"), s(&["1", "", "0", "2"]));
    assert_eq!(col("donor"), s(&["d1", "d1", "d2", "d2"]));
    let c = h5ad::read_with(&theirs, &ReadOptions::counts(Some("counts"))).unwrap();
    assert_eq!(
        c.matrix,
        csr(4, 3, &[(0, 1, 3.0), (1, 0, 5.0), (3, 0, 1.0), (3, 2, 9.0)])
    );
    let umap = h5ad::read_obsm(&theirs, "X_umap").unwrap();
    assert_eq!(
        umap,
        Array2::from_shape_fn((4, 2), |(i, j)| (i * 2 + j) as f32 / 4.0)
    );
    let err = h5ad::read_with(&theirs, &ReadOptions::counts(None))
        .unwrap_err()
        .to_string();
    assert!(err.contains("theirs.h5ad") && err.contains("1.5"), "{err}");
}
