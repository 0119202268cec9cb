//! `crossomics`: run experiments from TOML configs.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use crossomics_data::Peak;
use crossomics_data::pair::SingleModality;
use crossomics_limits::Limits;
use crossomics_runner::apply::SourceData;
use crossomics_runner::config::ExperimentConfig;
use crossomics_runner::experiment;
use crossomics_runner::rundir::{self, Meta, RunDir};
use crossomics_runner::{pipeline, slurm, table, translation};

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
        /// Runs of a sweep executed at once, each in its own process (seeded runs stay
        /// bit-reproducible: libtorch's random generator is per process).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Execute only the run with this 0-based index of the expanded sweep (what each
        /// worker and each Slurm array task does).
        #[arg(long)]
        run_index: Option<usize>,
    },
    /// Simulate paired RNA + ATAC counts calibrated to a real dataset, streamed to a
    /// plain-layout folder (cell_type and batch known; gene-peak links in links.tsv).
    Simulate {
        /// Output folder.
        out: PathBuf,
        /// Simulator parameters as TOML (`n_cells`, `n_genes`, `n_peaks`, `n_types`,
        /// `n_batches`, `seed`, `batch_effect`, `link_fraction`, ...); flags below override.
        #[arg(long)]
        params: Option<PathBuf>,
        #[arg(long)]
        cells: Option<usize>,
        #[arg(long)]
        genes: Option<usize>,
        #[arg(long)]
        peaks: Option<usize>,
        #[arg(long)]
        types: Option<usize>,
        #[arg(long)]
        batches: Option<usize>,
        #[arg(long)]
        seed: Option<u64>,
        /// Fit the calibration to this plain-layout folder (default: the bundled sample).
        #[arg(long)]
        calibrate_from: Option<PathBuf>,
        /// Cell-type column of the calibration data.
        #[arg(long, default_value = "cell_type")]
        type_column: String,
        /// Worker threads (0 = all cores); the counts do not depend on it.
        #[arg(long, default_value_t = 1)]
        threads: usize,
    },
    /// Write a Slurm batch script that runs an experiment's sweep as a job array.
    Slurm {
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Where to write the script (default: print it).
        #[arg(long)]
        output: Option<PathBuf>,
        #[arg(long, default_value = "04:00:00")]
        time: String,
        #[arg(long, default_value_t = 4)]
        cpus: usize,
        #[arg(long, default_value = "16G")]
        mem: String,
        /// GPUs per task (adds `--gres=gpu:N`).
        #[arg(long, default_value_t = 0)]
        gpus: usize,
        #[arg(long)]
        partition: Option<String>,
    },
    /// Submit an experiment's sweep to Slurm as a job array (one task per run): the
    /// script goes to the experiment folder, `sbatch` submits it; collect the results with
    /// `crossomics table`, or wait for them with `--wait`.
    Sweep {
        /// The experiment file.
        #[arg(long = "slurm", value_name = "CONFIG")]
        config: PathBuf,
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
        /// Output directory (default: the config's `output.dir`).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, default_value = "04:00:00")]
        time: String,
        #[arg(long, default_value_t = 4)]
        cpus: usize,
        #[arg(long, default_value = "16G")]
        mem: String,
        /// GPUs per task (adds `--gres=gpu:N`).
        #[arg(long, default_value_t = 0)]
        gpus: usize,
        #[arg(long)]
        partition: Option<String>,
        /// Follow the job with `squeue` until every task has finished, then build the table.
        #[arg(long)]
        wait: bool,
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
    /// Embed new data with a finished run's saved model: its fitted preprocessing is
    /// replayed on the data (genes matched by name, peaks by interval; missing features
    /// are zero and reported), and the latent means are written as h5ad (`obsm`).
    Embed {
        /// A finished run folder (config.resolved.toml, preprocessing.json,
        /// model.safetensors, model.json).
        run: PathBuf,
        /// The data: a plain-layout folder, a 10x `filtered_feature_bc_matrix.h5` or
        /// folder, an `.h5mu` file, or a TOML file with a `[dataset]` table (any format of
        /// the config schema). Or give `--fragments` instead.
        #[arg(
            long,
            required_unless_present = "fragments",
            conflicts_with = "fragments"
        )]
        data: Option<PathBuf>,
        #[command(flatten)]
        fragments: FragmentArgs,
        /// Output `.h5ad`.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        limits: crossomics_runner::limit_args::LimitArgs,
    },
    /// Predict the other modality of new cells with a finished translation run's saved
    /// model: genes matched by name or Ensembl id, peaks by genomic overlap; refused when
    /// the data covers too few of the model's features or is of another genome build.
    /// Writes h5ad (`X` the prediction, `obsm["X_latent"]` the embedding).
    Translate {
        /// A finished translation run folder (config.resolved.toml, preprocessing.json,
        /// model.json and the weights).
        run: PathBuf,
        /// The data: an `.h5ad` of the source modality, or a plain-layout folder, 10x
        /// `.h5` or matrix folder, `.h5mu` or TOML `[dataset]` file whose source modality
        /// is used. Or give `--fragments` instead (ATAC to RNA).
        #[arg(
            long,
            required_unless_present = "fragments",
            conflicts_with = "fragments"
        )]
        data: Option<PathBuf>,
        #[command(flatten)]
        fragments: FragmentArgs,
        /// `rna_to_atac` or `atac_to_rna` (default: the model's first direction).
        #[arg(long)]
        direction: Option<String>,
        /// The genome build of the data (`GRCh38`, `hg19`, `mm10`, `GRCm39`), checked against the model's.
        #[arg(long)]
        genome: Option<String>,
        /// Read this h5ad layer instead of `X` (raw counts are needed).
        #[arg(long)]
        layer: Option<String>,
        /// Refuse data covering fewer of the model's features (default: the run's
        /// `translation.min_coverage`).
        #[arg(long)]
        min_coverage: Option<f64>,
        /// Output `.h5ad`.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        limits: crossomics_runner::limit_args::LimitArgs,
    },
    /// One portal job in a process of its own (started by `crossomics serve`, which
    /// watches its memory and time): reads the job file, writes the results beside it.
    #[command(hide = true)]
    PortalJob {
        /// The job description (JSON) the server wrote.
        job: PathBuf,
    },
    /// Serve the web portal: upload single-cell data of one modality, download the other
    /// predicted by the translation runs of a models folder (with none there, a default
    /// model is trained once on the bundled sample).
    Serve {
        /// The one address to listen on (loopback by default: serving on another
        /// address needs a reverse proxy with TLS and authentication in front, see
        /// docs/portal.md, Security).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: std::net::SocketAddr,
        /// Folder of finished translation runs (searched 4 levels deep).
        #[arg(long, default_value = "models")]
        models: PathBuf,
        /// Folder for the jobs' uploads and results.
        #[arg(long, default_value = "portal-jobs")]
        work_dir: PathBuf,
        /// Largest upload (bytes, or with KiB/MiB/GiB).
        #[arg(long, default_value = "2GiB", value_parser = crossomics_runner::limit_args::parse_size)]
        max_upload: u64,
        /// Jobs that may wait beyond those running; more are answered "busy".
        #[arg(long, default_value_t = 16)]
        queue: usize,
        /// Jobs computed at once.
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Seconds a finished job's results stay downloadable.
        #[arg(long, default_value_t = 86_400)]
        ttl_seconds: u64,
        /// Another host name the portal answers to (NAME, any port, or NAME:PORT), beside
        /// the address it listens on and localhost at its port: the name users or a
        /// reverse proxy use. Repeatable.
        #[arg(long = "allowed-host", value_name = "NAME[:PORT]")]
        allowed_hosts: Vec<String>,
        /// Seconds a client has to send a request's headers (idle connections are
        /// closed after them too).
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().header_timeout.as_secs())]
        header_timeout_seconds: u64,
        /// Seconds an upload may send nothing (or a client read nothing of an answer)
        /// before it is given up.
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().body_idle_timeout.as_secs())]
        body_idle_timeout_seconds: u64,
        /// Connections open at once; more are answered 503 and closed.
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_connections)]
        max_connections: usize,
        /// Uploads received at once; they count with the jobs for "busy".
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_uploads_in_flight)]
        max_uploads_in_flight: usize,
        /// Files in one upload.
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_parts)]
        max_parts: usize,
        /// Bytes of one text form field (model, genome).
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_field_bytes)]
        max_field_bytes: usize,
        /// Seconds one job may compute; then it is stopped and fails.
        #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().job_timeout.as_secs())]
        job_timeout_seconds: u64,
        /// Disk all job folders may use together: the oldest results are deleted to make
        /// room, and when that is not enough uploads are refused.
        #[arg(long, default_value = "20GiB", value_parser = crossomics_runner::limit_args::parse_size)]
        disk_quota: u64,
        /// Memory one job's computation may use.
        #[arg(long, default_value = "4GiB", value_parser = crossomics_runner::limit_args::parse_size)]
        job_memory: u64,
        /// Input limits (the portal's stricter defaults; see docs/portal.md).
        #[command(flatten)]
        limits: crossomics_runner::limit_args::LimitArgs,
        /// Do not train the default model when the models folder holds none.
        #[arg(long)]
        no_default_models: bool,
        /// Exit when standard input closes (for a supervising process, e.g. tests).
        #[arg(long, hide = true)]
        stop_on_stdin_eof: bool,
    },
    /// Download a public paired dataset (resumable, checksums verified where published);
    /// without a name, list the known datasets.
    Fetch {
        name: Option<String>,
        /// Parent folder; the files go to `<dir>/<name>/`.
        #[arg(long, default_value = "data")]
        dir: PathBuf,
        /// Expected checksum of a file: `[FILE=]sha256:HEX` or `md5:HEX` (repeatable).
        #[arg(long = "checksum", value_name = "CHECKSUM")]
        checksums: Vec<String>,
        /// Download again even when a finished file is there.
        #[arg(long)]
        force: bool,
    },
}

