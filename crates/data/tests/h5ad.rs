//! AnnData / MuData readers on the real files that Python anndata and mudata wrote
//! (`data/` in the repository), as dataset configs, and on broken input.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{TenxSpec, plain_data, s, shared, write_tenx};
use crossomics_data::config::DatasetConfig;
use crossomics_data::dataset::select_rows;
use crossomics_data::h5ad::{self, Matrix, ReadOptions};
use crossomics_data::pair::{PairingConfig, SingleModality};
use crossomics_data::{CellTable, DataError, PairedDataset};
use hdf5::types::VarLenUnicode;
use nalgebra_sparse::CsrMatrix;

const BMMC: &str = "bmmc_multiome_starter/h5ad";
const STEM: &str = "openproblems_bmmc_multiome_starter";

fn bmmc(task: &str, part: &str) -> PathBuf {
    shared(&format!("{BMMC}/{task}/{STEM}.{part}.h5ad"))
}

/// The counts (layer `counts`) of a competition file.
fn bmmc_counts(task: &str, part: &str) -> SingleModality<String> {
    h5ad::read_with(&bmmc(task, part), &ReadOptions::counts(Some("counts"))).unwrap()
}

fn row_of(d: &PairedDataset) -> HashMap<&str, usize> {
    d.cells
        .barcodes()
        .iter()
        .enumerate()
        .map(|(i, b)| (b.as_str(), i))
        .collect()
}

/// The rows (in `rows`, from [`row_of`]) of every cell of `cells`.
fn rows_of(rows: &HashMap<&str, usize>, cells: &CellTable) -> Vec<usize> {
    cells.barcodes().iter().map(|b| rows[b.as_str()]).collect()
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
    let p = plain_data("bmmc_multiome_starter");
    let rna = bmmc_counts("common", "output_rna");
    assert_eq!(rna.cells.barcodes(), p.cells.barcodes());
    assert_eq!(rna.matrix, p.rna);
    assert_eq!(rna.features, p.genes);
    for col in ["cell_type", "batch", "is_train"] {
        assert_eq!(rna.cells.column(col), p.cells.column(col), "{col}");
    }
    // pseudotime is NaN for the training donor, numbers for the other
    let pseudotime = |cells: &CellTable| -> Vec<f64> {
        cells
            .column("pseudotime_order_GEX")
            .unwrap()
            .iter()
            .map(|v| v.parse().unwrap())
            .collect()
    };
    let (h5, tsv) = (pseudotime(&rna.cells), pseudotime(&p.cells));
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

    let atac = h5ad::parse_peaks(bmmc_counts("common", "output_mod2")).unwrap();
    assert_eq!(atac.cells.barcodes(), p.cells.barcodes());
    assert_eq!(atac.matrix, p.atac);
    assert_eq!(atac.features, p.peaks);
}

