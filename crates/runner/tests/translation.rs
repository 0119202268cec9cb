//! Cross-modal prediction end to end: `crossomics run` of every translator on the bundled
//! BMMC sample with the NeurIPS 2021 split, scored against the competition's own test
//! files, then `crossomics translate` of those files with the saved models.

mod common;

use std::path::{Path, PathBuf};

use common::{crossomics, text};

use crossomics_data::h5ad::{self, ReadOptions};
use ndarray::Array2;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn competition(file: &str) -> PathBuf {
    root().join(format!(
        "data/bmmc_multiome_starter/h5ad/predict_modality/openproblems_bmmc_multiome_starter.{file}.h5ad"
    ))
}

/// An h5ad's X as a dense array with its obs and var names.
fn read(path: &Path, layer: Option<&str>) -> (Array2<f32>, Vec<String>, Vec<String>) {
    let m = h5ad::read_with(
        path,
        &ReadOptions {
            layer: layer.map(str::to_string),
            require_counts: false,
            limits: crossomics_limits::Limits::default(),
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut x = Array2::<f32>::zeros((m.matrix.nrows(), m.matrix.ncols()));
    for (i, j, v) in m.matrix.triplet_iter() {
        x[[i, j]] = *v;
    }
    (x, m.cells.barcodes().to_vec(), m.features)
}

/// Rows of `x` (named `names`) in the order of `wanted`.
fn reorder(x: &Array2<f32>, names: &[String], wanted: &[String]) -> Array2<f32> {
    let pos: Vec<usize> = wanted
        .iter()
        .map(|w| {
            names
                .iter()
                .position(|n| n == w)
                .unwrap_or_else(|| panic!("{w} missing"))
        })
        .collect();
    x.select(ndarray::Axis(0), &pos)
}

fn run_dir(out: &Path, name: &str) -> PathBuf {
    let dirs: Vec<PathBuf> = std::fs::read_dir(out.join(name))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metrics.json").is_file())
        .collect();
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs[0].clone()
}

fn metric(run: &Path, method: &str, name: &str) -> f64 {
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let row = rows
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["method"] == method)
        .unwrap_or_else(|| panic!("no row {method} in {rows}"));
    row["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m[0] == name)
        .unwrap_or_else(|| panic!("no metric {name}"))[1]
        .as_f64()
        .unwrap()
}

#[test]
fn every_translator_runs_on_the_competition_split_and_translates_its_files() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/translation_bmmc.toml");
    // the competition's truth for the test donor: binarized peaks in X, GEX counts
    let (atac_truth, truth_cells, truth_peaks) = read(&competition("test_mod2"), None);
    assert_eq!(atac_truth.dim(), (279, 600));
    for (kind, model) in [
        ("ridge", "{ kind = \"ridge\" }"),
        ("knn_regression", "{ kind = \"knn_regression\" }"),
        ("babel", "{ kind = \"babel\", latent_dim = 8 }"),
        (
            "sailerx",
            "{ kind = \"sailerx\", latent_dim = 8, alignment_weight = 100.0, recon_weight = 1.0 }",
        ),
    ] {
        let name = format!("tr_{kind}");
        let set_model = format!("model={model}");
        let set_name = format!("name={name}");
        let o = crossomics(
            &[
                "run",
                cfg.to_str().unwrap(),
                "--set",
                &set_model,
                "--set",
                &set_name,
                "--set",
                "training.epochs=3",
                "--set",
                "training.warmup_epochs=1",
                "--set",
                "training.batch_size=64",
                "--set",
                "output.plots=false",
                "--out",
                "out",
            ],
            tmp.path(),
        );
        assert!(o.status.success(), "{kind}: {}", text(&o));
        let run = run_dir(&tmp.path().join("out"), &name);
        for f in [
            "prediction_rna_to_atac.h5ad",
            "prediction_atac_to_rna.h5ad",
            "preprocessing.json",
            "model.json",
            "split.json",
            "metrics.json",
        ] {
            assert!(run.join(f).is_file(), "{kind}: no {f}");
        }
        // the run's RNA -> ATAC prediction of the s1d2 cells, scored against the
        // competition's own test file: the same AUROC and RMSE as the run reports
        let (pred, cells, peaks) = read(&run.join("prediction_rna_to_atac.h5ad"), None);
        assert_eq!(
            pred.dim(),
            (279, 600),
            "{kind}: the test donor's cells x all peaks"
        );
        assert!(
            pred.iter().all(|p| (0.0..=1.0).contains(p)),
            "{kind}: probabilities"
        );
        assert_eq!(peaks.len(), truth_peaks.len());
        let truth = reorder(&atac_truth, &truth_cells, &cells);
        let auroc = crossomics_metrics::prediction::auroc(
            truth.view(),
            pred.view(),
            crossomics_metrics::prediction::Along::Flattened,
        )
        .unwrap()
        .value;
        let rmse = crossomics_metrics::prediction::rmse(truth.view(), pred.view()).unwrap();
        let method = format!("{kind} RNA -> ATAC");
        assert!(
            (metric(&run, &method, "auroc") - auroc).abs() < 1e-9,
            "{kind}"
        );
        assert!(
            (metric(&run, &method, "rmse_atac") - rmse).abs() < 1e-6,
            "{kind}"
        );
        assert!(auroc > 0.6, "{kind}: AUROC {auroc} barely above chance");
        let (rna_pred, _, genes) = read(&run.join("prediction_atac_to_rna.h5ad"), None);
        assert_eq!((rna_pred.nrows(), genes.len()), (279, 600));
        assert!(
            metric(&run, &format!("{kind} ATAC -> RNA"), "pearson") > 0.2,
            "{kind}"
        );

        // the saved model applied to the competition's files (raw counts in layers/counts)
        // gives the run's own predictions: same cells, same preprocessing, same model
        for (file, direction, own) in [
            ("test_mod1", "rna_to_atac", "prediction_rna_to_atac.h5ad"),
            ("test_mod2", "atac_to_rna", "prediction_atac_to_rna.h5ad"),
        ] {
            let out = tmp.path().join(format!("{kind}_{direction}.h5ad"));
            let o = crossomics(
                &[
                    "translate",
                    run.to_str().unwrap(),
                    "--data",
                    competition(file).to_str().unwrap(),
                    "--layer",
                    "counts",
                    "--direction",
                    direction,
                    "--out",
                    out.to_str().unwrap(),
                ],
                tmp.path(),
            );
            assert!(o.status.success(), "{kind} {direction}: {}", text(&o));
            assert!(
                text(&o).contains("coverage: 600 of the model's 600"),
                "{}",
                text(&o)
            );
            let (x, cells, _) = read(&out, None);
            let (own_x, own_cells, _) = read(&run.join(own), None);
            let x = reorder(&x, &cells, &own_cells);
            let diff = x
                .iter()
                .zip(own_x.iter())
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(diff < 1e-4, "{kind} {direction}: max difference {diff}");
        }
    }
}

#[test]
fn translate_refuses_the_wrong_build_low_coverage_and_the_wrong_modality() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = root().join("configs/translation_bmmc.toml");
    let o = crossomics(
        &[
            "run",
            cfg.to_str().unwrap(),
            "--set",
            "model={ kind = \"ridge\" }",
            "--set",
            "name=refuse",
            "--out",
            "out",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let run = run_dir(&tmp.path().join("out"), "refuse");
    let translate = |data: &Path, extra: &[&str]| {
        let out = tmp.path().join("x.h5ad");
        let mut args = vec![
            "translate",
            run.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let o = crossomics(&args, tmp.path());
        assert!(!o.status.success(), "should be refused: {}", text(&o));
        assert!(!out.exists(), "no output file after a refusal");
        text(&o)
    };
    let atac = competition("test_mod2");
    let e = translate(
        &atac,
        &[
            "--layer",
            "counts",
            "--direction",
            "atac_to_rna",
            "--genome",
            "hg19",
        ],
    );
    assert!(
        e.contains("genome build mismatch") && e.contains("test_mod2"),
        "{e}"
    );
    // 100 PBMCs whose 200 genes are mostly not the model's 600
    let pbmc = root().join("data/pbmc_multiome_100/10xpbmc_rna_subset.h5ad");
    let e = translate(&pbmc, &["--direction", "rna_to_atac"]);
    assert!(
        e.contains("10xpbmc_rna_subset.h5ad") && e.contains("below the required"),
        "{e}"
    );
    // normalized values where counts are needed: the message says which layer to read
    let rna = competition("test_mod1");
    let e = translate(&rna, &["--direction", "rna_to_atac"]);
    assert!(
        e.contains("test_mod1") && e.contains("layer `counts`"),
        "{e}"
    );
    // RNA given where ATAC is expected: its gene names are no peaks
    let e = translate(&rna, &["--layer", "counts", "--direction", "atac_to_rna"]);
    assert!(e.contains("test_mod1"), "{e}");
    // a coverage threshold that is no fraction
    let e = translate(
        &rna,
        &[
            "--layer",
            "counts",
            "--direction",
            "rna_to_atac",
            "--min-coverage",
            "2",
        ],
    );
    assert!(e.contains("[0, 1]") || e.contains("fraction"), "{e}");
}
