//! AnnData / MuData / 10x HDF5 readers and the h5ad writer, on the real files that Python
//! anndata and mudata wrote (`data/` in the repository), on synthetic files, against Python
//! `anndata.read_h5ad`, and on broken input.
//!
//! The Python round trip uses a venv at `<repo>/.venv-anndata` with the anndata version
//! pinned in `scripts/requirements-anndata.txt`, created here on first use (idempotent),
//! or the interpreter named by `CROSSOMICS_ANNDATA_PYTHON`. It is skipped, loudly, only
//! when pip cannot reach PyPI, and then not at all when `CROSSOMICS_REQUIRE_PYTHON=1`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use crossomics_data::config::DatasetConfig;
use crossomics_data::dataset::select_rows;
use crossomics_data::h5ad::{self, Matrix, ReadOptions};
use crossomics_data::pair::PairingConfig;
use crossomics_data::{CellTable, DataError, PairedDataset, plain, tenx};
use hdf5::types::{FixedAscii, VarLenUnicode};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::Array2;
use proptest::prelude::*;

fn shared(rel: &str) -> PathBuf {
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

const BMMC: &str = "bmmc_multiome_starter/h5ad";
const STEM: &str = "openproblems_bmmc_multiome_starter";

fn bmmc(task: &str, part: &str) -> PathBuf {
    shared(&format!("{BMMC}/{task}/{STEM}.{part}.h5ad"))
}

fn counts() -> ReadOptions {
    ReadOptions::counts(Some("counts"))
}

fn row_of(d: &PairedDataset) -> HashMap<&str, usize> {
    d.cells
        .barcodes()
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect()
}

fn s(v: &[&str]) -> Vec<String> {
    v.iter().map(|x| x.to_string()).collect()
}

fn files_with_ext(dir: &Path, ext: &str, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            files_with_ext(&p, ext, out);
        } else if p.extension().is_some_and(|e| e == ext) {
            out.push(p);
        }
    }
}

// ---------------------------------------------------------------------------------------
// every real file

#[test]
fn every_shared_h5ad_and_h5mu_opens() {
    let root = shared("");
    let mut h5ad_files = Vec::new();
    files_with_ext(&root, "h5ad", &mut h5ad_files);
    let mut h5mu_files = Vec::new();
    files_with_ext(&root, "h5mu", &mut h5mu_files);
    assert!(h5ad_files.len() >= 23, "{h5ad_files:?}");
    assert!(!h5mu_files.is_empty());
    let (mut with_x, mut without_x) = (0, 0);
    for f in &h5ad_files {
        let summary = h5ad::inspect(f).unwrap_or_else(|e| panic!("{e}"));
        match &summary.x {
            Some(_) => {
                with_x += 1;
                let m = h5ad::read(f, None).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(
                    (m.matrix.nrows(), m.matrix.ncols()),
                    (summary.n_obs, summary.n_vars),
                    "{}",
                    f.display()
                );
                assert_eq!(m.cells.len(), summary.n_obs);
                assert_eq!(m.features.len(), summary.n_vars);
                for layer in &summary.layers {
                    let l = h5ad::read(f, Some(layer)).unwrap_or_else(|e| panic!("{e}"));
                    assert_eq!(l.matrix.nrows(), m.matrix.nrows());
                }
            }
            None => {
                // the scores files: metrics in uns, no matrix
                without_x += 1;
                assert_eq!(summary.n_obs, 0, "{}", f.display());
                assert!(summary.uns.iter().any(|k| k == "metric_values"));
                let err = h5ad::read(f, None).unwrap_err().to_string();
                assert!(
                    err.contains(&f.display().to_string()) && err.contains("no `X`"),
                    "{err}"
                );
            }
        }
    }
    assert_eq!(without_x, 3);
    assert_eq!(with_x + without_x, h5ad_files.len());
    assert!(with_x >= 20);
    for f in &h5mu_files {
        let mods = h5ad::mods(f).unwrap();
        assert!(!mods.is_empty());
        for m in &mods {
            let summary = h5ad::inspect_mod(f, m).unwrap();
            let read = h5ad::read_mod(f, m, &ReadOptions::default()).unwrap();
            assert_eq!(read.matrix.nrows(), summary.n_obs);
        }
    }
}

