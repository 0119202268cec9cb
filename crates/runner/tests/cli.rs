//! The `crossomics` binary end to end on the bundled sample.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::{crossomics, text};

fn quickstart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml")
}

#[test]
fn run_writes_a_complete_reproducible_run_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quickstart();
    let args = [
        "run",
        cfg.to_str().unwrap(),
        "--set",
        "training.epochs=8",
        "--set",
        "training.warmup_epochs=2",
        "--out",
        "out",
    ];
    let o = crossomics(&args, tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("| method | dataset | seed | cells | knn_accuracy"),
        "{stdout}"
    );
    assert!(
        stdout.contains("| sailerx | bmmc_multiome_starter | 0 | 500 |"),
        "{stdout}"
    );

    let runs: Vec<PathBuf> = std::fs::read_dir(tmp.path().join("out/quickstart"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(
        runs.len(),
        1,
        "one finished run and no partial folder: {runs:?}"
    );
    let run = &runs[0];
    for f in [
        "config.resolved.toml",
        "meta.json",
        "losses.csv",
        "embedding.npy",
        "embedding.h5ad",
        "split.json",
        "preprocessing.json",
        "model.safetensors",
        "metrics.json",
        "validation.json",
        "results.md",
        "results.csv",
        "log.txt",
        "losses.png",
        "umap_cell_type.png",
        "umap_batch.png",
    ] {
        assert!(run.join(f).is_file(), "missing {f}");
    }
    let h5 = std::fs::read(run.join("embedding.h5ad")).unwrap();
    assert_eq!(&h5[..8], b"\x89HDF\r\n\x1a\n", "an HDF5 file");
    // the resolved config is itself a valid config that reproduces the run id
    let resolved = std::fs::read_to_string(run.join("config.resolved.toml")).unwrap();
    assert!(resolved.contains("epochs = 8"));
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("meta.json")).unwrap()).unwrap();
    assert_eq!(meta["seed"], 0);
    assert_eq!(meta["libtorch_version"], "2.11.0");
    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    let rows = metrics.as_array().unwrap();
    assert_eq!(rows.len(), 4, "model + three input baselines");
    let methods: Vec<&str> = rows.iter().map(|r| r["method"].as_str().unwrap()).collect();
    assert_eq!(
        methods,
        [
            "sailerx",
            "rna_pca (input)",
            "atac_lsi (input)",
            "rna_pca+atac_lsi (input)"
        ]
    );
    for row in rows {
        for m in row["metrics"].as_array().unwrap() {
            let v = m[1].as_f64().unwrap();
            match m[0].as_str().unwrap() {
                // a count, and a per-cell negative log-likelihood
                "leiden_clusters" => assert!(v >= 1.0 && v.fract() == 0.0, "{m}"),
                "test_recon_atac" | "test_recon_rna" => assert!(v.is_finite() && v > 0.0, "{m}"),
                _ => assert!((-1.0..=1.0).contains(&v), "{m}"),
            }
        }
    }
    // RNA PCA separates the annotated types far better than chance (21 types, largest 18%)
    let knn = rows[1]["metrics"][0][1].as_f64().unwrap();
    assert!(knn > 0.5, "RNA PCA kNN accuracy {knn}");
    let losses = std::fs::read_to_string(run.join("losses.csv")).unwrap();
    assert_eq!(
        losses.lines().count(),
        1 + 10,
        "header + one line per epoch"
    );

    // the saved model embeds data again: the bundled sample's plain folder through the
    // saved preprocessing gives back the run's own embedding
    assert!(run.join("model.json").is_file());
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/data/bmmc_multiome_starter");
    let o = crossomics(
        &[
            "embed",
            run.to_str().unwrap(),
            "--data",
            sample.to_str().unwrap(),
            "--out",
            "again.h5ad",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    // every model feature (those the filters kept on the training cells) is found
    let fitted: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("preprocessing.json")).unwrap())
            .unwrap();
    let (genes, peaks) = (
        fitted["genes"].as_array().unwrap().len(),
        fitted["peaks"].as_array().unwrap().len(),
    );
    assert!(genes > 500 && peaks > 500, "{genes} genes, {peaks} peaks");
    assert!(
        text(&o).contains(&format!(
            "{genes} of {genes} model genes and {peaks} of {peaks} model peaks found"
        )),
        "{}",
        text(&o)
    );
    let again =
        crossomics_data::h5ad::read_obsm(&tmp.path().join("again.h5ad"), "X_sailerx").unwrap();
    let saved: ndarray::Array2<f32> = ndarray_npy::read_npy(run.join("embedding.npy")).unwrap();
    assert_eq!(again.dim(), saved.dim());
    let worst = again
        .iter()
        .zip(saved.iter())
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(worst < 1e-4, "embedding differs by {worst}");
    let o = crossomics(
        &[
            "embed",
            run.to_str().unwrap(),
            "--data",
            "nowhere.csv",
            "--out",
            "x.h5ad",
        ],
        tmp.path(),
    );
    assert!(
        !o.status.success() && text(&o).contains("nowhere.csv"),
        "{}",
        text(&o)
    );
    assert!(!tmp.path().join("x.h5ad").exists());

    // a second run with the same config is skipped; --force redoes it
    let o = crossomics(&args, tmp.path());
    assert!(
        o.status.success() && text(&o).contains("already finished"),
        "{}",
        text(&o)
    );
    let mut forced = args.to_vec();
    forced.push("--force");
    let o2 = crossomics(&forced, tmp.path());
    assert!(o2.status.success(), "{}", text(&o2));
    let again: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(again, metrics, "same seed, same config: same metrics");
}