#[test]
fn bmmc_predict_modality_splits_are_rows_of_the_plain_counts() {
    let p = plain_data("bmmc_multiome_starter");
    let rows = row_of(&p);
    let mut seen = 0;
    for (part, batch, n) in [("train", "s1d1", 221), ("test", "s1d2", 279)] {
        let mod1 = bmmc_counts("predict_modality", &format!("{part}_mod1"));
        let mod2 = bmmc_counts("predict_modality", &format!("{part}_mod2"));
        assert_eq!(mod1.cells.len(), n);
        assert_eq!(mod1.cells.barcodes(), mod2.cells.barcodes());
        let idx = rows_of(&rows, &mod1.cells);
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
    let p = plain_data("bmmc_multiome_starter");
    let rows = row_of(&p);
    for part in ["train", "test"] {
        let mod1 = bmmc_counts("match_modality", &format!("{part}_mod1"));
        let mod2 = bmmc_counts("match_modality", &format!("{part}_mod2"));
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
        let idx = rows_of(&rows, &mod1.cells);
        assert_eq!(
            select_rows(&mod2.matrix, &j),
            select_rows(&p.atac, &idx),
            "{part}"
        );
    }
}

#[test]
fn bmmc_joint_embedding_files() {
    let p = plain_data("bmmc_multiome_starter");
    let mod1 = bmmc_counts("joint_embedding", "mod1");
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
    let p = plain_data("pbmc_multiome_100");
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
    let p = plain_data("scicar_a549");
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
// broken h5ad files

/// A copy of the pbmc RNA file to break.
fn copy_pbmc(dir: &Path, name: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::copy(shared("pbmc_multiome_100/10xpbmc_rna_subset.h5ad"), &p).unwrap();
    p
}

/// A copy of the pbmc RNA file, broken by `change` (given the copy open for writing).
fn broken_pbmc(dir: &Path, name: &str, change: impl FnOnce(&hdf5::File)) -> PathBuf {
    let p = copy_pbmc(dir, name);
    change(&hdf5::File::open_rw(&p).unwrap());
    p
}

/// Dataset `name` of `f` read, changed by `change` and written back.
fn edit<T: hdf5::H5Type>(f: &hdf5::File, name: &str, change: impl FnOnce(&mut Vec<T>)) {
    let ds = f.dataset(name).unwrap();
    let mut values = ds.read_raw::<T>().unwrap();
    change(&mut values);
    ds.write_raw(&values).unwrap();
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

    let no_x = broken_pbmc(dir.path(), "no_x.h5ad", |f| f.unlink("X").unwrap());
    assert!(read_err(&no_x, &opts).contains("/X: missing"));
    let no_obs = broken_pbmc(dir.path(), "no_obs.h5ad", |f| f.unlink("obs").unwrap());
    assert!(read_err(&no_obs, &opts).contains("/obs: missing"));
    assert!(
        read_err(
            &copy_pbmc(dir.path(), "layer.h5ad"),
            &ReadOptions::layer(Some("counts"))
        )
        .contains("no such layer")
    );

    // NaN in the data: the error gives its row and column
    let mut want = String::new();
    let nan = broken_pbmc(dir.path(), "nan.h5ad", |f| {
        let indptr = f.dataset("X/indptr").unwrap().read_raw::<i32>().unwrap();
        let indices = f.dataset("X/indices").unwrap().read_raw::<i32>().unwrap();
        let k = indptr[3] as usize; // first entry of row 3
        edit(f, "X/data", |data: &mut Vec<f32>| data[k] = f32::NAN);
        want = format!("row 3, column {} is NaN", indices[k]);
    });
    let msg = read_err(&nan, &opts);
    assert!(msg.contains(&want), "{msg}");

    // duplicated barcodes
    let mut first = String::new();
    let dup = broken_pbmc(dir.path(), "dup.h5ad", |f| {
        edit(f, "obs/_index", |names: &mut Vec<VarLenUnicode>| {
            names[7] = names[2].clone();
            first = names[2].as_str().to_string();
        });
    });
    let msg = read_err(&dup, &opts);
    assert!(
        msg.contains(&format!("`{first}` occurs twice (cells 3 and 8)")),
        "{msg}"
    );

    // an index outside the matrix
    let oob = broken_pbmc(dir.path(), "oob.h5ad", |f| {
        edit(f, "X/indices", |indices: &mut Vec<i32>| indices[0] = 1000);
    });
    assert!(read_err(&oob, &opts).contains("outside the 200 columns"));

    // non-integer counts where counts are required
    let frac = broken_pbmc(dir.path(), "frac.h5ad", |f| {
        edit(f, "X/data", |data: &mut Vec<f32>| data[0] = 0.5);
    });
    let msg = read_err(&frac, &ReadOptions::counts(None));
    assert!(
        msg.contains("is 0.5, not a non-negative integer count"),
        "{msg}"
    );
    // only when they are required
    assert!(h5ad::read(&frac, None).is_ok());

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