// ---------------------------------------------------------------------------------------
// bmmc: the NeurIPS 2021 competition files against the plain export of the same cells

#[test]
fn bmmc_common_files_hold_the_plain_counts_and_labels() {
    let p = plain::read_dir(
        &shared("bmmc_multiome_starter"),
        &crossomics_limits::Limits::default(),
    )
    .unwrap();
    let rna = h5ad::read_with(&bmmc("common", "output_rna"), &counts()).unwrap();
    assert_eq!(rna.cells.barcodes(), p.cells.barcodes());
    assert_eq!(rna.matrix, p.rna);
    assert_eq!(rna.features, p.genes);
    for col in ["cell_type", "batch", "is_train"] {
        assert_eq!(rna.cells.column(col), p.cells.column(col), "{col}");
    }
    // pseudotime is NaN for the training donor, numbers for the other
    let h5: Vec<f64> = rna
        .cells
        .column("pseudotime_order_GEX")
        .unwrap()
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let tsv: Vec<f64> = p
        .cells
        .column("pseudotime_order_GEX")
        .unwrap()
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    assert_eq!(h5.len(), tsv.len());
    assert!(
        h5.iter()
            .zip(&tsv)
            .all(|(a, b)| (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * b.abs())
    );
    assert!(h5.iter().any(|v| !v.is_nan()));
    // categoricals written by anndata < 0.8 (obs/__categories) come back as names
    let (_, types) = rna.cells.codes("cell_type").unwrap();
    assert_eq!(types.len(), 21);

    let atac =
        h5ad::parse_peaks(h5ad::read_with(&bmmc("common", "output_mod2"), &counts()).unwrap())
            .unwrap();
    assert_eq!(atac.cells.barcodes(), p.cells.barcodes());
    assert_eq!(atac.matrix, p.atac);
    assert_eq!(atac.features, p.peaks);
}

#[test]
fn bmmc_predict_modality_splits_are_rows_of_the_plain_counts() {
    let p = plain::read_dir(
        &shared("bmmc_multiome_starter"),
        &crossomics_limits::Limits::default(),
    )
    .unwrap();
    let rows = row_of(&p);
    let mut seen = 0;
    for (part, batch, n) in [("train", "s1d1", 221), ("test", "s1d2", 279)] {
        let mod1 = h5ad::read_with(
            &bmmc("predict_modality", &format!("{part}_mod1")),
            &counts(),
        )
        .unwrap();
        let mod2 = h5ad::read_with(
            &bmmc("predict_modality", &format!("{part}_mod2")),
            &counts(),
        )
        .unwrap();
        assert_eq!(mod1.cells.len(), n);
        assert_eq!(mod1.cells.barcodes(), mod2.cells.barcodes());
        let idx: Vec<usize> = mod1
            .cells
            .barcodes()
            .iter()
            .map(|b| rows[b.as_str()])
            .collect();
        assert_eq!(mod1.matrix, select_rows(&p.rna, &idx), "{part} RNA");
        assert_eq!(mod2.matrix, select_rows(&p.atac, &idx), "{part} ATAC");
        assert_eq!(mod1.features, p.genes);
        assert!(
            mod1.cells
                .column("batch")
                .unwrap()
                .iter()
                .all(|b| b == batch)
        );
        seen += n;
    }
    assert_eq!(seen, p.n_cells());
    // the prediction of the starter method: the test cells x the ATAC peaks, not counts
    let pred = h5ad::read(&bmmc("predict_modality", "prediction"), None).unwrap();
    assert_eq!((pred.matrix.nrows(), pred.matrix.ncols()), (279, 600));
    let peaks = h5ad::parse_peaks(pred).unwrap().features;
    assert_eq!(peaks, p.peaks);
}

#[test]
fn normalized_x_is_rejected_as_counts_with_a_pointer_to_the_layer() {
    let f = bmmc("predict_modality", "train_mod1");
    let err = h5ad::read_with(&f, &ReadOptions::counts(None))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&f.display().to_string())
            && err.contains("not a non-negative integer count")
            && err.contains("layer `counts`"),
        "{err}"
    );
    // without the check the normalized values read fine
    let x = h5ad::read(&f, None).unwrap();
    assert!(x.matrix.values().iter().any(|v| v.fract() != 0.0));
}

