//! One run, from its resolved config to its finished folder: prepare the data, train and
//! evaluate the task, and write the run's artifacts, the same for every task (log,
//! losses, split, fitted preprocessing, the model's weights and `model.json`, metrics and
//! tables, `meta.json`) plus the task's own outputs (the embedding, or the predictions).
//! Every file is written into the run's temporary folder, which is renamed into place
//! when the run has finished ([`RunDir`]).

use std::io::IsTerminal;
use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result};
use crossomics_models::{Shapes, TrainHistory};

use crate::config::ExperimentConfig;
use crate::integration::Outcome;
use crate::progress::{PROGRESS_ENV, progress_line};
use crate::rundir::{self, Meta, RunDir};
use crate::table;
use crate::translation::TranslationOutcome;

/// A trained and evaluated run of either task.
#[derive(Debug)]
enum Trained {
    Integration(Outcome),
    Translation(TranslationOutcome),
}

impl Trained {
    fn common(&self) -> (&TrainHistory, &crossomics_data::split::Split, &str, f64) {
        match self {
            Self::Integration(o) => (&o.history, &o.split, &o.device, o.train_seconds),
            Self::Translation(o) => (&o.history, &o.split, &o.device, o.train_seconds),
        }
    }

    fn shapes(&self) -> &Shapes {
        match self {
            Self::Integration(o) => &o.shapes,
            Self::Translation(o) => &o.shapes,
        }
    }
}

/// Runs `cfg` into its run folder unless it has finished before (then its results are
/// printed; `force` redoes it). `base` resolves the config's relative paths.
pub fn run(cfg: &ExperimentConfig, variant: &str, base: &Path, force: bool) -> Result<()> {
    let resolved = toml::to_string(cfg)?;
    let run = RunDir::for_config(cfg)?;
    if run.is_finished() && !force {
        println!(
            "{} already finished (use --force to redo):",
            run.final_dir.display()
        );
        print!(
            "{}",
            std::fs::read_to_string(run.final_dir.join("results.md")).unwrap_or_default()
        );
        return Ok(());
    }
    run.begin()?;
    let result = execute(cfg, variant, base, &run, &resolved);
    if result.is_err() {
        // an interrupted or failed run leaves nothing behind
        let _ = std::fs::remove_dir_all(&run.work_dir);
    }
    result
}

