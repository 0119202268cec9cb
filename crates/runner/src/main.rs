//! `crossomics`: run experiments from TOML configs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crossomics_runner::config::ExperimentConfig;
use crossomics_runner::experiment;
use crossomics_runner::rundir::{self, Meta, RunDir};
use crossomics_runner::{pipeline, table};

#[derive(Debug, Parser)]
#[command(
    name = "crossomics",
    version,
    about = "Paired single-cell multi-omics: integration, translation, benchmarks"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Train and evaluate every run an experiment file describes (its sweep expanded);
    /// print and save the tables.
    Run {
        config: PathBuf,
        /// Override a config key, e.g. `--set model.latent_dim=32` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Output directory (default: the config's `output.dir`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Redo runs whose results already exist.
        #[arg(long)]
        force: bool,
    },
    /// Validate an experiment file and list the runs it expands to, without training.
    Check {
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Print the resolved config of every run.
        #[arg(long)]
        verbose: bool,
    },
    /// Aggregate the finished runs of an experiment folder (`runs/<name>`) into the
    /// benchmark table: mean ± std over seeds per method and variant.
    Table { dir: PathBuf },
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
    if let Err(e) = dispatch(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Check {
            config,
            overrides,
            verbose,
        } => {
            let runs = experiment::plan(&config, &overrides)?;
            for (i, r) in runs.iter().enumerate() {
                let resolved = toml::to_string(&r.config)?;
                let id = RunDir::new(
                    &r.config.output.dir,
                    &r.config.name,
                    r.config.model.kind(),
                    r.config.seed,
                    &resolved,
                )
                .id;
                println!("run {}/{}: {id} {}", i + 1, runs.len(), r.variant);
                if verbose || runs.len() == 1 {
                    println!("{resolved}");
                }
            }
            eprintln!("{}: valid, {} run(s)", config.display(), runs.len());
            Ok(())
        }
        Cmd::Run {
            config,
            overrides,
            out,
            force,
        } => {
            let runs = experiment::plan(&config, &overrides)?;
            let base = config.parent().unwrap_or(Path::new("."));
            let mut failed = Vec::new();
            let mut dirs = Vec::new();
            for (i, planned) in runs.iter().enumerate() {
                let mut cfg = planned.config.clone();
                if let Some(out) = &out {
                    cfg.output.dir = out.clone();
                }
                if runs.len() > 1 {
                    tracing::info!(
                        "run {}/{} {} seed {}",
                        i + 1,
                        runs.len(),
                        planned.variant,
                        cfg.seed
                    );
                }
                dirs.push(cfg.output.dir.join(&cfg.name));
                if let Err(e) = run(&cfg, &planned.variant, base, force) {
                    eprintln!(
                        "error: run {}/{} ({} seed {}): {e:#}",
                        i + 1,
                        runs.len(),
                        planned.variant,
                        cfg.seed
                    );
                    failed.push(i + 1);
                }
            }
            if runs.len() > 1 {
                dirs.dedup();
                for dir in &dirs {
                    print_table(dir)?;
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} of {} runs failed: {failed:?}", failed.len(), runs.len())
            }
        }
        Cmd::Table { dir } => print_table(&dir),
    }
}

/// Aggregates `dir/*/metrics.json` into `dir/table.{md,csv}` and prints it.
fn print_table(dir: &Path) -> Result<()> {
    let mut rows: Vec<table::Row> = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read the experiment folder {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("metrics.json").is_file())
        .collect();
    entries.sort();
    for run in &entries {
        let path = run.join("metrics.json");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        let mut r: Vec<table::Row> = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a crossomics metrics file", path.display()))?;
        rows.append(&mut r);
    }
    if rows.is_empty() {
        anyhow::bail!("{} holds no finished runs", dir.display());
    }
    let aggs = table::aggregate(&rows);
    let md = table::aggregate_markdown(&aggs);
    rundir::write_atomic(&dir.join("table.md"), md.as_bytes())?;
    rundir::write_atomic(
        &dir.join("table.csv"),
        table::aggregate_csv(&aggs).as_bytes(),
    )?;
    println!("\n{} ({} runs)\n\n{md}", dir.display(), entries.len());
    Ok(())
}

fn run(cfg: &ExperimentConfig, variant: &str, base: &Path, force: bool) -> Result<()> {
    let resolved = toml::to_string(cfg)?;
    let run = RunDir::new(
        &cfg.output.dir,
        &cfg.name,
        cfg.model.kind(),
        cfg.seed,
        &resolved,
    );
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

    tracing::info!(experiment = %cfg.name, run = %run.id, "preparing data");
    let prep = pipeline::prepare(cfg, base)?;
    tracing::info!(
        cells = prep.dataset.n_cells(),
        genes = prep.dataset.genes.len(),
        peaks = prep.dataset.peaks.len(),
        cell_types = prep.label_names.len(),
        "dataset {}",
        prep.dataset.name
    );

    let total_epochs = cfg.training.warmup_epochs + cfg.training.epochs;
    let every = (total_epochs / 10).max(1);
    let mut observer = |r: &crossomics_translators::EpochRecord| {
        if r.epoch.is_multiple_of(every) || r.epoch + 1 == total_epochs {
            let total = r
                .train
                .iter()
                .find(|(k, _)| k == "total")
                .map_or(f64::NAN, |(_, v)| *v);
            tracing::info!(
                "epoch {:>4}/{total_epochs} {:<6} loss {total:>12.4} val {:>12.4} {:>8.0} cells/s",
                r.epoch + 1,
                r.phase,
                r.val_loss.unwrap_or(f64::NAN),
                r.cells_per_second
            );
        }
    };
    let outcome = pipeline::train_and_evaluate(cfg, &prep, &mut observer)?;
    tracing::info!(device = %outcome.device, seconds = format!("{:.1}", outcome.train_seconds), "trained");

    run.write("losses.csv", table::losses_csv(&outcome.history))?;
    ndarray_npy::write_npy(run.path("embedding.npy"), &outcome.embedding)
        .context("writing embedding.npy")?;
    run.write_json("split.json", &outcome.split)?;
    if cfg.output.checkpoint {
        outcome.model.save(&run.path("model.safetensors"))?;
    }
    let (git_commit, git_dirty) = rundir::git_state();
    run.write_json(
        "meta.json",
        &Meta {
            crossomics_version: env!("CARGO_PKG_VERSION"),
            git_commit,
            git_dirty,
            tch_version: "0.24.0",
            libtorch_version: "2.11.0",
            device: outcome.device.clone(),
            cpu_threads: tch::get_num_threads(),
            seed: cfg.seed,
            started_unix: started,
            finished_unix: rundir::unix_now(),
            train_seconds: outcome.train_seconds,
            command: std::env::args().collect(),
        },
    )?;
    let mut rows = outcome.rows.clone();
    for r in &mut rows {
        r.variant = variant.to_string();
    }
    let md = table::markdown(&rows);
    run.write("results.md", &md)?;
    run.write("results.csv", table::csv(&rows))?;
    run.write_json("metrics.json", &rows)?;
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
