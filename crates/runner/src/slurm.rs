//! Slurm job arrays: one array task per expanded run (`crossomics run --run-index`).
//!
//! [`script`] writes the batch script (`crossomics slurm`); [`submit`] also places it in
//! the experiment's folder and hands it to `sbatch`, and [`Submitted::wait`] follows the
//! job with `squeue` until every task has left the queue (`crossomics sweep --slurm`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::experiment;
use crate::rundir::{self, RunDir};

/// Resources of each array task.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    pub job_name: String,
    pub time: String,
    pub cpus: usize,
    pub mem: String,
    pub gpus: usize,
    pub partition: Option<String>,
}

fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+%".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// A batch script whose array task `i` runs the experiment's run `i`; the table is built
/// afterwards with `crossomics table`.
pub fn script(
    exe: &Path,
    config: &Path,
    overrides: &[String],
    n_runs: usize,
    o: &SlurmOptions,
) -> String {
    render(exe, config, overrides, n_runs, o, None)
}

/// Where a submitted script runs and logs (all absolute paths).
struct Placement<'a> {
    /// `#SBATCH --chdir`: relative output folders resolve as they did at submission.
    workdir: &'a Path,
    /// Array task `i` of job `A` logs to `<logs>/slurm-A_i.log`.
    logs: &'a Path,
    /// `crossomics run --out`.
    out: Option<&'a Path>,
}

fn render(
    exe: &Path,
    config: &Path,
    overrides: &[String],
    n_runs: usize,
    o: &SlurmOptions,
    place: Option<&Placement>,
) -> String {
    let mut s = String::from("#!/usr/bin/env bash\n");
    s.push_str(&format!("#SBATCH --job-name={}\n", quote(&o.job_name)));
    s.push_str(&format!("#SBATCH --array=0-{}\n", n_runs.saturating_sub(1)));
    s.push_str(&format!("#SBATCH --time={}\n", o.time));
    s.push_str(&format!("#SBATCH --cpus-per-task={}\n", o.cpus));
    s.push_str(&format!("#SBATCH --mem={}\n", o.mem));
    if o.gpus > 0 {
        s.push_str(&format!("#SBATCH --gres=gpu:{}\n", o.gpus));
    }
    if let Some(p) = &o.partition {
        s.push_str(&format!("#SBATCH --partition={}\n", quote(p)));
    }
    match place {
        Some(p) => {
            s.push_str(&format!(
                "#SBATCH --chdir={}\n",
                quote(&p.workdir.display().to_string())
            ));
            s.push_str(&format!(
                "#SBATCH --output={}\n",
                quote(&p.logs.join("slurm-%A_%a.log").display().to_string())
            ));
        }
        None => s.push_str(&format!(
            "#SBATCH --output={}-%A_%a.log\n",
            quote(&o.job_name)
        )),
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!(
        "export OMP_NUM_THREADS=${{SLURM_CPUS_PER_TASK:-{}}}\n",
        o.cpus
    ));
    let mut cmd = format!(
        "{} run {} --run-index \"$SLURM_ARRAY_TASK_ID\"",
        quote(&exe.display().to_string()),
        quote(&config.display().to_string())
    );
    for ov in overrides {
        cmd.push_str(&format!(" --set {}", quote(ov)));
    }
    if let Some(out) = place.and_then(|p| p.out) {
        cmd.push_str(&format!(" --out {}", quote(&out.display().to_string())));
    }
    s.push_str(&cmd);
    s.push('\n');
    s
}

/// A job array handed to Slurm by [`submit`].
#[derive(Debug, Clone)]
pub struct Submitted {
    pub job_id: String,
    /// The batch script, `<experiment folder>/sweep.sbatch`.
    pub script: PathBuf,
    /// The folders the runs write to, for `crossomics table` (usually one).
    pub experiment_dirs: Vec<PathBuf>,
    /// The finished-run folder of array task `i`.
    pub runs: Vec<PathBuf>,
    /// Where array task `i` logs: `<logs>/slurm-<job>_<i>.log`.
    pub logs: PathBuf,
}

