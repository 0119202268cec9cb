//! A user's own data, as it comes: no cell annotation at all (a fresh 10x output), in a
//! 10x `.h5`, an `.h5mu` that Python mudata wrote, and a plain-layout folder; ATAC as a
//! fragments file. Integration and translation run to completion from the CLI, report
//! the label-free metrics, and write the latent's Leiden clusters for the user to
//! annotate; `embed` and `translate` do the same on new data.

mod common;

use std::path::{Path, PathBuf};

use common::{crossomics, text};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The bundled sample's counts with barcodes only: no cell type, no batch.
fn unlabelled_sample() -> crossomics_data::PairedDataset {
    let mut d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    d.cells = crossomics_data::CellTable::new(d.cells.barcodes().to_vec());
    d
}

/// The sample as a plain-layout folder whose `cells.tsv` holds the barcodes alone.
fn write_plain(dir: &Path, d: &crossomics_data::PairedDataset) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, m) in [("rna_counts.mtx", &d.rna), ("atac_counts.mtx", &d.atac)] {
        let f = std::fs::File::create(dir.join(name)).unwrap();
        crossomics_data::mtx::write(m, std::io::BufWriter::new(f)).unwrap();
    }
    std::fs::write(dir.join("genes.tsv"), d.genes.join("\n") + "\n").unwrap();
    let peaks: Vec<String> = d.peaks.iter().map(ToString::to_string).collect();
    std::fs::write(dir.join("peaks.tsv"), peaks.join("\n") + "\n").unwrap();
    let mut cells = String::from("barcode\n");
    for b in d.cells.barcodes() {
        cells.push_str(b);
        cells.push('\n');
    }
    std::fs::write(dir.join("cells.tsv"), cells).unwrap();
}

/// The same unlabelled cells in three containers: (name, `[dataset]` TOML, data path).
fn inputs(dir: &Path) -> Vec<(&'static str, String, PathBuf)> {
    let d = unlabelled_sample();
    let h5 = dir.join("filtered_feature_bc_matrix.h5");
    common::write_tenx_h5(&h5, &d);
    let h5mu = dir.join("bmmc_unlabelled.h5mu");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/unlabelled/bmmc_unlabelled.h5mu"),
        &h5mu,
    )
    .unwrap();
    let plain = dir.join("plain");
    write_plain(&plain, &d);
    vec![
        (
            "tenx_h5",
            "format = \"tenx_h5\"\npath = \"filtered_feature_bc_matrix.h5\"".into(),
            h5,
        ),
        (
            "h5mu",
            "format = \"h5mu\"\npath = \"bmmc_unlabelled.h5mu\"".into(),
            h5mu,
        ),
        (
            "plain",
            "format = \"plain\"\npath = \"plain\"".into(),
            plain,
        ),
    ]
}

const STEPS: &str = "[[preprocessing.steps]]\nstep = \"filter_peaks\"\nmin_cells = 3\n\
    [[preprocessing.steps]]\nstep = \"normalize_rna\"\n\
    [[preprocessing.steps]]\nstep = \"rna_pca\"\nn_components = 20\n\
    [[preprocessing.steps]]\nstep = \"binarize_atac\"\n";

fn integration_config(name: &str, dataset: &str, plots: bool) -> String {
    format!(
        "name = \"{name}\"\nseed = 0\n[dataset]\n{dataset}\n{STEPS}\
         [model]\nkind = \"sailerx\"\nlatent_dim = 8\n\
         [training]\nepochs = 3\nwarmup_epochs = 1\nbatch_size = 128\n\
         [output]\nplots = {plots}\n"
    )
}

fn translation_config(name: &str, dataset: &str) -> String {
    format!(
        "name = \"{name}\"\nseed = 0\ntask = \"translation\"\n[dataset]\n{dataset}\n{STEPS}\
         [model]\nkind = \"babel\"\nlatent_dim = 8\nrna_hidden = [16]\n[model.chrom_split]\nhidden = [16, 8]\n\
         [training]\nepochs = 3\nwarmup_epochs = 0\nbatch_size = 128\nlr = 0.01\n\
         [output]\nplots = false\n"
    )
}