#[test]
fn check_prints_the_resolved_config_and_rejects_typos() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = quickstart();
    let o = crossomics(
        &[
            "check",
            cfg.to_str().unwrap(),
            "--set",
            "model.latent_dim=7",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("latent_dim = 7"));

    let bad = tmp.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\n[model]\nkind = \"sailerx\"\n[training]\nepohcs = 3\n",
    )
    .unwrap();
    let o = crossomics(&["check", bad.to_str().unwrap()], tmp.path());
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(msg.contains("bad.toml") && msg.contains("epohcs"), "{msg}");
}

#[test]
fn bad_dataset_is_a_clear_error_and_leaves_no_finished_run() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::write(
        data.join("rna_counts.mtx"),
        "%%MatrixMarket matrix coordinate integer general\n3 2 4\n1 1 1\n",
    )
    .unwrap();
    let cfg = tmp.path().join("exp.toml");
    std::fs::write(
        &cfg,
        "name = \"broken\"\n[dataset]\nformat = \"plain\"\npath = \"data\"\n[model]\nkind = \"sailerx\"\n",
    )
    .unwrap();
    let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], tmp.path());
    assert!(!o.status.success());
    let msg = text(&o);
    assert!(
        msg.contains("rna_counts.mtx") && msg.contains("truncated"),
        "{msg}"
    );
    assert!(!msg.contains("panicked"), "{msg}");
    let left = std::fs::read_dir(tmp.path().join("out/broken"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0, "a failed run leaves no folder behind");
}