fn execute(
    cfg: &ExperimentConfig,
    variant: &str,
    base: &Path,
    run: &RunDir,
    resolved: &str,
) -> Result<()> {
    let started = rundir::unix_now();
    let clock = Instant::now();
    run.write("config.resolved.toml", resolved)?;

    // what is logged is also kept in the run's log.txt
    let log = std::cell::RefCell::new(String::new());
    let note = |line: String| {
        tracing::info!("{line}");
        log.borrow_mut().push_str(&line);
        log.borrow_mut().push('\n');
    };
    note(format!("experiment {} run {} {variant}", cfg.name, run.id));
    let prep = crate::pipeline::prepare(cfg, base)?;
    note(format!(
        "dataset {}: {} cells, {} genes, {} peaks, {}",
        prep.dataset.name,
        prep.dataset.n_cells(),
        prep.dataset.genes.len(),
        prep.dataset.peaks.len(),
        match &prep.labels {
            Some(l) => format!("{} {} categories", l.names.len(), l.column),
            None => "no labels (label-free metrics only)".into(),
        }
    ));

    let total_epochs = cfg.training.warmup_epochs + cfg.training.epochs;
    let every = (total_epochs / 10).max(1);
    // the run's own progress bar (epochs), drawn only on a terminal
    let bar = indicatif::ProgressBar::new(total_epochs as u64).with_style(
        indicatif::ProgressStyle::with_template(
            "{elapsed_precise} [{bar:30}] epoch {pos}/{len} {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    // a worker child of `run --workers N` reports its epochs to the parent, which draws
    // one bar per running run
    let report = std::env::var_os(PROGRESS_ENV).is_some();
    let mut observer = |r: &crossomics_models::EpochRecord| {
        let message = format!(
            "{} loss {:.4} {:.0} cells/s",
            r.phase,
            r.train
                .iter()
                .find(|(k, _)| k == "total")
                .map_or(f64::NAN, |(_, v)| *v),
            r.cells_per_second
        );
        if report {
            eprintln!("{}", progress_line(r.epoch + 1, total_epochs, &message));
        }
        bar.set_position(r.epoch as u64 + 1);
        bar.set_message(message);
        if r.epoch.is_multiple_of(every) || r.epoch + 1 == total_epochs {
            let total = r
                .train
                .iter()
                .find(|(k, _)| k == "total")
                .map_or(f64::NAN, |(_, v)| *v);
            bar.suspend(|| note(format!(
                "epoch {:>4}/{total_epochs} {:<6} loss {total:>12.4} val {:>12.4} {:>8.0} cells/s",
                r.epoch + 1,
                r.phase,
                r.val_loss.unwrap_or(f64::NAN),
                r.cells_per_second
            )));
        }
    };
    let outcome = if cfg.is_translation() {
        crate::translation::train_and_evaluate(cfg, &prep, &mut observer).map(Trained::Translation)
    } else {
        crate::integration::train_and_evaluate(cfg, &prep, &mut observer).map(Trained::Integration)
    };
    bar.finish_and_clear();
    let outcome = outcome?;
    let (history, split, device, train_seconds) = outcome.common();
    note(format!(
        "trained {} on {device} in {train_seconds:.1} s (best epoch {:?}, stopped early: {})",
        cfg.model.kind(),
        history.best_epoch,
        history.stopped_early
    ));
    // what every run writes
    if cfg.output.plots && !history.epochs.is_empty() {
        loss_plot(cfg, run, history)?;
    }
    run.write("log.txt", log.borrow().as_bytes())?;
    run.write("losses.csv", table::losses_csv(history))?;
    run.write_json("split.json", split)?;
    prep.fitted.save(&run.path("preprocessing.json"))?;
    // what the task writes
    match &outcome {
        Trained::Integration(o) => {
            if cfg.output.plots {
                umap_plots(cfg, run, o, &prep)?;
            }
            ndarray_npy::write_npy(run.path("embedding.npy"), &o.embedding)
                .context("writing embedding.npy")?;
            write_embedding_h5ad(&run.path("embedding.h5ad"), cfg, &prep, o)?;
        }
        Trained::Translation(o) => crate::translation::write_predictions(&run.work_dir, &prep, o)?,
    }
    // the model: its weights and the shapes it was built for (`model.json`)
    if cfg.output.checkpoint {
        match &outcome {
            Trained::Integration(o) => o.model.save(&run.work_dir)?,
            Trained::Translation(o) => o.model.save(&run.work_dir)?,
        }
        run.write_json("model.json", outcome.shapes())?;
    }
    let (rows, validation_rows, device, train_seconds) = match outcome {
        Trained::Integration(o) => (o.rows, o.validation_rows, o.device, o.train_seconds),
        Trained::Translation(o) => (o.rows, o.validation_rows, o.device, o.train_seconds),
    };
    let (git_commit, git_dirty) = rundir::git_state();
    run.write_json(
        "meta.json",
        &Meta {
            crossomics_version: env!("CARGO_PKG_VERSION"),
            git_commit,
            git_dirty,
            tch_version: "0.24.0",
            libtorch_version: "2.11.0",
            device: device.clone(),
            cpu_threads: tch::get_num_threads(),
            seed: cfg.seed,
            started_unix: started,
            finished_unix: rundir::unix_now(),
            train_seconds,
            command: std::env::args().collect(),
        },
    )?;
    let mut rows = rows;
    for r in &mut rows {
        r.variant = variant.to_string();
    }
    let md = table::markdown(&rows);
    run.write("results.md", &md)?;
    run.write("results.csv", table::csv(&rows))?;
    run.write_json("metrics.json", &rows)?;
    if !validation_rows.is_empty() {
        let mut validation_rows = validation_rows;
        for r in &mut validation_rows {
            r.variant = variant.to_string();
        }
        // the validation cells' scores, which `crossomics table` chooses settings on
        run.write_json("validation.json", &validation_rows)?;
    }
    run.commit()?;

    println!("\n{md}");
    println!(
        "run {} finished in {:.1} s; results in {}",
        run.id,
        clock.elapsed().as_secs_f64(),
        run.final_dir.display()
    );
    Ok(())
}

/// `losses.png`: every training loss part and the validation loss per epoch.
fn loss_plot(
    cfg: &ExperimentConfig,
    run: &RunDir,
    h: &crossomics_models::TrainHistory,
) -> Result<()> {
    let mut names: Vec<String> = Vec::new();
    for e in &h.epochs {
        for (k, _) in &e.train {
            if !names.contains(k) {
                names.push(k.clone());
            }
        }
    }
    let mut series: Vec<(String, Vec<f64>)> = names
        .iter()
        .map(|n| {
            let v = h.epochs.iter().map(|e| {
                e.train
                    .iter()
                    .find(|(k, _)| k == n)
                    .map_or(f64::NAN, |(_, v)| *v)
            });
            (format!("train {n}"), v.collect())
        })
        .collect();
    series.push((
        "validation loss".into(),
        h.epochs
            .iter()
            .map(|e| e.val_loss.unwrap_or(f64::NAN))
            .collect(),
    ));
    crossomics_plots::loss_curves(
        &run.path("losses.png"),
        &format!("{} / {}", cfg.name, run.id),
        &series,
    )?;
    Ok(())
}

/// UMAP layouts of the embedding coloured by cell label, batch and Leiden cluster.
fn umap_plots(
    cfg: &ExperimentConfig,
    run: &RunDir,
    outcome: &crate::integration::Outcome,
    prep: &crate::pipeline::Prepared,
) -> Result<()> {
    let params = crossomics_plots::umap::UmapParams {
        seed: cfg.seed,
        ..Default::default()
    };
    let coords = crossomics_plots::umap::layout(outcome.embedding.view(), &params)?;
    // by label and batch when the data has them, and always by the Leiden clusters
    let leiden = crate::pipeline::Labels {
        column: "leiden".into(),
        codes: outcome.clusters.clone(),
        names: (0..outcome.clusters.iter().max().map_or(0, |m| m + 1))
            .map(|c| c.to_string())
            .collect(),
    };
    for l in prep.labels.iter().chain(&prep.batches).chain([&leiden]) {
        let title = format!(
            "{} latent, {} cells, by {}",
            cfg.model.kind(),
            l.codes.len(),
            l.column
        );
        crossomics_plots::scatter(
            &run.path(&format!("umap_{}.png", l.column)),
            &title,
            coords.view(),
            &l.codes,
            &l.names,
        )?;
    }
    Ok(())
}

/// The embedding as AnnData for scanpy users: the cells' metadata plus `split` and
/// `leiden` (the embedding's Leiden clusters, to annotate) columns in `obs`, the model's latent means in `obsm["X_<model>"]` and the RNA PCA input in
/// `obsm["X_rna_pca"]`; no `X`.
fn write_embedding_h5ad(
    path: &Path,
    cfg: &ExperimentConfig,
    prep: &crate::pipeline::Prepared,
    outcome: &crate::integration::Outcome,
) -> Result<()> {
    let mut split = vec![String::new(); prep.dataset.n_cells()];
    for (name, cells) in [
        ("train", &outcome.split.train),
        ("val", &outcome.split.val),
        ("test", &outcome.split.test),
    ] {
        for &c in cells {
            split[c] = name.to_string();
        }
    }
    let leiden = outcome.clusters.iter().map(ToString::to_string).collect();
    let cells = prep
        .dataset
        .cells
        .clone()
        .with_column("split", split)?
        .with_column("leiden", leiden)?;
    let key = format!("X_{}", cfg.model.kind());
    crossomics_data::h5ad::write(
        path,
        None,
        &cells,
        &[],
        &[
            (key.as_str(), outcome.embedding.view()),
            ("X_rna_pca", prep.rna_pca.view()),
        ],
    )
    .with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// The shapes a saved model was built for (its run's `model.json`).
pub fn read_shapes(path: &Path) -> Result<Shapes> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: not a model.json", path.display()))
}
