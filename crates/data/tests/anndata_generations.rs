//! h5ad files of every anndata generation, each read and compared with what Python
//! anndata reads from it (`<file>.expected.json`, written by `scripts/anndata_fixtures.py`
//! with anndata 0.12.19 / h5py 3.16.0, an implementation independent of ours).
//!
//! `tests/fixtures/anndata/`: `v0.5.0/` (scanpy's `pbmc68k_reduced`: compound `obs` /
//! `var`, categories in `uns`, dense gzip `X`), `v0.7.0/` and `v0.7.8/` (LZF everywhere,
//! `__categories`), `v0.11.4/` (no `X`): anndata's own archive (PROVENANCE.md there);
//! `written/`: LZF and gzip + shuffle files of the modern layout, the anndata 0.6 layout
//! (compound records with variable-length strings, `h5sparse` CSR / CSC `X`), and files
//! compressed with filters this reader refuses.

use std::path::{Path, PathBuf};

use crossomics_data::h5ad::{self, ReadOptions};
use crossomics_data::pair::SingleModality;
use crossomics_limits::Limits;
use serde_json::Value;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/anndata")
        .join(rel)
}

fn expected(h5ad: &Path) -> Value {
    let name = h5ad.file_name().unwrap().to_string_lossy();
    let path = h5ad.with_file_name(name.replace(".h5ad", ".expected.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() <= 1e-6 * want.abs().max(1.0)
}

/// One obs value as our reader gives it (text from the cell table) against Python's:
/// null is missing (empty or NaN), numbers compare as numbers, booleans in any case.
fn same(got: &str, want: &Value) -> bool {
    match want {
        Value::Null => got.is_empty() || got.eq_ignore_ascii_case("nan"),
        Value::String(s) => {
            got == s
                || got.eq_ignore_ascii_case(s)
                || matches!((got.parse::<f64>(), s.parse::<f64>()), (Ok(a), Ok(b)) if close(a, b))
        }
        Value::Number(n) => got
            .parse::<f64>()
            .is_ok_and(|g| close(g, n.as_f64().unwrap())),
        _ => false,
    }
}

/// Dense copy of the matrix read.
fn dense(m: &SingleModality<String>) -> Vec<Vec<f64>> {
    let mut d = vec![vec![0.0; m.matrix.ncols()]; m.matrix.nrows()];
    for (r, c, v) in m.matrix.triplet_iter() {
        d[r][c] = f64::from(*v);
    }
    d
}

/// Reads `rel` and checks it against its expected values: shape, names, `X`, every obs
/// column Python anndata sees.
fn check(rel: &str, opts: &ReadOptions) -> SingleModality<String> {
    let path = fixture(rel);
    let want = expected(&path);
    let m = h5ad::read_with(&path, opts).unwrap_or_else(|e| panic!("{rel}: {e}"));
    assert_eq!(
        m.matrix.nrows(),
        want["n_obs"].as_u64().unwrap() as usize,
        "{rel}"
    );
    assert_eq!(
        m.matrix.ncols(),
        want["n_vars"].as_u64().unwrap() as usize,
        "{rel}"
    );
    assert_eq!(
        m.cells.barcodes(),
        strings(&want["obs_names"]).as_slice(),
        "{rel}"
    );
    assert_eq!(m.features, strings(&want["var_names"]), "{rel}");

    let x = dense(&m);
    let wx = &want["X"];
    if let Some(rows) = wx.get("dense") {
        for (r, row) in rows.as_array().unwrap().iter().enumerate() {
            for (c, v) in row.as_array().unwrap().iter().enumerate() {
                let v = v.as_f64().unwrap();
                assert!(
                    close(x[r][c], v),
                    "{rel}: X[{r}, {c}] = {} for {v}",
                    x[r][c]
                );
            }
        }
    } else {
        for e in wx["entries"].as_array().unwrap() {
            let (r, c) = (
                e[0].as_u64().unwrap() as usize,
                e[1].as_u64().unwrap() as usize,
            );
            let v = e[2].as_f64().unwrap();
            assert!(
                close(x[r][c], v),
                "{rel}: X[{r}, {c}] = {} for {v}",
                x[r][c]
            );
        }
        for (r, s) in wx["row_sums"].as_array().unwrap().iter().enumerate() {
            let got: f64 = x[r].iter().sum();
            let s = s.as_f64().unwrap();
            assert!(
                (got - s).abs() <= 1e-3 * s.abs().max(1.0),
                "{rel}: row {r} sums to {got}, not {s}"
            );
        }
        assert_eq!(
            m.matrix.nnz() as u64,
            wx["nonzeros"].as_u64().unwrap(),
            "{rel}"
        );
    }

    let obs = want["obs"].as_object().unwrap();
    let mut read: Vec<&str> = m.cells.column_names().collect();
    read.sort_unstable();
    let mut python: Vec<&str> = obs.keys().map(String::as_str).collect();
    python.sort_unstable();
    assert_eq!(read, python, "{rel}: obs columns");
    for (name, values) in obs {
        let got = m.cells.column(name).unwrap();
        for (i, (g, w)) in got.iter().zip(values.as_array().unwrap()).enumerate() {
            assert!(same(g, w), "{rel}: obs `{name}` row {i}: `{g}` for {w}");
        }
    }
    m
}

#[test]
fn every_archived_generation_reads_as_python_anndata_reads_it() {
    // anndata 0.5 / 0.6: compound obs / var, categories in uns, dense gzip X
    let m = check("v0.5.0/adata.h5ad", &ReadOptions::default());
    assert_eq!(m.cells.barcodes()[0], "AAAGCCTGGCTAAC-1");
    assert_eq!(m.features[0], "HES4");
    let labels = m.cells.column("bulk_labels").unwrap();
    assert_eq!(labels[0], "CD14+ Monocyte");
    assert_eq!(m.cells.column("phase").unwrap()[1], "S");
    // anndata 0.7.0 and 0.7.8: LZF everywhere, strings too; categories in __categories
    for v in ["v0.7.0", "v0.7.8"] {
        let m = check(&format!("{v}/adata.h5ad"), &ReadOptions::default());
        assert_eq!(m.cells.barcodes()[0], "cell0");
        assert!(m.cells.column("obs_cat").is_some());
    }
    let m = check("v0.7.0/adata.h5ad", &ReadOptions::default());
    assert_eq!(m.cells.column("obs_cat").unwrap()[..3], ["S", "W", "E"]);
    assert_eq!(m.cells.column("cat_ordered").unwrap()[..3], ["w", "K", "d"]);
    // the counts of the 0.7 archives are integers: they read as counts
    h5ad::read_with(&fixture("v0.7.8/adata.h5ad"), &ReadOptions::counts(None)).unwrap();
}

#[test]
fn a_file_without_x_is_inspected_and_its_read_names_what_is_missing() {
    let path = fixture("v0.11.4/adata.h5ad");
    let want = expected(&path);
    assert!(want["X"].is_null());
    let s = h5ad::inspect(&path).unwrap();
    assert_eq!((s.n_obs, s.n_vars, s.x), (10, 20, None));
    let e = h5ad::read(&path, None).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("X"),
        "{e}"
    );
}

#[test]
fn files_written_by_python_read_with_the_exact_values() {
    for rel in [
        "written/lzf.h5ad",
        "written/gzip_shuffle.h5ad",
        "written/lzf_chunks.h5ad",
        "written/v0.6_layout.h5ad",
        "written/v0.6_layout_csc.h5ad",
    ] {
        // all are raw counts
        check(rel, &ReadOptions::counts(None));
    }
    // LZF and gzip + shuffle: the same data
    let lzf = check("written/lzf.h5ad", &ReadOptions::default());
    let gzip = check("written/gzip_shuffle.h5ad", &ReadOptions::default());
    assert_eq!(lzf.matrix, gzip.matrix);
    for c in ["cell_type", "batch", "n_genes", "score", "flag", "count"] {
        assert_eq!(lzf.cells.column(c), gzip.cells.column(c), "{c}");
    }
    // a categorical with a missing value, a nullable integer, a float NaN
    assert_eq!(lzf.cells.column("cell_type").unwrap()[3..5], ["T", ""]);
    assert_eq!(lzf.cells.column("count").unwrap()[..3], ["1", "", "3"]);
    // the 0.6 layout: categories from uns, one category stored as a single value
    let m = check("written/v0.6_layout_csc.h5ad", &ReadOptions::default());
    assert!(
        m.cells
            .column("sample")
            .unwrap()
            .iter()
            .all(|s| s == "pbmc")
    );
    assert_eq!(
        m.cells.column("is_doublet").unwrap()[0].to_lowercase(),
        "true"
    );
}

#[test]
fn old_layouts_are_inspected_and_their_var_columns_read() {
    let s = h5ad::inspect(&fixture("v0.5.0/adata.h5ad")).unwrap();
    assert_eq!((s.n_obs, s.n_vars), (700, 765));
    assert_eq!(s.x.as_deref(), Some("array f32"));
    assert!(s.obs_columns.iter().any(|c| c == "louvain"), "{s:?}");
    assert!(
        s.var_columns.iter().any(|c| c == "highly_variable"),
        "{s:?}"
    );
    let hv = h5ad::read_var_column(
        &fixture("v0.5.0/adata.h5ad"),
        "highly_variable",
        &Limits::default(),
    )
    .unwrap()
    .unwrap();
    assert_eq!(hv.len(), 765);
    assert!(hv.iter().all(|v| v == "True" || v == "False"));
    let s = h5ad::inspect(&fixture("written/v0.6_layout.h5ad")).unwrap();
    assert!(s.x.as_deref().unwrap().starts_with("csr_matrix"), "{s:?}");
    let ids = h5ad::read_var_column(&fixture("written/lzf.h5ad"), "gene_ids", &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(ids[0], "ENSG00000000000");
}

/// What an error must never show: where HDF5 was built (its plugin folder).
fn assert_no_build_path(msg: &str) {
    for leak in [
        "plugin",
        "hdf5-metno-src",
        "/out/lib",
        "/.cargo/",
        "crossomics-ci",
    ] {
        assert!(!msg.contains(leak), "`{leak}` leaked: {msg}");
    }
}

#[test]
fn unsupported_filters_are_refused_by_name() {
    for (file, name) in [
        ("zstd.h5ad", "Zstandard (filter 32015)"),
        ("blosc.h5ad", "Blosc (filter 32001)"),
        ("bitshuffle.h5ad", "bitshuffle (filter 32008)"),
        ("szip.h5ad", "SZIP (filter 4)"),
    ] {
        let path = fixture(&format!("written/{file}"));
        let e = h5ad::read(&path, None).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(e.contains("/X") && e.contains(name), "{e}");
        assert!(e.contains("gzip, LZF and shuffle"), "{e}");
        assert_no_build_path(&e);
        let e = h5ad::inspect(&path).unwrap_err().to_string();
        assert!(e.contains(name), "{e}");
    }
}

/// Offset and size of the first stored chunk of `dataset`.
fn first_chunk(path: &Path, dataset: &str) -> (u64, u64) {
    let f = hdf5::File::open(path).unwrap();
    let info = f.dataset(dataset).unwrap().chunk_info(0).unwrap();
    (info.addr, info.size)
}

#[test]
fn a_corrupt_lzf_chunk_is_refused_before_the_library_decodes_it() {
    let dir = tempfile::tempdir().unwrap();
    for (dataset, what) in [("X/data", "/X/data"), ("obs/_index", "/obs/_index")] {
        let path = dir.path().join("corrupt.h5ad");
        std::fs::copy(fixture("written/lzf_chunks.h5ad"), &path).unwrap();
        let (addr, size) = first_chunk(&path, dataset);
        let mut bytes = std::fs::read(&path).unwrap();
        // a back reference before the start of the output
        bytes[addr as usize] = 0xff;
        bytes[addr as usize + 1] = 0xff;
        bytes[addr as usize + 2] = 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let e = h5ad::read(&path, None).unwrap_err().to_string();
        assert!(
            e.contains(&path.display().to_string()) && e.contains(what),
            "{e}"
        );
        assert!(e.contains("LZF chunk") && e.contains("corrupt"), "{e}");
        assert_no_build_path(&e);
        assert!(size > 3);
    }
}

#[test]
fn old_layouts_respect_the_limits() {
    let path = fixture("written/v0.6_layout.h5ad");
    let tight = |f: &dyn Fn(&mut Limits)| {
        let mut limits = Limits::default();
        f(&mut limits);
        let opts = ReadOptions {
            limits,
            ..ReadOptions::default()
        };
        h5ad::read_with(&path, &opts).unwrap_err().to_string()
    };
    let e = tight(&|l| l.max_cells = 10);
    assert!(
        e.contains(&path.display().to_string()) && e.contains("max_cells"),
        "{e}"
    );
    let e = tight(&|l| l.max_obs_columns = 1);
    assert!(e.contains("/obs") && e.contains("max_obs_columns"), "{e}");
    // 23 records of 32 bytes: over a limit of 500 bytes
    let e = tight(&|l| l.max_dense_values = 500);
    assert!(e.contains("/obs") || e.contains("/X"), "{e}");
    assert!(e.contains("max_dense_values"), "{e}");
}

/// The vetting reads the stored lengths of variable-length strings raw before the library
/// allocates for them; in LZF chunks too (anndata 0.7 compressed its strings with LZF).
#[test]
fn a_forged_string_length_in_an_lzf_chunk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("forged.h5ad");
    std::fs::copy(fixture("written/lzf_chunks.h5ad"), &path).unwrap();
    let (addr, _) = first_chunk(&path, "obs/_index");
    let at = addr as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    // the chunk's LZF stream opens with the first string's 4-byte length ("AAAC0000-1":
    // 10) as a literal run of 2 bytes (control byte 1) and a back reference repeating
    // the last byte 3 times (control byte 32: length 1 + 2, distance 0 + 1)
    assert_eq!(&bytes[at..at + 4], &[1, 10, 0, 32]);
    // now the literal is f0 ff, repeated to f0 ff ff ff: a length of 4 GiB - 16
    bytes[at + 1] = 0xf0;
    bytes[at + 2] = 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let e = h5ad::read(&path, None).unwrap_err().to_string();
    assert!(
        e.contains(&path.display().to_string()) && e.contains("/obs/_index"),
        "{e}"
    );
    assert!(e.contains("max_hdf5_block_bytes"), "{e}");
}

/// Bytes of the 0.5 / 0.6 layouts changed at random (in the records' chunks, their
/// strings' heap, anywhere): every read ends in a value or an error, none in a panic.
#[test]
fn damaged_old_layouts_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for rel in ["written/v0.6_layout.h5ad", "written/v0.6_layout_csc.h5ad"] {
        let original = std::fs::read(fixture(rel)).unwrap();
        let (addr, size) = first_chunk(&fixture(rel), "obs");
        let heaps: Vec<usize> = original
            .windows(4)
            .enumerate()
            .filter(|(_, w)| *w == b"GCOL")
            .map(|(i, _)| i)
            .collect();
        for round in 0..240 {
            let mut bytes = original.clone();
            for _ in 0..1 + next() % 4 {
                let at = match round % 3 {
                    0 => addr as usize + (next() % size) as usize,
                    1 if !heaps.is_empty() => {
                        let heap = heaps[(next() % heaps.len() as u64) as usize];
                        (heap + (next() % 512) as usize).min(bytes.len() - 1)
                    }
                    _ => (next() % bytes.len() as u64) as usize,
                };
                bytes[at] = next() as u8;
            }
            let path = dir.path().join("damaged.h5ad");
            std::fs::write(&path, &bytes).unwrap();
            if let Err(e) = h5ad::read(&path, None) {
                let e = e.to_string();
                assert!(
                    !e.contains("failed on this file"),
                    "{rel} round {round}: {e}"
                );
            }
        }
    }
}