#[test]
fn bmmc_match_modality_solution_permutes_the_hidden_atac_cells() {
    let p = plain::read_dir(
        &shared("bmmc_multiome_starter"),
        &crossomics_limits::Limits::default(),
    )
    .unwrap();
    let rows = row_of(&p);
    for part in ["train", "test"] {
        let mod1 =
            h5ad::read_with(&bmmc("match_modality", &format!("{part}_mod1")), &counts()).unwrap();
        let mod2 =
            h5ad::read_with(&bmmc("match_modality", &format!("{part}_mod2")), &counts()).unwrap();
        let sol = h5ad::read(&bmmc("match_modality", &format!("{part}_sol")), None).unwrap();
        let n = mod1.cells.len();
        assert_eq!(sol.cells.barcodes(), mod1.cells.barcodes());
        // ATAC barcodes are hidden: none is a real barcode
        assert!(
            mod2.cells
                .barcodes()
                .iter()
                .all(|b| !rows.contains_key(b.as_str()))
        );
        // the solution is a permutation matrix: row i has its one 1 at mod2 cell j(i)
        assert_eq!(sol.matrix.nnz(), n);
        let j: Vec<usize> = sol
            .matrix
            .row_iter()
            .map(|r| {
                assert_eq!(r.values(), &[1.0]);
                r.col_indices()[0]
            })
            .collect();
        let idx: Vec<usize> = mod1
            .cells
            .barcodes()
            .iter()
            .map(|b| rows[b.as_str()])
            .collect();
        assert_eq!(
            select_rows(&mod2.matrix, &j),
            select_rows(&p.atac, &idx),
            "{part}"
        );
    }
}

#[test]
fn bmmc_joint_embedding_files() {
    let p = plain::read_dir(
        &shared("bmmc_multiome_starter"),
        &crossomics_limits::Limits::default(),
    )
    .unwrap();
    let mod1 = h5ad::read_with(&bmmc("joint_embedding", "mod1"), &counts()).unwrap();
    assert_eq!(mod1.matrix, p.rna);
    assert_eq!(mod1.cells.barcodes(), p.cells.barcodes());
    // the starter method's embedding: a dense float32 X, 500 cells x 10 components
    let f = bmmc("joint_embedding", "prediction");
    let summary = h5ad::inspect(&f).unwrap();
    assert_eq!(summary.x.as_deref(), Some("array f32"));
    let emb = h5ad::read(&f, None).unwrap();
    assert_eq!((emb.matrix.nrows(), emb.matrix.ncols()), (500, 10));
    assert_eq!(emb.features[0], "comp_1");
    assert_eq!(emb.cells.barcodes(), p.cells.barcodes());
    let solution = h5ad::read(&bmmc("joint_embedding", "solution"), None).unwrap();
    assert_eq!(
        solution.cells.column("cell_type"),
        p.cells.column("cell_type")
    );
}

// ---------------------------------------------------------------------------------------
// pbmc (two h5ad files with `_rna` / `_atac` barcode suffixes) and scicar (h5mu)

fn suffixes() -> PairingConfig {
    PairingConfig {
        strip_suffixes: s(&["_rna", "_atac"]),
        ..Default::default()
    }
}

#[test]
fn pbmc_h5ad_pair_matches_the_plain_export_after_suffix_stripping() {
    let dir = shared("pbmc_multiome_100");
    let p = plain::read_dir(&dir, &crossomics_limits::Limits::default()).unwrap();
    let (d, report) = h5ad::read_pair(
        "pbmc",
        &dir.join("10xpbmc_rna_subset.h5ad"),
        &dir.join("10xpbmc_atac_subset.h5ad"),
        &ReadOptions::counts(None),
        &suffixes(),
    )
    .unwrap();
    assert_eq!(
        (report.paired, report.rna_only, report.atac_only),
        (100, 0, 0)
    );
    assert_eq!(d.rna, p.rna);
    assert_eq!(d.atac, p.atac);
    assert_eq!(d.genes, p.genes);
    assert_eq!(d.peaks, p.peaks);
    let stripped: Vec<&str> = p
        .cells
        .barcodes()
        .iter()
        .map(|b| b.strip_suffix("_rna").unwrap())
        .collect();
    assert_eq!(d.cells.barcodes(), &stripped[..]);
    assert_eq!(d.cells.column("celltype"), p.cells.column("celltype"));
    // without stripping nothing pairs, and the error says what to set
    let err = h5ad::read_pair(
        "pbmc",
        &dir.join("10xpbmc_rna_subset.h5ad"),
        &dir.join("10xpbmc_atac_subset.h5ad"),
        &ReadOptions::default(),
        &PairingConfig::default(),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("strip_suffixes"), "{err}");
}