/// The one finished run folder of experiment `name` under `out`.
fn run_dir(out: &Path, name: &str) -> PathBuf {
    let runs: Vec<PathBuf> = std::fs::read_dir(out.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    runs[0].clone()
}

/// `obs[column]` of an h5ad as text (a categorical or a string array).
fn obs_column(path: &Path, column: &str) -> Vec<String> {
    use hdf5::types::VarLenUnicode;
    let f = hdf5::File::open(path).unwrap();
    let obs = f.group("obs").unwrap();
    assert!(
        obs.link_exists(column),
        "{}: no obs[{column:?}]",
        path.display()
    );
    if let Ok(g) = obs.group(column) {
        let cats: Vec<VarLenUnicode> = g.dataset("categories").unwrap().read_raw().unwrap();
        let codes: Vec<i64> = g.dataset("codes").unwrap().read_raw().unwrap();
        codes
            .iter()
            .map(|&c| cats[usize::try_from(c).unwrap()].to_string())
            .collect()
    } else {
        let v: Vec<VarLenUnicode> = obs.dataset(column).unwrap().read_raw().unwrap();
        v.iter().map(ToString::to_string).collect()
    }
}

/// The metrics of a run's `results.csv`: (method, [(metric, value)]).
fn results(run: &Path) -> Vec<(String, Vec<(String, String)>)> {
    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<String> = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    lines
        .map(|l| {
            let v: Vec<&str> = l.split(',').collect();
            let method = v[0].to_string();
            let metrics = header
                .iter()
                .zip(&v)
                .map(|(h, v)| (h.clone(), v.to_string()))
                .collect();
            (method, metrics)
        })
        .collect()
}

fn metric(row: &[(String, String)], name: &str) -> Option<f64> {
    row.iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
}

#[test]
fn unlabelled_data_in_every_container_runs_integration_and_translation() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    for (i, (what, dataset, data)) in inputs(dir).into_iter().enumerate() {
        // integration: label-free metrics, Leiden clusters in embedding.h5ad
        let name = format!("own_{what}");
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, integration_config(&name, &dataset, i == 0)).unwrap();
        let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], dir);
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert!(text(&o).contains("no labels"), "{what}: {}", text(&o));
        let run = run_dir(&dir.join("out"), &name);
        let rows = results(&run);
        let (method, model_row) = &rows[0];
        assert_eq!(method, "sailerx", "{what}");
        assert!(
            rows.iter()
                .all(|(_, r)| metric(r, "knn_accuracy").is_none()),
            "{what}: a label metric without labels: {rows:?}"
        );
        let n_clusters = metric(model_row, "leiden_clusters").unwrap();
        let recon = metric(model_row, "test_recon_atac").unwrap();
        assert!(recon.is_finite() && recon > 0.0, "{what}: {model_row:?}");
        // every input baseline row has its own clusters
        assert_eq!(rows.len(), 4, "{what}: {rows:?}");
        assert!(
            rows.iter()
                .all(|(_, r)| metric(r, "leiden_clusters").is_some())
        );
        let leiden = obs_column(&run.join("embedding.h5ad"), "leiden");
        assert_eq!(leiden.len(), 500, "{what}");
        let distinct: std::collections::BTreeSet<&String> = leiden.iter().collect();
        assert_eq!(distinct.len() as f64, n_clusters, "{what}");
        assert!(n_clusters >= 2.0, "{what}: {n_clusters}");
        if i == 0 {
            assert!(run.join("umap_leiden.png").is_file());
        }

        // embedding new data with the saved model: clusters too
        let emb = dir.join(format!("{what}_embedding.h5ad"));
        let o = crossomics(
            &[
                "embed",
                run.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--out",
                emb.to_str().unwrap(),
            ],
            dir,
        );
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert_eq!(obs_column(&emb, "leiden").len(), 500, "{what}");

        // translation: every prediction metric, predictions with the latent's clusters
        let name = format!("own_{what}_translation");
        let cfg = dir.join(format!("{name}.toml"));
        std::fs::write(&cfg, translation_config(&name, &dataset)).unwrap();
        let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], dir);
        assert!(o.status.success(), "{what}: {}", text(&o));
        let run = run_dir(&dir.join("out"), &name);
        let rows = results(&run);
        assert_eq!(rows.len(), 2, "{what}: {rows:?}");
        assert!(
            metric(&rows[0].1, "auroc").unwrap() > 0.5,
            "{what}: {rows:?}"
        );
        assert!(metric(&rows[1].1, "pearson").unwrap().is_finite());
        for d in ["rna_to_atac", "atac_to_rna"] {
            let p = run.join(format!("prediction_{d}.h5ad"));
            assert_eq!(obs_column(&p, "leiden").len(), 75, "{what} {d}");
        }
        let out = dir.join(format!("{what}_prediction.h5ad"));
        let o = crossomics(
            &[
                "translate",
                run.to_str().unwrap(),
                "--data",
                data.to_str().unwrap(),
                "--direction",
                "rna_to_atac",
                "--out",
                out.to_str().unwrap(),
            ],
            dir,
        );
        assert!(o.status.success(), "{what}: {}", text(&o));
        assert_eq!(obs_column(&out, "leiden").len(), 500, "{what}");
    }
}

/// A label column named in the config that the data lacks is still an error.
#[test]
fn a_label_column_the_data_lacks_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let d = unlabelled_sample();
    write_plain(&tmp.path().join("plain"), &d);
    let cfg = integration_config("named", "format = \"plain\"\npath = \"plain\"", false)
        + "[evaluation]\nlabel_column = \"cell_type\"\n";
    std::fs::write(tmp.path().join("c.toml"), cfg).unwrap();
    let o = crossomics(&["run", "c.toml", "--out", "out"], tmp.path());
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("evaluation.label_column") && t.contains("cell_type"),
        "{t}"
    );
}

