//! `crossomics` CLI: Slurm: write a job-array script, or submit a sweep and follow it.

use std::path::PathBuf;

use anyhow::Result;

use super::table::print_table;
use crate::experiment;
use crate::rundir::{self};
use crate::slurm;

/// What each array task asks Slurm for.
#[derive(Debug, Clone, clap::Args)]
pub struct Resources {
    #[arg(long, default_value = "04:00:00")]
    pub time: String,
    #[arg(long, default_value_t = 4)]
    pub cpus: usize,
    #[arg(long, default_value = "16G")]
    pub mem: String,
    /// GPUs per task (adds `--gres=gpu:N`).
    #[arg(long, default_value_t = 0)]
    pub gpus: usize,
    #[arg(long)]
    pub partition: Option<String>,
}

impl Resources {
    /// The options of the job `job_name`.
    fn options(self, job_name: String) -> slurm::SlurmOptions {
        slurm::SlurmOptions {
            job_name,
            time: self.time,
            cpus: self.cpus,
            mem: self.mem,
            gpus: self.gpus,
            partition: self.partition,
        }
    }
}

/// Write a Slurm batch script that runs an experiment's sweep as a job array.
#[derive(Debug, clap::Args)]
pub struct SlurmArgs {
    pub config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Where to write the script (default: print it).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub resources: Resources,
}

impl SlurmArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            config,
            overrides,
            output,
            resources,
        } = self;
        let runs = experiment::plan(&config, &overrides)?;
        let opts = resources.options(runs[0].config.name.clone());
        let exe = std::env::current_exe()?;
        let script = slurm::script(&exe, &config, &overrides, runs.len(), &opts);
        match output {
            Some(path) => {
                rundir::write_atomic(&path, script.as_bytes())?;
                eprintln!(
                    "wrote {} ({} array tasks): sbatch {}",
                    path.display(),
                    runs.len(),
                    path.display()
                );
            }
            None => print!("{script}"),
        }
        Ok(())
    }
}

/// Submit an experiment's sweep to Slurm as a job array (one task per run): the
/// script goes to the experiment folder, `sbatch` submits it; collect the results with
/// `crossomics table`, or wait for them with `--wait`.
#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    /// The experiment file.
    #[arg(long = "slurm", value_name = "CONFIG")]
    pub config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Output directory (default: the config's `output.dir`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[command(flatten)]
    pub resources: Resources,
    /// Follow the job with `squeue` until every task has finished, then build the table.
    #[arg(long)]
    pub wait: bool,
}

impl SweepArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            config,
            overrides,
            out,
            resources,
            wait,
        } = self;
        let name = experiment::plan(&config, &overrides)?[0]
            .config
            .name
            .clone();
        let opts = resources.options(name);
        let exe = std::env::current_exe()?;
        let job = slurm::submit(&exe, &config, &overrides, out.as_deref(), &opts)?;
        let dirs: Vec<String> = job
            .experiment_dirs
            .iter()
            .map(|d| d.display().to_string())
            .collect();
        println!(
            "submitted job {} ({} array tasks, script {}, logs in {})",
            job.job_id,
            job.runs.len(),
            job.script.display(),
            job.logs.display()
        );
        if !wait {
            println!(
                "collect the results with: crossomics table {}",
                dirs.join(" ")
            );
            return Ok(());
        }
        job.wait(|states| eprintln!("job {}: {states}", job.job_id))?;
        for dir in &job.experiment_dirs {
            if let Err(e) = print_table(dir) {
                eprintln!("error: {e:#}");
            }
        }
        let missing = job.missing();
        if !missing.is_empty() {
            let logs: Vec<String> = missing
                .iter()
                .map(|&i| job.log(i).display().to_string())
                .collect();
            anyhow::bail!(
                "job {}: {} of {} runs did not finish (array indices {missing:?}); see {}",
                job.job_id,
                missing.len(),
                job.runs.len(),
                logs.join(", ")
            );
        }
        Ok(())
    }
}