/// Expands the experiment (with `overrides`; `out` replaces every run's `output.dir`),
/// writes its job-array script into the experiment folder and submits it with
/// `sbatch --parsable`. Every task runs `exe run <config> --run-index <i>` from the
/// current directory, so finished runs are skipped as they are locally.
pub fn submit(
    exe: &Path,
    config: &Path,
    overrides: &[String],
    out: Option<&Path>,
    o: &SlurmOptions,
) -> Result<Submitted> {
    let mut runs = experiment::plan(config, overrides)?;
    let out = out.map(std::path::absolute).transpose()?;
    if let Some(out) = &out {
        for r in &mut runs {
            r.config.output.dir = out.clone();
        }
    }
    let finished: Vec<PathBuf> = runs
        .iter()
        .map(|r| Ok(RunDir::for_config(&r.config)?.final_dir))
        .collect::<Result<_>>()?;
    let mut experiment_dirs: Vec<PathBuf> = finished
        .iter()
        .map(|d| d.parent().unwrap_or(Path::new(".")).to_path_buf())
        .collect();
    experiment_dirs.sort();
    experiment_dirs.dedup();
    let dir = std::path::absolute(&experiment_dirs[0])?;
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let workdir = std::env::current_dir()?;
    let config = std::path::absolute(config)?;
    let place = Placement {
        workdir: &workdir,
        logs: &logs,
        out: out.as_deref(),
    };
    let body = render(exe, &config, overrides, runs.len(), o, Some(&place));
    let script = dir.join("sweep.sbatch");
    rundir::write_atomic(&script, body.as_bytes())?;
    let job_id = sbatch(&script)?;
    Ok(Submitted {
        job_id,
        script,
        experiment_dirs,
        runs: finished,
        logs,
    })
}

/// `sbatch --parsable SCRIPT`, returning the job id.
fn sbatch(script: &Path) -> Result<String> {
    let shown = format!("sbatch --parsable {}", script.display());
    let o = Command::new("sbatch")
        .arg("--parsable")
        .arg(script)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                anyhow::anyhow!(
                    "cannot run `{shown}`: sbatch is not installed or not on PATH (run this on a \
                     Slurm submit host; `crossomics slurm` only writes the script; \
                     scripts/setup-slurm.sh starts a one-node test cluster)"
                )
            } else {
                anyhow::anyhow!("cannot run `{shown}`: {e}")
            }
        })?;
    if !o.status.success() {
        bail!(
            "`{shown}` failed ({}): {}",
            o.status,
            String::from_utf8_lossy(&o.stderr).trim()
        );
    }
    parse_job_id(&String::from_utf8_lossy(&o.stdout))
        .with_context(|| format!("`{shown}` did not print a job id"))
}

/// `sbatch --parsable` prints `<job id>[;<cluster>]`.
fn parse_job_id(stdout: &str) -> Result<String> {
    let id = stdout
        .lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("");
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        bail!("unexpected output {:?}", stdout.trim());
    }
    Ok(id.to_string())
}

impl Submitted {
    /// Polls `squeue` until no task of the job is pending or running, calling `progress`
    /// with a summary (`"1 RUNNING, 1 PENDING"`) whenever it changes. It does not say
    /// whether the tasks succeeded: [`Submitted::missing`] does.
    pub fn wait(&self, mut progress: impl FnMut(&str)) -> Result<()> {
        let mut last = String::new();
        let mut failures = 0;
        let mut delay = Duration::from_millis(500);
        loop {
            let o = Command::new("squeue")
                .args([
                    "--noheader",
                    "--array",
                    "--jobs",
                    &self.job_id,
                    "--format=%T",
                ])
                .output()
                .context("cannot run `squeue` to follow the job")?;
            let stderr = String::from_utf8_lossy(&o.stderr);
            if o.status.success() {
                failures = 0;
                let states = summarize(&String::from_utf8_lossy(&o.stdout));
                if states.is_empty() {
                    return Ok(());
                }
                if states != last {
                    progress(&states);
                    last = states;
                }
            } else if stderr.contains("Invalid job id") {
                // the job left the controller's memory (MinJobAge) after finishing
                return Ok(());
            } else {
                // the controller may be busy: try again, a few times
                failures += 1;
                if failures >= 10 {
                    bail!(
                        "`squeue --jobs {}` keeps failing: {}",
                        self.job_id,
                        stderr.trim()
                    );
                }
            }
            std::thread::sleep(delay);
            delay = (delay * 3 / 2).min(Duration::from_secs(15));
        }
    }