fn fragments_fixture(name: &str) -> PathBuf {
    repo()
        .join("crates/data/tests/fixtures/fragments")
        .join(name)
}

/// A fragments file of the sample's cells (crates/data/tests/fixtures/fragments, written
/// by scripts/fragments_fixture.py) counted into a model's peaks: `translate` and `embed`
/// with `--fragments`, and `format = "fragments"` for `crossomics run`.
#[test]
fn a_fragments_file_translates_embeds_and_trains_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = unlabelled_sample();
    common::write_tenx_h5(&dir.join("matrix.h5"), &d);
    let fragments = fragments_fixture("fragments.tsv.gz");
    let barcodes = fragments_fixture("barcodes.tsv");
    let n_barcodes = std::fs::read_to_string(&barcodes).unwrap().lines().count();

    // a dataset of RNA from the 10x .h5 and ATAC counted from the fragments
    let dataset = format!(
        "format = \"fragments\"\nrna = \"matrix.h5\"\nfragments = {:?}\npeaks = {:?}",
        fragments.display().to_string(),
        fragments_fixture("peaks.bed").display().to_string()
    );
    let cfg = dir.join("frag.toml");
    std::fs::write(&cfg, translation_config("frag", &dataset)).unwrap();
    let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], dir);
    assert!(o.status.success(), "{}", text(&o));
    let run = run_dir(&dir.join("out"), "frag");
    let rows = results(&run);
    assert!(metric(&rows[0].1, "auroc").unwrap() > 0.5, "{rows:?}");

    // new cells as fragments, counted into the saved model's own peaks
    let out = dir.join("from_fragments.h5ad");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "translate".into(),
            run.display().to_string(),
            "--fragments".into(),
            fragments.display().to_string(),
            "--barcodes".into(),
            barcodes.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        v.extend(extra.iter().map(ToString::to_string));
        v
    };
    let run_args = |v: Vec<String>| {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        crossomics(&refs, dir)
    };
    let o = run_args(args(&[]));
    assert!(o.status.success(), "{}", text(&o));
    let t = text(&o);
    assert!(t.contains("counted") && t.contains("coverage"), "{t}");
    // the model's peaks were counted directly: full coverage
    let cov = t
        .lines()
        .find(|l| l.starts_with("coverage:"))
        .unwrap()
        .to_string();
    assert!(cov.contains("(100.0%)"), "{cov}");
    let x = crossomics_data::h5ad::read_with(
        &out,
        &crossomics_data::h5ad::ReadOptions {
            layer: None,
            require_counts: false,
            limits: crossomics_limits::Limits::default(),
        },
    )
    .unwrap();
    assert_eq!(x.matrix.nrows(), n_barcodes);
    assert_eq!(x.cells.barcodes()[0], "AGAATCGAGAAAGGAA-1-s1d1");
    assert!(x.matrix.values().iter().all(|v| v.is_finite()));
    assert_eq!(obs_column(&out, "leiden").len(), n_barcodes);

    // fragments are ATAC: the other direction is refused by name
    let o = run_args(args(&["--direction", "rna_to_atac"]));
    assert!(!o.status.success());
    assert!(text(&o).contains("--fragments"), "{}", text(&o));
    // a missing --barcodes is a usage error
    let o = crossomics(
        &[
            "translate",
            run.to_str().unwrap(),
            "--fragments",
            fragments.to_str().unwrap(),
            "--out",
            "x.h5ad",
        ],
        dir,
    );
    assert!(
        !o.status.success() && text(&o).contains("--barcodes"),
        "{}",
        text(&o)
    );
    assert!(!dir.join("x.h5ad").exists());

    // SAILERX integration trained on the 10x .h5, embedding cells from their fragments
    let cfg = dir.join("int.toml");
    std::fs::write(
        &cfg,
        // with a cell QC on genes, which cells given by their ATAC alone must not fail
        integration_config(
            "int",
            "format = \"tenx_h5\"\npath = \"matrix.h5\"\n\
             [[preprocessing.steps]]\nstep = \"cell_qc\"\nmin_genes = 10",
            false,
        ),
    )
    .unwrap();
    let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], dir);
    assert!(o.status.success(), "{}", text(&o));
    let run = run_dir(&dir.join("out"), "int");
    let emb = dir.join("frag_embedding.h5ad");
    let o = crossomics(
        &[
            "embed",
            run.to_str().unwrap(),
            "--fragments",
            fragments.to_str().unwrap(),
            "--barcodes",
            barcodes.to_str().unwrap(),
            "--out",
            emb.to_str().unwrap(),
        ],
        dir,
    );
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(obs_column(&emb, "leiden").len(), n_barcodes);
    // counted into the model's own peaks: every one found; no RNA: no gene found
    let t = text(&o);
    let cov: Vec<&str> = t
        .lines()
        .find(|l| l.starts_with("coverage:"))
        .unwrap()
        .split_whitespace()
        .collect();
    // coverage: G of GT model genes and P of PT model peaks found in ...
    assert_eq!(cov[1], "0", "{t}");
    assert_eq!(cov[7], cov[9], "{t}");
}