/// ATAC data as a 10x fragments file, counted into peaks per cell barcode as it is read.
#[derive(Debug, Clone, clap::Args)]
struct FragmentArgs {
    /// A 10x ATAC `fragments.tsv.gz` (BGZF with its `.tbi` beside it, gzip or plain):
    /// counted into the model's own peaks (or `--peaks`) for the cells of `--barcodes`.
    #[arg(long, requires = "barcodes")]
    fragments: Option<PathBuf>,
    /// The cells: one barcode a line (10x `barcodes.tsv[.gz]`).
    #[arg(long, requires = "fragments")]
    barcodes: Option<PathBuf>,
    /// Count into the peaks of this BED file instead of the model's (features the model
    /// lacks are then matched by overlap, like any other data's peaks).
    #[arg(long, requires = "fragments")]
    peaks: Option<PathBuf>,
}

impl FragmentArgs {
    /// The ATAC counts of the fragments file for the `--barcodes` cells, in the `--peaks`
    /// or else in the model's own final peaks.
    fn read(
        &self,
        fitted: &crossomics_data::fitted::FittedPreprocessing,
        limits: &Limits,
    ) -> Result<SingleModality<Peak>> {
        use crossomics_data::fragments;
        let (Some(file), Some(barcodes)) = (&self.fragments, &self.barcodes) else {
            anyhow::bail!("--fragments needs --barcodes");
        };
        let peaks = match &self.peaks {
            Some(bed) => fragments::read_bed(bed, limits)?,
            None => fitted.peak_intervals()?,
        };
        let clock = Instant::now();
        let atac = fragments::count_atac(file, barcodes, peaks, limits)?;
        eprintln!(
            "counted {} into {} peaks for {} cells ({} non-zeros) in {:.2} s",
            file.display(),
            atac.features.len(),
            atac.cells.len(),
            atac.matrix.nnz(),
            clock.elapsed().as_secs_f64()
        );
        Ok(atac)
    }
}