#[test]
fn scicar_h5mu_matches_the_plain_export() {
    let dir = shared("scicar_a549");
    let p = plain::read_dir(&dir, &crossomics_limits::Limits::default()).unwrap();
    let f = dir.join("sciCAR_A549.h5mu");
    let mut mods = h5ad::mods(&f).unwrap();
    mods.sort();
    assert_eq!(mods, s(&["atac", "rna"]));
    let (d, report) = h5ad::read_h5mu(
        "scicar",
        &f,
        "rna",
        "atac",
        &ReadOptions::counts(None),
        &PairingConfig::default(),
    )
    .unwrap();
    assert_eq!(report.paired, 2641);
    assert_eq!(d.rna, p.rna);
    assert_eq!(d.atac, p.atac);
    assert_eq!(d.genes, p.genes);
    assert_eq!(d.peaks, p.peaks);
    assert_eq!(d.cells.barcodes(), p.cells.barcodes());
    assert_eq!(d.cells.column("time_h"), p.cells.column("time_h"));
    // the RNA modality's float column, printed as Python prints it
    let sf = d.cells.column("size_factor_inferred").unwrap();
    assert_eq!(sf[0], "2.664534831756346");
    // the layers of a modality
    let norm = h5ad::read_mod(&f, "rna", &ReadOptions::layer(Some("log_norm_scAI"))).unwrap();
    assert_eq!(norm.matrix.nrows(), 2641);
    let err = h5ad::read_mod(&f, "protein", &ReadOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sciCAR_A549.h5mu") && err.contains("atac, rna"),
        "{err}"
    );
}

