//! `crossomics`: run experiments from TOML configs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crossomics_runner::config::{self, ExperimentConfig};
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
    /// Train and evaluate the experiment a config describes; print and save its table.
    Run {
        config: PathBuf,
        /// Override a config key, e.g. `--set model.latent_dim=32` (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Output directory (default: the config's `output.dir`).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Redo a run whose results already exist.
        #[arg(long)]
        force: bool,
    },
    /// Validate a config and print the resolved settings, without training.
    Check {
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
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
        Cmd::Check { config, overrides } => {
            let cfg = config::load(&config, &overrides)?;
            print!("{}", toml::to_string(&cfg)?);
            eprintln!("{}: valid ({} model)", config.display(), cfg.model.kind());
            Ok(())
        }
        Cmd::Run {
            config,
            overrides,
            out,
            force,
        } => {
            let mut cfg = config::load(&config, &overrides)?;
            if let Some(out) = out {
                cfg.output.dir = out;
            }
            run(&cfg, config.parent().unwrap_or(Path::new(".")), force)
        }
    }
}

fn run(cfg: &ExperimentConfig, base: &Path, force: bool) -> Result<()> {
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
    let result = execute(cfg, base, &run, &resolved);
    if result.is_err() {
        // an interrupted or failed run leaves nothing behind
        let _ = std::fs::remove_dir_all(&run.work_dir);
    }
    result
}

fn execute(cfg: &ExperimentConfig, base: &Path, run: &RunDir, resolved: &str) -> Result<()> {
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
    let md = table::markdown(&outcome.rows);
    run.write("results.md", &md)?;
    run.write("results.csv", table::csv(&outcome.rows))?;
    run.write_json("metrics.json", &outcome.rows)?;
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