/// Keeps freed memory in the process heap for reuse (glibc): a training step allocates
/// and frees tensors of tens of MB (a batch x peaks), which glibc otherwise serves from
/// fresh `mmap`s, so that every step pays page faults on new pages; that was a third of
/// the CPU time of a sci-CAR epoch (docs/performance.md). Set `CROSSOMICS_SYSTEM_MALLOC=1`
/// to keep glibc's defaults.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("CROSSOMICS_SYSTEM_MALLOC").is_some() {
        return;
    }
    // SAFETY: mallopt only changes glibc's allocation parameters; it is called once at
    // the start of main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_MAX, 0);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_allocator() {}

/// Turns HDF5's `flock` file locking off for this process (unless the user set
/// `HDF5_USE_FILE_LOCKING`). HDF5 opens files without close-on-exec, so a child process
/// spawned while a file is open (the portal's job workers) inherits its lock and holds
/// it until it exits: a later open of that file here then fails with `unable to lock
/// file`. Every file is written to a temporary name and renamed, so no reader ever sees
/// a file being written and the locks protect nothing.
#[allow(unsafe_code)]
fn no_hdf5_file_locks() {
    if std::env::var_os("HDF5_USE_FILE_LOCKING").is_none() {
        // SAFETY: called once at the start of main, before any other thread exists.
        unsafe { std::env::set_var("HDF5_USE_FILE_LOCKING", "FALSE") };
    }
}