#[test]
fn dataset_configs_load_h5ad_h5mu_and_10x() {
    let base = shared("");
    let cfg: DatasetConfig = toml::from_str(
        "format = \"h5ad\"\nrna = \"pbmc_multiome_100/10xpbmc_rna_subset.h5ad\"\natac = \"pbmc_multiome_100/10xpbmc_atac_subset.h5ad\"\n[pairing]\nstrip_suffixes = [\"_rna\", \"_atac\"]\n",
    )
    .unwrap();
    let d = cfg
        .load(&base, &crossomics_limits::Limits::default())
        .unwrap();
    assert_eq!(
        (d.n_cells(), d.rna.ncols(), d.atac.ncols()),
        (100, 200, 200)
    );

    let cfg: DatasetConfig =
        toml::from_str("format = \"h5mu\"\npath = \"scicar_a549/sciCAR_A549.h5mu\"\n").unwrap();
    assert_eq!(
        cfg.load(&base, &crossomics_limits::Limits::default())
            .unwrap()
            .n_cells(),
        2641
    );

    // X of the competition files is normalized: counts are required unless switched off
    let cfg: DatasetConfig = toml::from_str(&format!(
        "format = \"h5ad\"\nrna = \"{BMMC}/common/{STEM}.output_rna.h5ad\"\natac = \"{BMMC}/common/{STEM}.output_mod2.h5ad\"\n"
    ))
    .unwrap();
    let err = cfg
        .load(&base, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("output_rna.h5ad") && err.contains("layer `counts`"),
        "{err}"
    );
    let cfg: DatasetConfig = toml::from_str(&format!(
        "format = \"h5ad\"\nrna = \"{BMMC}/common/{STEM}.output_rna.h5ad\"\natac = \"{BMMC}/common/{STEM}.output_mod2.h5ad\"\nlayer = \"counts\"\n"
    ))
    .unwrap();
    assert_eq!(
        cfg.load(&base, &crossomics_limits::Limits::default())
            .unwrap()
            .n_cells(),
        500
    );

    let tmp = tempfile::tempdir().unwrap();
    write_tenx(&tmp.path().join("m.h5"), &TenxSpec::default());
    let cfg: DatasetConfig = toml::from_str("format = \"tenx_h5\"\npath = \"m.h5\"\n").unwrap();
    assert_eq!(
        cfg.load(tmp.path(), &crossomics_limits::Limits::default())
            .unwrap()
            .n_cells(),
        3
    );

    let err =
        toml::from_str::<DatasetConfig>("format = \"h5mu\"\npath = \"x\"\nrna_mods = \"r\"\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("rna_mods"), "{err}");
}

// ---------------------------------------------------------------------------------------
// writing

fn csr(rows: usize, cols: usize, entries: &[(usize, usize, f32)]) -> CsrMatrix<f32> {
    let mut coo = CooMatrix::new(rows, cols);
    for &(r, c, v) in entries {
        coo.push(r, c, v);
    }
    CsrMatrix::from(&coo)
}

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

// ---------------------------------------------------------------------------------------
// 10x Cell Ranger ARC

struct TenxSpec {
    barcodes: Vec<&'static str>,
    data: Vec<f32>,
    types: [&'static str; 5],
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
fn write_tenx(path: &Path, spec: &TenxSpec) {
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

#[test]
fn tenx_h5_splits_genes_and_peaks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pbmc").join("outs");
    std::fs::create_dir_all(&path).unwrap();
    let path = path.join("filtered_feature_bc_matrix.h5");
    write_tenx(&path, &TenxSpec::default());
    let d = tenx::read_h5(&path, &crossomics_limits::Limits::default()).unwrap();
    assert_eq!(d.name, "pbmc");
    assert_eq!(d.cells.barcodes(), &s(&["AAAC-1", "AAAG-1", "AACT-1"])[..]);
    assert_eq!(d.genes, s(&["GENE1", "GENE2"]));
    assert_eq!(
        d.peaks.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        s(&["chr1:100-200", "chr2:5-50"])
    );
    assert_eq!(d.rna, csr(3, 2, &[(0, 0, 3.0), (1, 1, 2.0), (2, 0, 4.0)]));
    assert_eq!(d.atac, csr(3, 2, &[(0, 1, 1.0), (2, 0, 1.0)]));
}

#[test]
fn tenx_h5_of_one_modality_reads_as_parts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gex.h5");
    let antibody = "Antibody Capture";
    write_tenx(
        &path,
        &TenxSpec {
            types: [
                "Gene Expression",
                "Gene Expression",
                antibody,
                antibody,
                antibody,
            ],
            ..Default::default()
        },
    );
    assert!(tenx::is_tenx_h5(
        &path,
        &crossomics_limits::Limits::default()
    ));
    let limits = crossomics_limits::Limits::default();
    assert!(!tenx::is_tenx_h5(
        &shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"),
        &limits
    ));
    assert!(!tenx::is_tenx_h5(&dir.path().join("missing.h5"), &limits));
    let parts = tenx::read_h5_parts(&path, &crossomics_limits::Limits::default()).unwrap();
    assert!(parts.atac.is_none());
    let rna = parts.rna.as_ref().unwrap();
    assert_eq!(rna.features, s(&["GENE1", "GENE2"]));
    assert_eq!(parts.gene_ids, Some(s(&["ENSG01", "ENSG02"])));
    assert_eq!(
        rna.matrix,
        csr(3, 2, &[(0, 0, 3.0), (1, 1, 2.0), (2, 0, 4.0)])
    );
    assert_eq!(
        rna.cells.barcodes(),
        &s(&["AAAC-1", "AAAG-1", "AACT-1"])[..]
    );
    let err = tenx::read_h5(&path, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("gex.h5") && err.contains("needs both") && err.contains(antibody),
        "{err}"
    );

    let peaks = dir.path().join("peaks.h5");
    write_tenx(
        &peaks,
        &TenxSpec {
            types: [antibody, antibody, antibody, "Peaks", "Peaks"],
            ..Default::default()
        },
    );
    let parts = tenx::read_h5_parts(&peaks, &crossomics_limits::Limits::default()).unwrap();
    assert!(parts.rna.is_none() && parts.gene_ids.is_none());
    assert_eq!(
        parts.atac.unwrap().matrix,
        csr(3, 2, &[(0, 1, 1.0), (2, 0, 1.0)])
    );

    let none = dir.path().join("antibodies.h5");
    write_tenx(
        &none,
        &TenxSpec {
            types: [antibody; 5],
            ..Default::default()
        },
    );
    let err = tenx::read_h5_parts(&none, &crossomics_limits::Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("antibodies.h5") && err.contains("no `Gene Expression` or `Peaks` features"),
        "{err}"
    );
}

#[test]
fn tenx_h5_bad_input_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.h5");
    write_tenx(&good, &TenxSpec::default());

    let check = |path: &Path, needle: &str| {
        let err = tenx::read_h5(path, &crossomics_limits::Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&path.display().to_string()) && err.contains(needle),
            "{needle}: {err}"
        );
    };
    // truncated
    let bytes = std::fs::read(&good).unwrap();
    for cut in [bytes.len() / 2, 600, 10] {
        let t = dir.path().join(format!("cut{cut}.h5"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        let err = tenx::read_h5(&t, &crossomics_limits::Limits::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&t.display().to_string()), "{err}");
    }
    let text = dir.path().join("matrix.h5");
    std::fs::write(&text, "barcode\tgene\n").unwrap();
    check(&text, "not a readable HDF5 file");
    check(&dir.path().join("missing.h5"), "not found");

    let dup = dir.path().join("dup.h5");
    write_tenx(
        &dup,
        &TenxSpec {
            barcodes: vec!["AAAC-1", "AAAG-1", "AAAC-1"],
            ..Default::default()
        },
    );
    check(&dup, "`AAAC-1` occurs twice");
    let frac = dir.path().join("frac.h5");
    write_tenx(
        &frac,
        &TenxSpec {
            data: vec![3.0, 1.0, 2.5, 1.0, 4.0, 1.0],
            ..Default::default()
        },
    );
    check(&frac, "2.5, not a non-negative integer");
    let nan = dir.path().join("nan.h5");
    write_tenx(
        &nan,
        &TenxSpec {
            data: vec![3.0, 1.0, f32::NAN, 1.0, 4.0, 1.0],
            ..Default::default()
        },
    );
    check(&nan, "row 1, column 1 is NaN");
    // an h5ad is not a 10x matrix
    check(
        &shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"),
        "no `/matrix` group",
    );
}

// ---------------------------------------------------------------------------------------
// broken h5ad files

/// A copy of the pbmc RNA file to break.
fn copy_pbmc(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"), &p).unwrap();
    p
}

fn read_err(path: &Path, opts: &ReadOptions) -> String {
    let err = h5ad::read_with(path, opts).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "does not name the file: {msg}"
    );
    msg
}