#[test]
fn sweeps_expand_and_the_table_aggregates_seeds() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = tmp.path().join("sweep.toml");
    std::fs::write(
        &exp,
        format!(
            "extends = [\"{}\"]\nname = \"sw\"\n[training]\nepochs = 3\nwarmup_epochs = 1\n[sweep]\nseeds = [0, 1]\n[sweep.values]\n\"model.latent_dim\" = [4, 8]\n",
            quickstart().display()
        ),
    )
    .unwrap();
    let o = crossomics(&["check", exp.to_str().unwrap()], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.starts_with("run "))
            .count(),
        4
    );

    let o = crossomics(&["run", exp.to_str().unwrap(), "--out", "out"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let table = std::fs::read_to_string(tmp.path().join("out/sw/table.md")).unwrap();
    assert!(
        table.contains("| sailerx | latent_dim=4 | bmmc_multiome_starter | 2 |"),
        "{table}"
    );
    assert!(
        table.contains("| sailerx | latent_dim=8 | bmmc_multiome_starter | 2 |"),
        "{table}"
    );
    assert!(table.contains(" ± "), "{table}");
    // every seed's own row beside the table: 4 runs, each a model row and 3 input rows
    let runs = std::fs::read_to_string(tmp.path().join("out/sw/runs.csv")).unwrap();
    let lines: Vec<&str> = runs.lines().collect();
    assert!(lines[0].starts_with("method,role,variant,dataset,seed,cells,"));
    assert_eq!(lines.len(), 1 + 4 * 4, "{runs}");
    for (variant, seed) in [
        ("latent_dim=4", 0),
        ("latent_dim=4", 1),
        ("latent_dim=8", 0),
        ("latent_dim=8", 1),
    ] {
        let prefix = format!("sailerx,model,{variant},bmmc_multiome_starter,{seed},");
        assert_eq!(
            lines.iter().filter(|l| l.starts_with(&prefix)).count(),
            1,
            "{prefix}: {runs}"
        );
    }
    // the latent size is chosen on the validation cells' kNN transfer, among 2 settings
    assert!(
        table.contains("## Settings chosen on the validation cells")
            && table.contains("| sailerx | knn_accuracy | 2 | latent_dim="),
        "{table}"
    );
    // the model against the best of the inputs alone, seed by seed
    assert!(
        table.contains("## Difference to the best baseline")
            && table.contains("| sailerx | latent_dim=4 | knn_accuracy | "),
        "{table}"
    );
    let png = std::fs::read(tmp.path().join("out/sw/table.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "table.png is a PNG");
    // `table` rebuilds the same file from the run folders
    std::fs::remove_file(tmp.path().join("out/sw/table.md")).unwrap();
    let o = crossomics(&["table", "out/sw"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("out/sw/table.md")).unwrap(),
        table
    );
    let o = crossomics(&["table", "out/none"], tmp.path());
    assert!(
        !o.status.success() && text(&o).contains("out/none"),
        "{}",
        text(&o)
    );
}

fn small_sweep(dir: &Path) -> PathBuf {
    let exp = dir.join("par.toml");
    std::fs::write(
        &exp,
        format!(
            "extends = [\"{}\"]\nname = \"par\"\n[training]\nepochs = 2\nwarmup_epochs = 1\n[sweep]\nseeds = [0, 1, 2]\n",
            quickstart().display()
        ),
    )
    .unwrap();
    exp
}

fn metrics_of(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("metrics.json").is_file())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p.join("metrics.json")).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn parallel_workers_reproduce_the_sequential_results() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = small_sweep(tmp.path());
    let e = exp.to_str().unwrap();
    let o = crossomics(&["run", e, "--out", "seq"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let o = crossomics(&["run", e, "--out", "par", "--workers", "2"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    let seq = metrics_of(&tmp.path().join("seq/par"));
    assert_eq!(seq.len(), 3);
    let par = metrics_of(&tmp.path().join("par/par"));
    let ids = |v: &[(String, String)]| v.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>();
    assert_eq!(
        ids(&par),
        ids(&seq),
        "the output folder is not part of a run's id"
    );
    assert!(par == seq, "parallel workers changed the metrics");
    assert!(tmp.path().join("par/par/logs/run-2.log").is_file());
    assert!(tmp.path().join("par/par/table.md").is_file());
    let o = crossomics(&["run", e, "--run-index", "3"], tmp.path());
    assert!(
        !o.status.success() && text(&o).contains("has 3 runs"),
        "{}",
        text(&o)
    );
}

#[test]
fn slurm_array_task_runs_its_run() {
    let tmp = tempfile::tempdir().unwrap();
    let exp = small_sweep(tmp.path());
    let script = tmp.path().join("job.sh");
    let o = crossomics(
        &[
            "slurm",
            exp.to_str().unwrap(),
            "--set",
            "output.dir=slurm_out",
            "--output",
            script.to_str().unwrap(),
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    let body = std::fs::read_to_string(&script).unwrap();
    assert!(body.contains("#SBATCH --array=0-2"), "{body}");
    // the #SBATCH lines are comments to bash: run task 1 as Slurm would
    let o = Command::new("bash")
        .arg(&script)
        .current_dir(tmp.path())
        .env("SLURM_ARRAY_TASK_ID", "1")
        .env("SLURM_CPUS_PER_TASK", "1")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let done = metrics_of(&tmp.path().join("slurm_out/par"));
    assert_eq!(done.len(), 1);
    assert!(done[0].0.contains("-seed1-"), "{:?}", done[0].0);
}

#[test]
fn simulate_writes_a_dataset_the_runner_can_train_on() {
    let tmp = tempfile::tempdir().unwrap();
    let o = crossomics(
        &[
            "simulate", "sim", "--cells", "300", "--genes", "200", "--peaks", "400", "--types",
            "4", "--seed", "7",
        ],
        tmp.path(),
    );
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("simulated 300 cells x 200 genes x 400 peaks")
    );
    for f in [
        "rna_counts.mtx.gz",
        "atac_counts.mtx.gz",
        "genes.tsv",
        "peaks.tsv",
        "cells.tsv",
        "links.tsv",
    ] {
        assert!(tmp.path().join("sim").join(f).is_file(), "{f}");
    }
    let cfg = tmp.path().join("sim.toml");
    std::fs::write(
        &cfg,
        "name = \"sim\"\n[dataset]\nformat = \"plain\"\npath = \"sim\"\n[model]\nkind = \"sailerx\"\nlatent_dim = 8\n\
         [training]\nepochs = 5\nwarmup_epochs = 1\nbatch_size = 64\nlr = 0.001\n[output]\nplots = false\n",
    )
    .unwrap();
    let o = crossomics(&["run", cfg.to_str().unwrap(), "--out", "out"], tmp.path());
    assert!(o.status.success(), "{}", text(&o));
    // the simulated cell types are easy to find in the RNA PCA
    let stdout = String::from_utf8_lossy(&o.stdout).to_string();
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| rna_pca (input)"))
        .unwrap()
        .to_string();
    let knn: f64 = row.split('|').nth(5).unwrap().trim().parse().unwrap();
    assert!(knn > 0.8, "{row}");
    let bad = crossomics(&["simulate", "sim2", "--cells", "0"], tmp.path());
    assert!(
        !bad.status.success() && text(&bad).contains("n_cells"),
        "{}",
        text(&bad)
    );
}

// Hostile files (the untrusted-input issue): a MatrixMarket size line claiming 10^12
// rows, a fraction in an `integer` matrix, a gzip bomb. Each ends in exit status 1 with
// the file and the problem named: never an abort (status 134), never a signal.

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

/// `crossomics run` of a SAILERX config over [`plain_folder`] of `rna`, with `extra`
/// TOML after the config's tables.
fn run_on(rna: &[u8], extra: &str) -> (Output, String) {
    let tmp = tempfile::tempdir().unwrap();
    plain_folder(&tmp.path().join("data"), rna);
    std::fs::write(
        tmp.path().join("c.toml"),
        format!("name = \"hostile\"\n[dataset]\nformat = \"plain\"\npath = \"data\"\n[model]\nkind = \"sailerx\"\n{extra}"),
    )
    .unwrap();
    let o = crossomics(&["run", "c.toml", "--out", "out"], tmp.path());
    let t = text(&o);
    (o, t)
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
        "",
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
    let (o, text) = run_on(
        b"%%MatrixMarket matrix coordinate integer general\n3 2 2\n1 1 2.5\n2 2 1\n",
        "",
    );
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
    let (o, text) = run_on(&bomb, "[limits]\nmax_inflated_bytes = 1048576\n");
    assert_clean_failure(&o, &text, &["rna_counts.mtx", "max_inflated_bytes"]);
    // a typo in [limits] names the key
    let (o, text) = run_on(&bomb, "[limits]\nmax_inflated = 1\n");
    assert!(
        !o.status.success() && text.contains("max_inflated"),
        "{text}"
    );
}

/// Every runnable config and experiment file the repository ships checks (`crossomics
/// check`): the keys exist, the values parse, the sweeps expand.
#[test]
fn every_shipped_config_and_experiment_checks() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    for dir in ["configs", "experiments"] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.extension().is_some_and(|x| x == "toml") {
                files.push(p);
            }
        }
    }
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("configs/snare_mouse_cortex.toml"))
    );
    assert!(
        files
            .iter()
            .any(|f| f.ends_with("configs/translation_snare.toml"))
    );
    for f in files {
        let o = crossomics(&["check", f.to_str().unwrap()], &root);
        assert!(o.status.success(), "{}: {}", f.display(), text(&o));
    }
}