fn main() {
    tune_allocator();
    no_hdf5_file_locks();
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
                if let Some(g) = &r.config.translation.genome {
                    g.parse::<crossomics_data::transfer::GenomeBuild>()
                        .map_err(|e| anyhow::anyhow!("translation.genome: {e}"))?;
                }
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
        Cmd::Run {
            config,
            overrides,
            out,
            force,
            workers,
            run_index,
        } => run_experiment(&config, &overrides, out, force, workers, run_index),
        Cmd::Slurm {
            config,
            overrides,
            output,
            time,
            cpus,
            mem,
            gpus,
            partition,
        } => {
            let runs = experiment::plan(&config, &overrides)?;
            let opts = slurm::SlurmOptions {
                job_name: runs[0].config.name.clone(),
                time,
                cpus,
                mem,
                gpus,
                partition,
            };
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
        Cmd::Sweep {
            config,
            overrides,
            out,
            time,
            cpus,
            mem,
            gpus,
            partition,
            wait,
        } => {
            let opts = slurm::SlurmOptions {
                job_name: experiment::plan(&config, &overrides)?[0]
                    .config
                    .name
                    .clone(),
                time,
                cpus,
                mem,
                gpus,
                partition,
            };
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
        Cmd::Table { dir } => print_table(&dir),
        Cmd::Embed {
            run,
            data,
            fragments,
            out,
            limits,
        } => embed(
            &run,
            data.as_deref(),
            &fragments,
            &out,
            &limits.apply(Limits::default()),
        ),
        Cmd::Translate {
            run,
            data,
            fragments,
            direction,
            genome,
            layer,
            min_coverage,
            out,
            limits,
        } => translate(
            &run,
            data.as_deref(),
            &fragments,
            direction.as_deref(),
            genome.as_deref(),
            layer.as_deref(),
            min_coverage,
            &out,
            &limits.apply(Limits::default()),
        ),
        Cmd::PortalJob { job } => crossomics_runner::serve::job_main(&job),
        Cmd::Fetch {
            name,
            dir,
            checksums,
            force,
        } => fetch(name.as_deref(), &dir, &checksums, force),
        Cmd::Serve {
            addr,
            models,
            work_dir,
            max_upload,
            queue,
            workers,
            ttl_seconds,
            allowed_hosts,
            header_timeout_seconds,
            body_idle_timeout_seconds,
            max_connections,
            max_uploads_in_flight,
            max_parts,
            max_field_bytes,
            job_timeout_seconds,
            disk_quota,
            job_memory,
            limits,
            no_default_models,
            stop_on_stdin_eof,
        } => {
            if stop_on_stdin_eof {
                std::thread::spawn(|| {
                    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                    std::process::exit(0);
                });
            }
            let secs = std::time::Duration::from_secs;
            let config = crossomics_portal::PortalConfig {
                addr,
                work_dir,
                max_upload_bytes: max_upload,
                limits: limits.apply(crossomics_limits::Limits::portal()),
                queue_capacity: queue,
                workers,
                job_ttl: secs(ttl_seconds),
                allowed_hosts,
                header_timeout: secs(header_timeout_seconds.max(1)),
                body_idle_timeout: secs(body_idle_timeout_seconds.max(1)),
                max_connections,
                max_uploads_in_flight,
                max_parts,
                max_field_bytes,
                job_timeout: secs(job_timeout_seconds),
                disk_quota_bytes: disk_quota,
                job_memory_bytes: job_memory,
            };
            serve(config, &models, !no_default_models)
        }
        Cmd::Simulate {
            out,
            params,
            cells,
            genes,
            peaks,
            types,
            batches,
            seed,
            calibrate_from,
            type_column,
            threads,
        } => {
            use crossomics_data::simulate::{
                Calibration, Simulator, SimulatorParams, WriteOptions,
            };
            let mut p: SimulatorParams = match &params {
                Some(path) => {
                    let text = std::fs::read_to_string(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    toml::from_str(&text).with_context(|| {
                        format!("{}: invalid simulator parameters", path.display())
                    })?
                }
                None => SimulatorParams::default(),
            };
            p.n_cells = cells.unwrap_or(p.n_cells);
            p.n_genes = genes.unwrap_or(p.n_genes);
            p.n_peaks = peaks.unwrap_or(p.n_peaks);
            p.n_types = types.unwrap_or(p.n_types);
            p.n_batches = batches.unwrap_or(p.n_batches);
            p.seed = seed.unwrap_or(p.seed);
            let calibration = match &calibrate_from {
                Some(dir) => Calibration::fit(
                    &crossomics_data::plain::read_dir(dir, &crossomics_limits::Limits::default())?,
                    Some(&type_column),
                )?,
                None => Calibration::bundled()?,
            };
            let sim = Simulator::new(&p, &calibration)?;
            let bar = indicatif::ProgressBar::new(p.n_cells as u64).with_style(
                indicatif::ProgressStyle::with_template(
                    "{elapsed_precise} [{bar:30}] {pos}/{len} cells ({per_sec}, eta {eta})",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            if !std::io::stderr().is_terminal() {
                bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
            }
            let options = WriteOptions {
                threads,
                ..WriteOptions::default()
            };
            let summary = sim.write_dir_with_progress(&out, &options, &mut |done, _| {
                bar.set_position(done as u64)
            })?;
            bar.finish_and_clear();
            println!(
                "simulated {} cells x {} genes x {} peaks ({} RNA and {} ATAC entries, {:.1} MB) in {}",
                summary.n_cells,
                p.n_genes,
                p.n_peaks,
                summary.rna_nnz,
                summary.atac_nnz,
                summary.bytes as f64 / 1e6,
                summary.dir.display()
            );
            Ok(())
        }
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

use crossomics_runner::progress::{PROGRESS_ENV, parse_progress, progress_line};

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

/// `losses.png` and UMAP layouts of the embedding coloured by cell label and batch.
/// `losses.png`: every training loss part and the validation loss per epoch.
fn loss_plot(
    cfg: &ExperimentConfig,
    run: &RunDir,
    h: &crossomics_translators::TrainHistory,
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

fn plots(
    cfg: &ExperimentConfig,
    run: &RunDir,
    outcome: &pipeline::Outcome,
    prep: &pipeline::Prepared,
) -> Result<()> {
    loss_plot(cfg, run, &outcome.history)?;

    let params = crossomics_plots::umap::UmapParams {
        seed: cfg.seed,
        ..Default::default()
    };
    let coords = crossomics_plots::umap::layout(outcome.embedding.view(), &params)?;
    // by label and batch when the data has them, and always by the Leiden clusters
    let leiden = pipeline::Labels {
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

/// `crossomics fetch`: one dataset into `<dir>/<name>/`, with a progress bar.
fn fetch(name: Option<&str>, dir: &Path, checksums: &[String], force: bool) -> Result<()> {
    let Some(name) = name else {
        print!("{}", crossomics_fetch::list());
        return Ok(());
    };
    let entry = crossomics_fetch::lookup(name)?;
    let mut opts = crossomics_fetch::FetchOptions::from_env();
    opts.force = force;
    for c in checksums {
        let (file, sum) = crossomics_fetch::parse_expected(entry, c)?;
        opts.expected.insert(file, sum);
    }
    println!("{}", crossomics_fetch::describe(entry));
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let mut progress = |p: &crossomics_fetch::Progress<'_>| {
        bar.set_length(p.total.unwrap_or(0));
        bar.set_position(p.done);
        bar.set_message(format!("{}/{} {}", p.file_index + 1, p.file_count, p.file));
    };
    let report = crossomics_fetch::fetch_entry(
        entry,
        &dir.join(entry.name.as_ref() as &str),
        &opts,
        Some(&mut progress),
    );
    bar.finish_and_clear();
    let report = report?;
    println!("{report}");
    Ok(())
}

/// Aggregates `dir/*/metrics.json` into `dir/table.{md,csv,parquet}` and prints it.
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
    let frame = table::aggregate_frame(&aggs)?;
    rundir::write_atomic(&dir.join("table.parquet"), &table::parquet_bytes(&frame)?)?;
    table_plot(&dir.join("table.png"), dir, &aggs)?;
    println!("\n{} ({} runs)\n\n{md}", dir.display(), entries.len());
    Ok(())
}

/// The dataset `--data` names: a plain or 10x matrix folder, a 10x `.h5`, an `.h5mu` file
/// or a TOML `[dataset]`.
fn dataset_at(path: &Path, limits: &Limits) -> Result<crossomics_data::PairedDataset> {
    use crossomics_data::config::DatasetConfig;
    let text_config = |text: String, base: &Path| -> Result<_> {
        let cfg: DatasetConfig = toml::from_str(&text)
            .with_context(|| format!("{}: not a dataset description", path.display()))?;
        cfg.load(base, limits)
            .with_context(|| format!("loading {}", path.display()))
    };
    let quoted = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    let tenx_folder = ["matrix.mtx", "matrix.mtx.gz"]
        .iter()
        .any(|m| path.join(m).is_file());
    if path.is_dir() && tenx_folder {
        return Ok(crossomics_data::tenx::read_mtx_dir(path, limits)?);
    }
    if path.is_file() && crossomics_data::tenx::is_tenx_h5(path, limits) {
        return Ok(crossomics_data::tenx::read_h5(path, limits)?);
    }
    if path.is_dir() {
        return text_config(
            format!("format = \"plain\"\npath = {}", quoted(path)),
            Path::new("."),
        );
    }
    match path.extension().and_then(|e| e.to_str()) {
        Some("h5mu") => text_config(
            format!("format = \"h5mu\"\npath = {}", quoted(path)),
            Path::new("."),
        ),
        Some("toml") => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("{}: not TOML", path.display()))?;
            let dataset = table
                .get("dataset")
                .with_context(|| format!("{}: no [dataset] table", path.display()))?;
            text_config(
                toml::to_string(dataset)?,
                path.parent().unwrap_or(Path::new(".")),
            )
        }
        _ => anyhow::bail!(
            "{}: expected a plain-layout or 10x matrix folder, a 10x .h5, an .h5mu file or a .toml with a [dataset] table",
            path.display()
        ),
    }
}

/// `crossomics serve`: the portal over the translation runs in `models`.
fn serve(config: crossomics_portal::PortalConfig, models: &Path, defaults: bool) -> Result<()> {
    use std::io::Write;
    let backend = crossomics_runner::serve::TranslatorBackend::new(models)?;
    if defaults {
        backend.train_defaults_if_empty(
            std::env::current_exe().context("locating the crossomics binary")?,
        )?;
    }
    let running = crossomics_portal::spawn(config, backend)
        .context("starting the portal (is the address in use?)")?;
    // the first line of stdout names the address (tests read it when given port 0)
    println!("crossomics portal listening on http://{}", running.addr);
    std::io::stdout().flush()?;
    running.wait().context("the portal stopped")
}

/// `crossomics translate`: a saved translator's prediction of new data's other modality.
#[allow(clippy::too_many_arguments)] // one per command-line option
fn translate(
    run_dir: &Path,
    data: Option<&Path>,
    fragments: &FragmentArgs,
    direction: Option<&str>,
    genome: Option<&str>,
    layer: Option<&str>,
    min_coverage: Option<f64>,
    out: &Path,
    limits: &Limits,
) -> Result<()> {
    use crossomics_runner::apply;
    let saved = apply::SavedTranslator::load(run_dir)?;
    let direction = match direction {
        Some(d) => toml::Value::String(d.to_string())
            .try_into::<crossomics_translators::Direction>()
            .map_err(|_| anyhow::anyhow!("--direction {d}: expected rna_to_atac or atac_to_rna"))?,
        // fragments are ATAC data
        None if fragments.fragments.is_some() => crossomics_translators::Direction::AtacToRna,
        None => *saved
            .directions()
            .first()
            .context("the run lists no translation direction")?,
    };
    let declared = genome
        .map(str::parse::<crossomics_data::transfer::GenomeBuild>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--genome: {e}"))?;
    let clock = Instant::now();
    let (source, data) = match data {
        Some(data) => (
            apply::read_source(
                data,
                apply::source_modality(direction),
                layer,
                limits,
                |p| dataset_at(p, limits),
            )?,
            data,
        ),
        None => {
            anyhow::ensure!(
                direction == crossomics_translators::Direction::AtacToRna,
                "--fragments is ATAC data: it translates with --direction atac_to_rna, which {} {}",
                run_dir.display(),
                if saved
                    .directions()
                    .contains(&crossomics_translators::Direction::AtacToRna)
                {
                    "has"
                } else {
                    "lacks"
                }
            );
            let file = fragments.fragments.as_deref().expect("clap requires one");
            (
                SourceData::Atac(fragments.read(&saved.fitted, limits)?),
                file,
            )
        }
    };
    let read_s = clock.elapsed().as_secs_f64();
    let t = saved.translate(&source, direction, declared, min_coverage, limits)?;
    let translate_s = clock.elapsed().as_secs_f64() - read_s;
    let c = &t.coverage;
    eprintln!(
        "coverage: {} of the model's {} {} {} found in {} ({:.1}%)",
        c.found,
        c.total,
        c.modality,
        c.modality.features(),
        data.display(),
        100.0 * c.fraction()
    );
    let written = apply::write_h5ad(out, &t)?;
    let total_s = clock.elapsed().as_secs_f64();
    eprintln!(
        "{} cells in {total_s:.2} s ({:.0} cells/s): read {read_s:.2} s, preprocess + translate {translate_s:.2} s, write {:.2} s",
        t.cells.len(),
        t.cells.len() as f64 / total_s.max(1e-9),
        total_s - read_s - translate_s
    );
    for f in written {
        println!(
            "wrote {} ({} cells x {} {})",
            f.display(),
            t.cells.len(),
            t.features.len(),
            match direction {
                crossomics_translators::Direction::RnaToAtac => "peaks: probabilities",
                crossomics_translators::Direction::AtacToRna => "genes",
            }
        );
    }
    Ok(())
}

/// `crossomics embed`: a saved model's latent means of new data.
fn embed(
    run_dir: &Path,
    data: Option<&Path>,
    fragments: &FragmentArgs,
    out: &Path,
    limits: &Limits,
) -> Result<()> {
    use crossomics_data::fitted::FittedPreprocessing;
    use crossomics_translators::sailerx::{RnaInput, SailerxInput};
    let file = |name: &str| -> Result<PathBuf> {
        let p = run_dir.join(name);
        anyhow::ensure!(
            p.is_file(),
            "{}: missing {name} (is this a finished run folder saved with output.checkpoint = true?)",
            run_dir.display()
        );
        Ok(p)
    };
    let cfg = crossomics_runner::config::parse(
        &std::fs::read_to_string(file("config.resolved.toml")?)?,
        &file("config.resolved.toml")?.display().to_string(),
    )?;
    let fitted = FittedPreprocessing::load(&file("preprocessing.json")?)?;
    let dims: pipeline::ModelDims = serde_json::from_str(&std::fs::read_to_string(file(
        "model.json",
    )?)?)
    .with_context(|| format!("{}: not a model.json", run_dir.join("model.json").display()))?;
    let (dataset, data) = match data {
        Some(data) => (dataset_at(data, limits)?, data),
        None => {
            anyhow::ensure!(
                !cfg.model.sailerx().is_some_and(|m| m.symmetric),
                "{}: a symmetric SAILERX model embeds cells through their RNA; --fragments gives only ATAC",
                run_dir.display()
            );
            let atac = fragments.read(&fitted, limits)?;
            let n = atac.cells.len();
            // no RNA: one placeholder gene that matches none of the model's (all zero)
            let empty =
                crossomics_data::Csr::try_from_csr_data(n, 1, vec![0; n + 1], vec![], vec![])
                    .expect("an empty CSR matrix is valid");
            let file = fragments.fragments.as_deref().expect("clap requires one");
            let name = file.display().to_string();
            (
                crossomics_data::PairedDataset::new(
                    name,
                    empty,
                    atac.matrix,
                    atac.cells,
                    vec!["(no RNA: ATAC fragments only)".to_string()],
                    atac.features,
                )?,
                file,
            )
        }
    };
    // cells given by their fragments have no RNA: the RNA steps (and the RNA side of
    // cell QC) are skipped for them, as for a single-modality upload to a translator
    let t = if fragments.fragments.is_some() {
        fitted.apply_one(&dataset, crossomics_data::transfer::Modality::Atac)
    } else {
        fitted.apply(&dataset)
    }
    .with_context(|| format!("preprocessing {} as the run did", data.display()))?;
    let c = &t.coverage;
    eprintln!(
        "coverage: {} of {} model genes and {} of {} model peaks found in {} (missing ones are zero)",
        c.genes_found,
        c.genes_total,
        c.peaks_found,
        c.peaks_total,
        data.display()
    );
    let peaks: Vec<String> = fitted
        .peak_intervals()
        .with_context(|| run_dir.join("preprocessing.json").display().to_string())?
        .into_iter()
        .map(|p| p.chrom)
        .collect();
    let Some(model_cfg) = cfg.model.sailerx() else {
        anyhow::bail!(
            "{}: `crossomics embed` embeds with a SAILERX model, not `{}` (use `crossomics translate`)",
            run_dir.display(),
            cfg.model.kind()
        );
    };
    let device = cfg.training.device.resolve()?;
    let mut model = pipeline::build_model(model_cfg, &dims, &peaks, device)?;
    model.load(&file("model.safetensors")?)?;
    let n = t.dataset.n_cells();
    // the encoders read only the peaks (and the RNA values): the rest is unused here
    let pca = ndarray::Array2::<f32>::zeros((n, dims.n_pcs));
    let cov = ndarray::Array2::<f32>::zeros((n, 0));
    let weights = vec![1.0f32; n];
    let input = SailerxInput {
        atac: &t.atac,
        rna_pca: pca.view(),
        covariates: cov.view(),
        cell_weights: &weights,
        rna: model_cfg.symmetric.then(|| RnaInput {
            values: &t.rna,
            counts: &t.dataset.rna,
            covariates: cov.view(),
        }),
    };
    let cells: Vec<usize> = (0..n).collect();
    let embedding = model.embed(&input, &cells)?;
    let clusters = pipeline::leiden_clusters(embedding.view(), cfg.seed)?;
    let obs = t.dataset.cells.clone().with_column(
        "leiden",
        clusters.labels.iter().map(ToString::to_string).collect(),
    )?;
    let key = format!("X_{}", cfg.model.kind());
    crossomics_data::h5ad::write(out, None, &obs, &[], &[(key.as_str(), embedding.view())])?;
    println!(
        "{} cells embedded ({} dimensions) into {} (obsm[\"{key}\"]; {} Leiden clusters in obs[\"leiden\"])",
        n,
        embedding.ncols(),
        out.display(),
        clusters.n_clusters
    );
    Ok(())
}

/// `table.png`: the aggregated table as bars (mean, with mean ± std over seeds).
fn table_plot(path: &Path, dir: &Path, aggs: &[table::Aggregate]) -> Result<()> {
    let mut metrics: Vec<String> = Vec::new();
    for a in aggs {
        for (m, _, _) in &a.metrics {
            if !metrics.contains(m) {
                metrics.push(m.clone());
            }
        }
    }
    let mut rows: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for a in aggs {
        let values: Vec<(f64, f64)> = metrics
            .iter()
            .map(|m| {
                a.metrics
                    .iter()
                    .find(|(k, _, _)| k == m)
                    .map_or((f64::NAN, f64::NAN), |(_, mean, std)| (*mean, *std))
            })
            .collect();
        // an input baseline scores the same in every model variant: draw it once
        let same = |(m, v): &(String, Vec<(f64, f64)>)| m.starts_with(&a.method) && *v == values;
        if a.method.ends_with("(input)") && rows.iter().any(same) {
            continue;
        }
        let first_input =
            a.method.ends_with("(input)") && !rows.iter().any(|(m, _)| m.starts_with(&a.method));
        let label = if first_input {
            a.method.clone()
        } else {
            plot_label(&a.method, &a.variant)
        };
        rows.push((label, values));
    }
    let title = dir
        .file_name()
        .map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into());
    crossomics_plots::metric_bars(path, &title, &metrics, &rows)
        .with_context(|| format!("drawing {}", path.display()))
}

/// `method (value, value, ...)`: a variant's swept values without their keys, so that the
/// label fits beside a bar.
fn plot_label(method: &str, variant: &str) -> String {
    if variant.is_empty() {
        return method.to_string();
    }
    let values: Vec<&str> = variant
        .split(',')
        .map(|kv| kv.rsplit('=').next().unwrap_or(kv).trim_matches('"'))
        .collect();
    format!("{method} ({})", values.join(", "))
}

/// The embedding as AnnData for scanpy users: the cells' metadata plus `split` and
/// `leiden` (the embedding's Leiden clusters, to annotate) columns in `obs`, the model's latent means in `obsm["X_<model>"]` and the RNA PCA input in
/// `obsm["X_rna_pca"]`; no `X`.
fn write_embedding_h5ad(
    path: &Path,
    cfg: &ExperimentConfig,
    prep: &pipeline::Prepared,
    outcome: &pipeline::Outcome,
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

fn run(cfg: &ExperimentConfig, variant: &str, base: &Path, force: bool) -> Result<()> {
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
    let prep = pipeline::prepare(cfg, base)?;
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
    let mut observer = |r: &crossomics_translators::EpochRecord| {
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
    let (rows, device, train_seconds) = if cfg.is_translation() {
        let outcome = translation::train_and_evaluate(cfg, &prep, &mut observer);
        bar.finish_and_clear();
        let outcome = outcome?;
        note(format!(
            "fitted {} on {} in {:.1} s (best epoch {:?}, stopped early: {})",
            cfg.model.kind(),
            outcome.device,
            outcome.train_seconds,
            outcome.history.best_epoch,
            outcome.history.stopped_early
        ));
        if cfg.output.plots && !outcome.history.epochs.is_empty() {
            loss_plot(cfg, run, &outcome.history)?;
        }
        run.write("log.txt", log.borrow().as_bytes())?;
        run.write("losses.csv", table::losses_csv(&outcome.history))?;
        translation::write_predictions(&run.work_dir, &prep, &outcome)?;
        run.write_json("split.json", &outcome.split)?;
        prep.fitted.save(&run.path("preprocessing.json"))?;
        if cfg.output.checkpoint {
            outcome.model.save(&run.work_dir)?;
            run.write_json("model.json", &outcome.dims)?;
        }
        (outcome.rows, outcome.device, outcome.train_seconds)
    } else {
        let outcome = pipeline::train_and_evaluate(cfg, &prep, &mut observer);
        bar.finish_and_clear();
        let outcome = outcome?;
        note(format!(
            "trained on {} in {:.1} s (best epoch {:?}, stopped early: {})",
            outcome.device,
            outcome.train_seconds,
            outcome.history.best_epoch,
            outcome.history.stopped_early
        ));

        if cfg.output.plots {
            plots(cfg, run, &outcome, &prep)?;
        }
        run.write("log.txt", log.borrow().as_bytes())?;
        run.write("losses.csv", table::losses_csv(&outcome.history))?;
        ndarray_npy::write_npy(run.path("embedding.npy"), &outcome.embedding)
            .context("writing embedding.npy")?;
        write_embedding_h5ad(&run.path("embedding.h5ad"), cfg, &prep, &outcome)?;
        run.write_json("split.json", &outcome.split)?;
        prep.fitted.save(&run.path("preprocessing.json"))?;
        if cfg.output.checkpoint {
            outcome.model.save(&run.path("model.safetensors"))?;
            run.write_json("model.json", &outcome.dims)?;
        }
        (outcome.rows, outcome.device, outcome.train_seconds)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plot_labels_keep_the_swept_values() {
        assert_eq!(plot_label("sailerx", ""), "sailerx");
        assert_eq!(
            plot_label(
                "sailerx",
                "alignment=\"hard\",alignment_weight=100.0,symmetric=false"
            ),
            "sailerx (hard, 100.0, false)"
        );
    }

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