    /// The array indices whose run folder has no `metrics.json`.
    pub fn missing(&self) -> Vec<usize> {
        (0..self.runs.len())
            .filter(|&i| !self.runs[i].join("metrics.json").is_file())
            .collect()
    }

    /// The log of array task `i`.
    pub fn log(&self, i: usize) -> PathBuf {
        self.logs.join(format!("slurm-{}_{i}.log", self.job_id))
    }
}

/// Task states counted, in order of first appearance: `"1 RUNNING, 1 PENDING"`.
fn summarize(squeue: &str) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for state in squeue.lines().map(str::trim).filter(|l| !l.is_empty()) {
        match counts.iter_mut().find(|(s, _)| *s == state) {
            Some((_, n)) => *n += 1,
            None => counts.push((state, 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("{n} {s}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_has_one_task_per_run_and_quotes_arguments() {
        let o = SlurmOptions {
            job_name: "abl".into(),
            time: "01:00:00".into(),
            cpus: 2,
            mem: "8G".into(),
            gpus: 1,
            partition: Some("gpu".into()),
        };
        let s = script(
            Path::new("/opt/crossomics"),
            Path::new("exp dir/e.toml"),
            &["model.latent_dim=8".into()],
            6,
            &o,
        );
        assert!(s.contains("#SBATCH --array=0-5\n"));
        assert!(s.contains("#SBATCH --gres=gpu:1\n"));
        assert!(s.contains("#SBATCH --partition=gpu\n"));
        assert!(s.ends_with(
            "/opt/crossomics run 'exp dir/e.toml' --run-index \"$SLURM_ARRAY_TASK_ID\" --set model.latent_dim=8\n"
        ));
        assert_eq!(quote("it's"), r"'it'\''s'");
    }

    #[test]
    fn submitted_scripts_log_to_the_experiment_folder_and_keep_the_workdir() {
        let o = SlurmOptions {
            job_name: "abl".into(),
            time: "00:10:00".into(),
            cpus: 1,
            mem: "1G".into(),
            gpus: 0,
            partition: None,
        };
        let place = Placement {
            workdir: Path::new("/home/me/proj"),
            logs: Path::new("/home/me/proj/runs/abl/logs"),
            out: Some(Path::new("/scratch/out")),
        };
        let s = render(
            Path::new("/opt/crossomics"),
            Path::new("/home/me/proj/e.toml"),
            &[],
            2,
            &o,
            Some(&place),
        );
        assert!(s.contains("#SBATCH --array=0-1\n"), "{s}");
        assert!(!s.contains("--gres"), "{s}");
        assert!(s.contains("#SBATCH --chdir=/home/me/proj\n"), "{s}");
        assert!(
            s.contains("#SBATCH --output=/home/me/proj/runs/abl/logs/slurm-%A_%a.log\n"),
            "{s}"
        );
        assert!(s.ends_with(" --out /scratch/out\n"), "{s}");
    }

    #[test]
    fn job_ids_and_queue_states_parse() {
        assert_eq!(parse_job_id("42\n").unwrap(), "42");
        assert_eq!(parse_job_id("42;cluster\n").unwrap(), "42");
        assert!(parse_job_id("Submitted batch job 42\n").is_err());
        assert!(parse_job_id("").is_err());
        assert_eq!(
            summarize("RUNNING\nPENDING\nRUNNING\n"),
            "2 RUNNING, 1 PENDING"
        );
        assert_eq!(summarize(""), "");
    }
}
