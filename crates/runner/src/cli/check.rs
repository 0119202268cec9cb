//! `crossomics` CLI: Validate an experiment file without training.

use std::path::PathBuf;

use anyhow::Result;

use crate::experiment;
use crate::rundir::RunDir;

/// Validate an experiment file and list the runs it expands to, without training.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    pub config: PathBuf,
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
    /// Print the resolved config of every run.
    #[arg(long)]
    pub verbose: bool,
}

impl CheckArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            config,
            overrides,
            verbose,
        } = self;
        let runs = experiment::plan(&config, &overrides)?;
        for (i, r) in runs.iter().enumerate() {
            let resolved = toml::to_string(&r.config)?;
            let id = RunDir::for_config(&r.config)?.id;
            println!("run {}/{}: {id} {}", i + 1, runs.len(), r.variant);
            if verbose || runs.len() == 1 {
                println!("{resolved}");
            }
        }
        eprintln!("{}: valid, {} run(s)", config.display(), runs.len());
        Ok(())
    }
}
