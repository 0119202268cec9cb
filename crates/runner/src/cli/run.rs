//! `crossomics` CLI: Train and evaluate experiment runs, several at once in worker processes.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::table::print_table;
use crate::artifacts::run;
use crate::experiment;
use crate::progress::{PROGRESS_ENV, parse_progress};

/// Train and evaluate every run an experiment file describes (its sweep expanded);
/// print and save the tables.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    pub config: PathBuf,
    /// Override a config key, e.g. `--set model.latent_dim=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Output directory (default: the config's `output.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Redo runs whose results already exist.
    #[arg(long)]
    pub force: bool,
    /// Runs of a sweep executed at once, each in its own process (seeded runs stay
    /// bit-reproducible: libtorch's random generator is per process).
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Execute only the run with this 0-based index of the expanded sweep (what each
    /// worker and each Slurm array task does).
    #[arg(long)]
    pub run_index: Option<usize>,
}

impl RunArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            config,
            overrides,
            out,
            force,
            workers,
            run_index,
        } = self;
        run_experiment(&config, &overrides, out, force, workers, run_index)
    }
}

fn run_experiment(
    config: &Path,
    overrides: &[String],
    out: Option<PathBuf>,
    force: bool,
    workers: usize,
    run_index: Option<usize>,
) -> Result<()> {
    let mut runs = experiment::plan(config, overrides)?;
    if let Some(out) = &out {
        for r in &mut runs {
            r.config.output.dir = out.clone();
        }
    }
    let base = config.parent().unwrap_or(Path::new("."));
    if let Some(i) = run_index {
        let planned = runs.get(i).with_context(|| {
            format!(
                "--run-index {i}: the experiment has {} runs (0..{})",
                runs.len(),
                runs.len()
            )
        })?;
        return run(&planned.config, &planned.variant, base, force);
    }
    let n = runs.len();
    let failed: Vec<usize> = if workers > 1 && n > 1 {
        parallel_runs(config, overrides, out.as_deref(), force, &runs, workers)?
    } else {
        let mut failed = Vec::new();
        for (i, planned) in runs.iter().enumerate() {
            if n > 1 {
                tracing::info!(
                    "run {}/{n} {} seed {}",
                    i + 1,
                    planned.variant,
                    planned.config.seed
                );
            }
            if let Err(e) = run(&planned.config, &planned.variant, base, force) {
                eprintln!(
                    "error: run {}/{n} ({} seed {}): {e:#}",
                    i + 1,
                    planned.variant,
                    planned.config.seed
                );
                failed.push(i);
            }
        }
        failed
    };
    if n > 1 {
        let mut dirs: Vec<PathBuf> = runs
            .iter()
            .map(|r| r.config.output.dir.join(&r.config.name))
            .collect();
        dirs.dedup();
        for dir in &dirs {
            if let Err(e) = print_table(dir) {
                eprintln!("error: {e:#}");
            }
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        anyhow::bail!(
            "{} of {n} runs failed (0-based indices {failed:?})",
            failed.len()
        )
    }
}

/// Copies a child's stderr into its log, turning progress lines into bar updates instead.
fn forward_progress(
    stderr: impl std::io::Read,
    mut log: std::fs::File,
    bar: &indicatif::ProgressBar,
) -> Result<()> {
    use std::io::{BufRead, Write};
    for line in std::io::BufReader::new(stderr).lines() {
        let line = line.context("reading a worker's output")?;
        match parse_progress(&line) {
            Some((position, total, message)) => {
                bar.set_length(total);
                bar.set_position(position);
                bar.set_message(message.to_owned());
            }
            None => writeln!(log, "{line}").context("writing a worker's log")?,
        }
    }
    Ok(())
}

/// Runs every planned run in a child process (`--run-index i`), `workers` at a time, with
/// an overall progress bar and one bar per running run; each child's output goes to
/// `<experiment dir>/logs/run-<i>.log`.
fn parallel_runs(
    config: &Path,
    overrides: &[String],
    out: Option<&Path>,
    force: bool,
    runs: &[experiment::PlannedRun],
    workers: usize,
) -> Result<Vec<usize>> {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let exe = std::env::current_exe()?;
    let next = AtomicUsize::new(0);
    let failed = Mutex::new(Vec::new());
    let multi = indicatif::MultiProgress::new();
    if !std::io::stderr().is_terminal() {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let bar = multi.add(
        indicatif::ProgressBar::new(runs.len() as u64).with_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {pos}/{len} runs {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        ),
    );
    std::thread::scope(|scope| {
        for _ in 0..workers.min(runs.len()) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    let Some(planned) = runs.get(i) else { break };
                    let logs = planned
                        .config
                        .output
                        .dir
                        .join(&planned.config.name)
                        .join("logs");
                    let outcome = (|| -> Result<bool> {
                        std::fs::create_dir_all(&logs)?;
                        let log = std::fs::File::create(logs.join(format!("run-{i}.log")))?;
                        // the run's own bar, fed by the progress lines of its stderr
                        let run_bar = multi.insert_before(
                            &bar,
                            indicatif::ProgressBar::new(0).with_style(
                                indicatif::ProgressStyle::with_template(
                                    "  run {prefix:>4} [{bar:24}] epoch {pos}/{len} {msg}",
                                )
                                .expect("valid template")
                                .progress_chars("=> "),
                            ),
                        );
                        run_bar.set_prefix(format!("{}", i + 1));
                        let mut cmd = std::process::Command::new(&exe);
                        cmd.env(PROGRESS_ENV, "1");
                        cmd.arg("run")
                            .arg(config)
                            .arg("--run-index")
                            .arg(i.to_string());
                        for o in overrides {
                            cmd.arg("--set").arg(o);
                        }
                        if let Some(out) = out {
                            cmd.arg("--out").arg(out);
                        }
                        if force {
                            cmd.arg("--force");
                        }
                        let mut child = cmd
                            .stdout(log.try_clone()?)
                            .stderr(std::process::Stdio::piped())
                            .spawn()?;
                        let stderr = child.stderr.take().expect("piped");
                        let copied = forward_progress(stderr, log, &run_bar);
                        let status = child.wait()?;
                        run_bar.finish_and_clear();
                        multi.remove(&run_bar);
                        copied?;
                        Ok(status.success())
                    })();
                    let ok = matches!(outcome, Ok(true));
                    if !ok {
                        let why = match outcome {
                            Err(e) => format!("{e:#}"),
                            _ => format!("see {}", logs.join(format!("run-{i}.log")).display()),
                        };
                        bar.suspend(|| {
                            eprintln!(
                                "error: run {}/{} ({}) failed: {why}",
                                i + 1,
                                runs.len(),
                                planned.variant
                            )
                        });
                        failed.lock().expect("not poisoned").push(i);
                    }
                    bar.inc(1);
                    bar.set_message(planned.variant.clone());
                    if !bar.is_hidden() {
                        continue;
                    }
                    tracing::info!(
                        "run {}/{} {} seed {}: {}",
                        i + 1,
                        runs.len(),
                        planned.variant,
                        planned.config.seed,
                        if ok { "done" } else { "failed" }
                    );
                }
            });
        }
    });
    bar.finish_and_clear();
    multi.clear().ok();
    let mut failed = failed.into_inner().expect("not poisoned");
    failed.sort_unstable();
    Ok(failed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::progress::{parse_progress, progress_line};

    #[test]
    fn progress_lines_round_trip_and_other_lines_are_not_progress() {
        let line = progress_line(3, 40, "main loss 1.25 900 cells/s");
        assert_eq!(
            parse_progress(&line),
            Some((3, 40, "main loss 1.25 900 cells/s"))
        );
        assert_eq!(parse_progress(&progress_line(1, 2, "")), Some((1, 2, "")));
        for other in [
            "epoch    3/40 main loss 1.25",
            "@crossomics-progress",
            "@crossomics-progress x 40 msg",
            "@crossomics-progressive 1 2",
        ] {
            assert_eq!(parse_progress(other), None, "{other}");
        }
    }

    #[test]
    fn a_workers_progress_feeds_its_bar_and_the_rest_goes_to_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run-0.log");
        let stderr = format!(
            "INFO dataset x\n{}\n{}\nINFO trained\n",
            progress_line(1, 5, "warmup"),
            progress_line(4, 5, "main loss 2")
        );
        let bar = indicatif::ProgressBar::hidden();
        forward_progress(
            stderr.as_bytes(),
            std::fs::File::create(&path).unwrap(),
            &bar,
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "INFO dataset x\nINFO trained\n"
        );
        assert_eq!((bar.position(), bar.length()), (4, Some(5)));
        assert_eq!(bar.message(), "main loss 2");
    }
}