#[test]
fn broken_h5ad_files_are_errors_that_name_the_file_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let opts = ReadOptions::default();

    let missing = dir.path().join("missing.h5ad");
    assert!(matches!(
        h5ad::read(&missing, None),
        Err(DataError::Io { .. })
    ));
    assert!(read_err(&missing, &opts).contains("not found"));

    let text = dir.path().join("cells.h5ad");
    std::fs::write(&text, "barcode\tcell_type\nA\tT\n").unwrap();
    assert!(read_err(&text, &opts).contains("not a readable HDF5 file"));
    assert!(h5ad::inspect(&text).is_err());
    assert!(h5ad::mods(&text).is_err());

    let bytes = std::fs::read(shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad")).unwrap();
    for cut in [bytes.len() - 100, bytes.len() / 2, 2048, 8] {
        let t = dir.path().join(format!("cut{cut}.h5ad"));
        std::fs::write(&t, &bytes[..cut]).unwrap();
        read_err(&t, &opts);
    }

    let no_x = copy_pbmc(dir.path(), "no_x.h5ad");
    hdf5::File::open_rw(&no_x).unwrap().unlink("X").unwrap();
    assert!(read_err(&no_x, &opts).contains("/X: missing"));
    let no_obs = copy_pbmc(dir.path(), "no_obs.h5ad");
    hdf5::File::open_rw(&no_obs).unwrap().unlink("obs").unwrap();
    assert!(read_err(&no_obs, &opts).contains("/obs: missing"));
    assert!(
        read_err(
            &copy_pbmc(dir.path(), "layer.h5ad"),
            &ReadOptions::layer(Some("counts"))
        )
        .contains("no such layer")
    );

    // NaN in the data: the error gives its row and column
    let nan = copy_pbmc(dir.path(), "nan.h5ad");
    {
        let f = hdf5::File::open_rw(&nan).unwrap();
        let ds = f.dataset("X/data").unwrap();
        let mut data = ds.read_raw::<f32>().unwrap();
        let indptr = f.dataset("X/indptr").unwrap().read_raw::<i32>().unwrap();
        let indices = f.dataset("X/indices").unwrap().read_raw::<i32>().unwrap();
        let k = indptr[3] as usize; // first entry of row 3
        data[k] = f32::NAN;
        ds.write_raw(&data).unwrap();
        let msg = read_err(&nan, &opts);
        assert!(
            msg.contains(&format!("row 3, column {} is NaN", indices[k])),
            "{msg}"
        );
        let _ = f;
    }

    // duplicated barcodes
    let dup = copy_pbmc(dir.path(), "dup.h5ad");
    {
        let f = hdf5::File::open_rw(&dup).unwrap();
        let ds = f.dataset("obs/_index").unwrap();
        let mut names = ds.read_raw::<VarLenUnicode>().unwrap();
        names[7] = names[2].clone();
        ds.write_raw(&names).unwrap();
        let first = names[2].as_str().to_string();
        let msg = read_err(&dup, &opts);
        assert!(
            msg.contains(&format!("`{first}` occurs twice (cells 3 and 8)")),
            "{msg}"
        );
    }

    // an index outside the matrix
    let oob = copy_pbmc(dir.path(), "oob.h5ad");
    {
        let f = hdf5::File::open_rw(&oob).unwrap();
        let ds = f.dataset("X/indices").unwrap();
        let mut indices = ds.read_raw::<i32>().unwrap();
        indices[0] = 1000;
        ds.write_raw(&indices).unwrap();
        assert!(read_err(&oob, &opts).contains("outside the 200 columns"));
    }

    // non-integer counts where counts are required
    let frac = copy_pbmc(dir.path(), "frac.h5ad");
    {
        let f = hdf5::File::open_rw(&frac).unwrap();
        let ds = f.dataset("X/data").unwrap();
        let mut data = ds.read_raw::<f32>().unwrap();
        data[0] = 0.5;
        ds.write_raw(&data).unwrap();
        let msg = read_err(&frac, &ReadOptions::counts(None));
        assert!(
            msg.contains("is 0.5, not a non-negative integer count"),
            "{msg}"
        );
        // only when they are required
        assert!(h5ad::read(&frac, None).is_ok());
    }

    // an empty matrix: written by us (0 genes), refused on reading
    let empty = dir.path().join("empty.h5ad");
    let m = CsrMatrix::<f32>::zeros(2, 0);
    h5ad::write(
        &empty,
        Some(Matrix::from(&m)),
        &CellTable::new(s(&["a", "b"])),
        &[],
        &[],
    )
    .unwrap();
    let msg = read_err(&empty, &opts);
    assert!(msg.contains("empty") && msg.contains("0 features"), "{msg}");

    // a folder
    let err = h5ad::read(dir.path(), None).unwrap_err().to_string();
    assert!(err.contains("folder"), "{err}");
}

/// `var` columns beside the names: the competition's GEX files carry Ensembl `gene_ids`.
#[test]
fn var_columns_read_by_name() {
    let path = bmmc("predict_modality", "train_mod1");
    let ids = h5ad::read_var_column(&path, "gene_ids", &crossomics_limits::Limits::default())
        .unwrap()
        .unwrap();
    let m = h5ad::read_with(&path, &ReadOptions::counts(Some("counts"))).unwrap();
    assert_eq!(ids.len(), m.features.len());
    assert!(ids.iter().all(|i| i.starts_with("ENSG")), "{:?}", &ids[..3]);
    assert_ne!(ids, m.features, "ids are not the symbols");
    assert_eq!(
        h5ad::read_var_column(
            &path,
            "no_such_column",
            &crossomics_limits::Limits::default()
        )
        .unwrap(),
        None
    );
    let e = h5ad::read_var_column(
        Path::new("/nonexistent/x.h5ad"),
        "gene_ids",
        &crossomics_limits::Limits::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("x.h5ad"), "{e}");
}
