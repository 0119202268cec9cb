//! `crossomics` CLI: The web portal, its job processes, and dataset downloads.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// One portal job in a process of its own (started by `crossomics serve`, which
/// watches its memory and time): reads the job file, writes the results beside it.
#[derive(Debug, clap::Args)]
pub struct PortalJobArgs {
    /// The job description (JSON) the server wrote.
    pub job: PathBuf,
}

impl PortalJobArgs {
    pub fn run(self) -> Result<()> {
        let Self { job } = self;
        crate::serve::job_main(&job)
    }
}

/// Serve the web portal: upload single-cell data of one modality, download the other
/// predicted by the translation runs of a models folder (with none there, a default
/// model is trained once on the bundled sample).
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The one address to listen on (loopback by default: serving on another
    /// address needs a reverse proxy with TLS and authentication in front, see
    /// docs/portal.md, Security).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: std::net::SocketAddr,
    /// Folder of finished translation runs (searched 4 levels deep).
    #[arg(long, default_value = "models")]
    pub models: PathBuf,
    /// Folder for the jobs' uploads and results.
    #[arg(long, default_value = "portal-jobs")]
    pub work_dir: PathBuf,
    /// Largest upload (bytes, or with KiB/MiB/GiB).
    #[arg(long, default_value = "2GiB", value_parser = crate::limit_args::parse_size)]
    pub max_upload: u64,
    /// Jobs that may wait beyond those running; more are answered "busy".
    #[arg(long, default_value_t = 16)]
    pub queue: usize,
    /// Jobs computed at once.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Seconds a finished job's results stay downloadable.
    #[arg(long, default_value_t = 86_400)]
    pub ttl_seconds: u64,
    /// Another host name the portal answers to (NAME, any port, or NAME:PORT), beside
    /// the address it listens on and localhost at its port: the name users or a
    /// reverse proxy use. Repeatable.
    #[arg(long = "allowed-host", value_name = "NAME[:PORT]")]
    pub allowed_hosts: Vec<String>,
    /// Seconds a client has to send a request's headers (idle connections are
    /// closed after them too).
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().header_timeout.as_secs())]
    pub header_timeout_seconds: u64,
    /// Seconds an upload may send nothing (or a client read nothing of an answer)
    /// before it is given up.
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().body_idle_timeout.as_secs())]
    pub body_idle_timeout_seconds: u64,
    /// Connections open at once; more are answered 503 and closed.
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_connections)]
    pub max_connections: usize,
    /// Uploads received at once; they count with the jobs for "busy".
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_uploads_in_flight)]
    pub max_uploads_in_flight: usize,
    /// Files in one upload.
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_parts)]
    pub max_parts: usize,
    /// Bytes of one text form field (model, genome).
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().max_field_bytes)]
    pub max_field_bytes: usize,
    /// Seconds one job may compute; then it is stopped and fails.
    #[arg(long, default_value_t = crossomics_portal::PortalConfig::default().job_timeout.as_secs())]
    pub job_timeout_seconds: u64,
    /// Disk all job folders may use together: the oldest results are deleted to make
    /// room, and when that is not enough uploads are refused.
    #[arg(long, default_value = "20GiB", value_parser = crate::limit_args::parse_size)]
    pub disk_quota: u64,
    /// Memory one job's computation may use.
    #[arg(long, default_value = "4GiB", value_parser = crate::limit_args::parse_size)]
    pub job_memory: u64,
    /// Input limits (the portal's stricter defaults; see docs/portal.md).
    #[command(flatten)]
    pub limits: crate::limit_args::LimitArgs,
    /// Do not train the default model when the models folder holds none.
    #[arg(long)]
    pub no_default_models: bool,
    /// Exit when standard input closes (for a supervising process, e.g. tests).
    #[arg(long, hide = true)]
    pub stop_on_stdin_eof: bool,
}

impl ServeArgs {
    pub fn run(self) -> Result<()> {
        let Self {
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
        } = self;
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
}

/// Download a public paired dataset (resumable, checksums verified where published);
/// without a name, list the known datasets.
#[derive(Debug, clap::Args)]
pub struct FetchArgs {
    pub name: Option<String>,
    /// Parent folder; the files go to `<dir>/<name>/`.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
    /// Expected checksum of a file: `[FILE=]sha256:HEX` or `md5:HEX` (repeatable).
    #[arg(long = "checksum", value_name = "CHECKSUM")]
    pub checksums: Vec<String>,
    /// Download again even when a finished file is there.
    #[arg(long)]
    pub force: bool,
}

impl FetchArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            name,
            dir,
            checksums,
            force,
        } = self;
        fetch(name.as_deref(), &dir, &checksums, force)
    }
}

/// `crossomics serve`: the portal over the translation runs in `models`.
fn serve(config: crossomics_portal::PortalConfig, models: &Path, defaults: bool) -> Result<()> {
    use std::io::Write;
    let backend = crate::serve::TranslatorBackend::new(models)?;
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
