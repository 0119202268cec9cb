//! The `crossomics` command line: one module per command (its arguments and what it
//! runs), each a thin layer over the library modules. `main` parses [`Cli`] and calls
//! [`dispatch`].

mod apply;
mod check;
mod run;
mod serve;
mod simulate;
mod slurm;
mod table;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use apply::{EmbedArgs, FragmentArgs, InputArgs, TranslateArgs};
pub use check::CheckArgs;
pub use run::RunArgs;
pub use serve::{FetchArgs, PortalJobArgs, ServeArgs};
pub use simulate::SimulateArgs;
pub use slurm::{SlurmArgs, SweepArgs};
pub use table::TableArgs;

#[derive(Debug, Parser)]
#[command(
    name = "crossomics",
    version,
    about = "Paired single-cell multi-omics: integration, translation, benchmarks"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Train and evaluate every run an experiment file describes (its sweep expanded);
    /// print and save the tables.
    Run(RunArgs),
    /// Simulate paired RNA + ATAC counts calibrated to a real dataset, streamed to a
    /// plain-layout folder (cell_type and batch known; gene-peak links in links.tsv).
    Simulate(SimulateArgs),
    /// Write a Slurm batch script that runs an experiment's sweep as a job array.
    Slurm(SlurmArgs),
    /// Submit an experiment's sweep to Slurm as a job array (one task per run): the
    /// script goes to the experiment folder, `sbatch` submits it; collect the results with
    /// `crossomics table`, or wait for them with `--wait`.
    Sweep(SweepArgs),
    /// Validate an experiment file (every key and every model's parameters) and list the
    /// runs it expands to, without training.
    Check(CheckArgs),
    /// Aggregate the finished runs of an experiment folder (`runs/<name>`) into the
    /// benchmark table: mean ± std over seeds per method and variant.
    Table(TableArgs),
    /// Embed new data with a finished run's saved model: its fitted preprocessing is
    /// replayed on the data (genes matched by name, peaks by interval; missing features
    /// are zero and reported), and the latent means are written as h5ad (`obsm`).
    Embed(EmbedArgs),
    /// Predict the other modality of new cells with a finished translation run's saved
    /// model: genes matched by name or Ensembl id, peaks by genomic overlap; refused when
    /// the data covers too few of the model's features or is of another genome build.
    /// Writes h5ad (`X` the prediction, `obsm["X_latent"]` the embedding).
    Translate(TranslateArgs),
    /// One portal job in a process of its own (started by `crossomics serve`, which
    /// watches its memory and time): reads the job file, writes the results beside it.
    #[command(hide = true)]
    PortalJob(PortalJobArgs),
    /// Serve the web portal: upload single-cell data of one modality, download the other
    /// predicted by the translation runs of a models folder (with none there, a default
    /// model is trained once on the bundled sample).
    Serve(ServeArgs),
    /// Download a public paired dataset (resumable, checksums verified where published);
    /// without a name, list the known datasets.
    Fetch(FetchArgs),
}

/// Runs the command.
pub fn dispatch(cli: Cli) -> Result<()> {
    match cli.command {
        Cmd::Run(a) => a.run(),
        Cmd::Simulate(a) => a.run(),
        Cmd::Slurm(a) => a.run(),
        Cmd::Sweep(a) => a.run(),
        Cmd::Check(a) => a.run(),
        Cmd::Table(a) => a.run(),
        Cmd::Embed(a) => a.run(),
        Cmd::Translate(a) => a.run(),
        Cmd::PortalJob(a) => a.run(),
        Cmd::Serve(a) => a.run(),
        Cmd::Fetch(a) => a.run(),
    }
}
