//! The portal's backend (`crossomics serve`): the saved translation runs of a models
//! folder, applied to uploads as `crossomics translate` applies them
//! ([`apply::SavedTranslator`]), with the results the job page offers: the prediction as
//! h5ad and as a MatrixMarket folder (zip), a UMAP picture of the cells' latent
//! embedding, summary statistics.
//!
//! With no model in the folder it trains the default one (`configs/portal/default.toml`,
//! carried in the binary: BABEL on the bundled BMMC sample, both directions) once, in a
//! child `crossomics run` whose epochs show on the page.

use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use crossomics_data::transfer::{GenomeBuild, Modality};
use crossomics_limits::Limits;
use crossomics_models::{Direction, Prediction};
use crossomics_portal::{
    Backend, BackendStatus, Coverage, FeatureMean, Input, ModelInfo, PredictOutput, PredictRequest,
    ResultFile, Stage, Summary,
};
use serde::{Deserialize, Serialize};

use crate::apply::{self, SavedTranslator, Single, Translated};
use crate::progress::{PROGRESS_ENV, parse_progress};
use crate::translation::Latent;

/// The default model's config, as the binary carries it.
pub const DEFAULT_CONFIG: &str = include_str!("../../../configs/portal/default.toml");

/// Cells drawn in the embedding picture at most (a UMAP of more takes long).
const PICTURE_CELLS: usize = 3000;

struct Loaded {
    /// the run folder (a job process loads the model from here)
    dir: PathBuf,
    infos: Vec<(ModelInfo, Direction)>,
}

/// Saved translators served to the portal.
pub struct TranslatorBackend {
    models_dir: PathBuf,
    loaded: RwLock<Vec<Arc<Loaded>>>,
    /// set while the default model trains, or when its training failed
    note: Mutex<Option<String>>,
    defaults: AtomicBool,
    device: String,
    /// the `crossomics` binary that runs each job in a process of its own
    exe: PathBuf,
}

impl std::fmt::Debug for TranslatorBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TranslatorBackend")
            .field("models_dir", &self.models_dir)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn unpoison<T>(r: std::result::Result<T, PoisonError<T>>) -> T {
    r.unwrap_or_else(PoisonError::into_inner)
}

/// Letters, digits, `-`, `_`, `.` only.
fn slug(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// Finished translation runs under `root` (folders with `model.json`), at most 4 deep.
fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        if d.join("model.json").is_file() && d.join("config.resolved.toml").is_file() {
            found.push(d);
            continue;
        }
        if depth >= 4 {
            continue;
        }
        if let Ok(rd) = std::fs::read_dir(&d) {
            for e in rd.flatten() {
                let name = e.file_name();
                let hidden = name.to_string_lossy().starts_with('.');
                if !hidden && e.file_type().is_ok_and(|t| t.is_dir()) {
                    stack.push((e.path(), depth + 1));
                }
            }
        }
    }
    found.sort();
    found
}

fn describe(dir: &Path, saved: &SavedTranslator) -> Vec<(ModelInfo, Direction)> {
    let cfg = &saved.config;
    let run_id = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let rows: Vec<crate::table::Row> = std::fs::read_to_string(dir.join("metrics.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    let train_cells = std::fs::read_to_string(dir.join("split.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<crossomics_data::split::Split>(&t).ok())
        .map(|s| s.train.len());
    let dataset = rows
        .first()
        .map(|r| r.dataset.clone())
        .unwrap_or_else(|| cfg.name.clone());
    let test_cells = rows.first().map(|r| r.cells);
    let mut trained_on = dataset;
    if let Some(n) = train_cells {
        trained_on.push_str(&format!(", {n} training cells"));
    }
    if let Some(n) = test_cells {
        trained_on.push_str(&format!(", scored on {n} held-out cells"));
    }
    let keep = |d: Direction| -> &'static [&'static str] {
        match d {
            Direction::RnaToAtac => &["auroc", "auprc", "rmse_atac"],
            Direction::AtacToRna => &["pearson", "spearman", "rmse_rna"],
        }
    };
    saved
        .directions()
        .iter()
        .map(|&d| {
            let metrics = rows
                .iter()
                .find(|r| r.method.ends_with(d.arrow()))
                .map(|r| {
                    r.metrics
                        .iter()
                        .filter(|(k, v)| keep(d).contains(&k.as_str()) && v.is_finite())
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            let (source, target) = (apply::source_modality(d), apply::target_modality(d));
            let n_features = |m: Modality| match m {
                Modality::Rna => saved.fitted.genes.len(),
                Modality::Atac => saved.fitted.peaks.len(),
            };
            let info = ModelInfo {
                id: slug(&format!("{}-{run_id}-{}", cfg.name, d.as_str())),
                name: format!("{} {d} ({})", cfg.model.kind(), cfg.name),
                direction: d.as_str().to_string(),
                source: source.to_string(),
                target: target.to_string(),
                genome: cfg.translation.genome.clone(),
                trained_on: trained_on.clone(),
                kind: cfg.model.kind().to_string(),
                input_features: n_features(source),
                output_features: n_features(target),
                metrics,
            };
            (info, d)
        })
        .collect()
}

impl TranslatorBackend {
    /// Serves the translation runs under `models_dir` (which may not exist yet).
    pub fn new(models_dir: &Path) -> Result<Arc<Self>> {
        // as the saved runs resolve `training.device = "auto"`
        let device = match crossomics_models::DeviceChoice::Auto.resolve()? {
            tch::Device::Cpu => "cpu".to_string(),
            tch::Device::Cuda(i) => format!("cuda:{i} (GPU)"),
            other => format!("{other:?}"),
        };
        let b = Arc::new(Self {
            models_dir: models_dir.to_path_buf(),
            loaded: RwLock::new(Vec::new()),
            note: Mutex::new(None),
            defaults: AtomicBool::new(false),
            device,
            exe: std::env::current_exe().context("locating the crossomics binary")?,
        });
        b.rescan();
        Ok(b)
    }

    /// Loads every translation run in the models folder; returns how many.
    pub fn rescan(&self) -> usize {
        let mut loaded = Vec::new();
        for dir in run_dirs(&self.models_dir) {
            match SavedTranslator::load(&dir) {
                Ok(saved) => {
                    let infos = describe(&dir, &saved);
                    loaded.push(Arc::new(Loaded { dir, infos }));
                }
                Err(e) => tracing::warn!("skipping {}: {e:#}", dir.display()),
            }
        }
        let n = loaded.len();
        *unpoison(self.loaded.write()) = loaded;
        n
    }

    /// Trains the default model into `<models_dir>/` in a child `exe run`, when the
    /// folder holds no model; returns at once (the page shows the progress).
    pub fn train_defaults_if_empty(self: &Arc<Self>, exe: PathBuf) -> Result<()> {
        if !unpoison(self.loaded.read()).is_empty() {
            return Ok(());
        }
        std::fs::create_dir_all(&self.models_dir)
            .with_context(|| format!("creating {}", self.models_dir.display()))?;
        let cfg_path = self.models_dir.join("portal_default.toml");
        crate::rundir::write_atomic(&cfg_path, DEFAULT_CONFIG.as_bytes())?;
        self.defaults.store(true, Ordering::Relaxed);
        *unpoison(self.note.lock()) =
            Some("training the default model (BABEL on the bundled BMMC sample): starting".into());
        let me = Arc::clone(self);
        std::thread::Builder::new().name("default-models".into()).spawn(move || {
            let result = me.train_child(&exe, &cfg_path);
            let note = match result {
                Ok(()) if me.rescan() > 0 => None,
                Ok(()) => Some("training the default model finished, but no model could be loaded (see the server's log)".to_string()),
                Err(e) => Some(format!("training the default model failed: {e:#}")),
            };
            if let Some(n) = &note {
                tracing::error!("{n}");
            }
            *unpoison(me.note.lock()) = note;
        })?;
        Ok(())
    }

    fn train_child(&self, exe: &Path, cfg_path: &Path) -> Result<()> {
        let mut child = std::process::Command::new(exe)
            .arg("run")
            .arg(cfg_path)
            .arg("--out")
            .arg(&self.models_dir)
            .env(PROGRESS_ENV, "1")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {}", exe.display()))?;
        let mut tail: Vec<String> = Vec::new();
        if let Some(err) = child.stderr.take() {
            for line in std::io::BufReader::new(err).lines().map_while(|l| l.ok()) {
                match parse_progress(&line) {
                    Some((pos, total, msg)) => {
                        *unpoison(self.note.lock()) = Some(format!(
                            "training the default model (BABEL on the bundled BMMC sample): epoch {pos}/{total}, {msg}"
                        ));
                    }
                    None => {
                        tail.push(line);
                        if tail.len() > 8 {
                            tail.remove(0);
                        }
                    }
                }
            }
        }
        let status = child.wait()?;
        anyhow::ensure!(
            status.success(),
            "`crossomics run` exited with {status}: {}",
            tail.join(" | ")
        );
        Ok(())
    }

    /// The loaded run, direction and model kind of a model id.
    fn find(&self, id: &str) -> Option<(Arc<Loaded>, Direction, String)> {
        unpoison(self.loaded.read()).iter().find_map(|l| {
            l.infos
                .iter()
                .find(|(i, _)| i.id == id)
                .map(|(i, d)| (Arc::clone(l), *d, i.kind.clone()))
        })
    }

    /// Runs one job in a child `crossomics portal-job` and watches it: a crash, an
    /// abort or running out of memory in the readers or the model ends that process, not
    /// the server, and the job fails with the reason.
    fn run(&self, r: &PredictRequest, stage: &dyn Fn(Stage)) -> Result<PredictOutput> {
        let (loaded, direction, kind) = self
            .find(&r.model_id)
            .with_context(|| format!("unknown model `{}`", r.model_id))?;
        let job = JobFile {
            run_dir: loaded.dir.clone(),
            direction,
            kind,
            input: match &r.input {
                Input::Hdf5(p) => JobInput::Hdf5(p.clone()),
                Input::MatrixMarketDir(d) => JobInput::MatrixMarketDir(d.clone()),
                Input::PlainDir(d) => JobInput::PlainDir(d.clone()),
                Input::Fragments {
                    fragments,
                    barcodes,
                } => JobInput::Fragments {
                    fragments: fragments.clone(),
                    barcodes: barcodes.clone(),
                },
            },
            genome: r.genome.clone(),
            out_dir: r.out_dir.clone(),
            limits: r.limits,
        };
        let job_path = r.out_dir.join(JOB_FILE);
        crate::rundir::write_atomic(&job_path, serde_json::to_string_pretty(&job)?.as_bytes())?;
        run_child(
            &self.exe,
            &job_path,
            r.memory_limit_bytes,
            r.deadline,
            stage,
        )?;
        let result = r.out_dir.join(RESULT_FILE);
        let text = std::fs::read_to_string(&result)
            .with_context(|| "the job process ended without writing its results")?;
        let _ = std::fs::remove_file(&job_path);
        let _ = std::fs::remove_file(&result);
        serde_json::from_str(&text).context("the job process's results")
    }
}

/// The file a job process reads (in the job's folder).
const JOB_FILE: &str = "job.json";
/// What a job process writes when it succeeds.
const RESULT_FILE: &str = "result.json";
/// What a job process writes when it fails: the reason, for the user.
const ERROR_FILE: &str = "error.txt";
/// The stage lines a job process prints on its standard output.
const STAGE_PREFIX: &str = "crossomics-stage: ";

/// What the server hands a job process.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobFile {
    run_dir: PathBuf,
    direction: Direction,
    kind: String,
    input: JobInput,
    genome: Option<String>,
    out_dir: PathBuf,
    limits: Limits,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum JobInput {
    Hdf5(PathBuf),
    MatrixMarketDir(PathBuf),
    PlainDir(PathBuf),
    Fragments {
        fragments: PathBuf,
        barcodes: PathBuf,
    },
}

/// Starts `exe portal-job JOB` and waits for it, forwarding its stages; kills it when its
/// resident memory passes `memory_bytes` or it is still running at `deadline`.
fn run_child(
    exe: &Path,
    job: &Path,
    memory_bytes: u64,
    deadline: Option<Instant>,
    stage: &dyn Fn(Stage),
) -> Result<()> {
    let out_dir = job.parent().unwrap_or(Path::new("."));
    let mut child = std::process::Command::new(exe)
        .arg("portal-job")
        .arg(job)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .with_context(|| format!("starting a job process ({})", exe.display()))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let stdout = child.stdout.take();
    let reader = std::thread::spawn(move || {
        if let Some(out) = stdout {
            // a line is a stage name; bounded, whatever the process prints
            for line in std::io::BufReader::new(out.take(1 << 20))
                .lines()
                .map_while(|l| l.ok())
            {
                if let Some(s) = line.strip_prefix(STAGE_PREFIX) {
                    let _ = tx.send(s.trim().to_string());
                }
            }
        }
    });
    let started = Instant::now();
    let mut peak = 0u64;
    let stopped = loop {
        while let Ok(s) = rx.try_recv() {
            match s.as_str() {
                "preprocessing" => stage(Stage::Preprocessing),
                "predicting" => stage(Stage::Predicting),
                _ => {}
            }
        }
        if let Some(status) = child.try_wait()? {
            break Ok(status);
        }
        if let Some(rss) = resident_bytes(child.id()) {
            peak = peak.max(rss);
            if rss > memory_bytes {
                break Err(format!(
                    "the job was stopped: it needed more than {} of memory (the server's job memory limit, `crossomics serve --job-memory`); try fewer cells per upload",
                    crossomics_portal::human_bytes(memory_bytes)
                ));
            }
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            break Err(format!(
                "the job was stopped after {} s (the server's job time limit, `crossomics serve --job-timeout-seconds`); try fewer cells per upload",
                started.elapsed().as_secs()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = match stopped {
        Ok(status) => status,
        Err(reason) => {
            let _ = child.kill();
            let _ = child.wait();
            let _ = reader.join();
            anyhow::bail!(reason);
        }
    };
    let _ = reader.join();
    while let Ok(s) = rx.try_recv() {
        if s == "predicting" {
            stage(Stage::Predicting);
        }
    }
    tracing::debug!("job process peak resident memory {peak} bytes");
    if status.success() {
        return Ok(());
    }
    // the job's own reason, when it could write one (bounded: the file is the job's)
    let mut reason = String::new();
    if let Ok(f) = std::fs::File::open(out_dir.join(ERROR_FILE)) {
        let _ = f.take(16 << 10).read_to_string(&mut reason);
    }
    let _ = std::fs::remove_file(out_dir.join(ERROR_FILE));
    if !reason.trim().is_empty() {
        anyhow::bail!("{}", reason.trim());
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            anyhow::bail!(
                "the job process crashed (signal {signal}) while reading the upload or predicting; the file may be malformed"
            );
        }
    }
    anyhow::bail!("the job process failed ({status}) without saying why")
}

/// The resident set of process `pid` in bytes (Linux `/proc`); `None` elsewhere.
fn resident_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `crossomics portal-job JOB`: one job, in the process the server started for it.
/// Writes `result.json` beside the job file, or `error.txt` with the reason.
pub fn job_main(job_path: &Path) -> Result<()> {
    let dir = job_path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let result = (|| -> Result<PredictOutput> {
        let text = std::fs::read_to_string(job_path)
            .with_context(|| format!("reading {}", job_path.display()))?;
        let job: JobFile = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a job file", job_path.display()))?;
        let say = |s: &str| {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{STAGE_PREFIX}{s}");
            let _ = out.flush();
        };
        say("preprocessing");
        let saved = SavedTranslator::load(&job.run_dir)?;
        let modality = apply::source_modality(job.direction);
        let source = read_upload(&job.input, modality, &saved, &job.limits)?;
        let declared = job
            .genome
            .as_deref()
            .map(str::parse::<GenomeBuild>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("genome: {e}"))?;
        say("predicting");
        let t = saved.translate(&source, job.direction, declared, None, &job.limits)?;
        write_results(&job.out_dir, &t, &job.kind)
    })();
    match result {
        Ok(out) => crate::rundir::write_atomic(
            &dir.join(RESULT_FILE),
            serde_json::to_string(&out)?.as_bytes(),
        ),
        Err(e) => {
            let _ = crate::rundir::write_atomic(&dir.join(ERROR_FILE), format!("{e:#}").as_bytes());
            Err(e)
        }
    }
}

/// One modality of an upload, whatever the container: a fragments file is counted into
/// the model's peaks; anything else is read by the input registry's upload formats (none
/// of which reads a file outside the upload).
fn read_upload(
    input: &JobInput,
    modality: Modality,
    saved: &SavedTranslator,
    limits: &Limits,
) -> Result<Single> {
    let path = match input {
        JobInput::Fragments {
            fragments,
            barcodes,
        } => {
            anyhow::ensure!(
                modality == Modality::Atac,
                "a fragments file is ATAC data: choose a model that predicts RNA from ATAC"
            );
            return Ok(Single::Atac(crossomics_data::fragments::count_atac(
                fragments,
                barcodes,
                saved.fitted.peak_intervals()?,
                limits,
            )?));
        }
        JobInput::Hdf5(p) | JobInput::PlainDir(p) | JobInput::MatrixMarketDir(p) => p,
    };
    let request = crossomics_data::input::Request {
        limits: *limits,
        ..Default::default()
    };
    Ok(crossomics_data::input::Registry::uploads().read_single(path, modality, &request)?)
}

/// The MatrixMarket form of a prediction, as a 10x folder: `matrix.mtx.gz` (features x
/// cells), `features.tsv` (id, name, type) and `barcodes.tsv`, zipped.
fn write_mtx_zip(dest: &Path, t: &Translated) -> Result<()> {
    let values = t.prediction.values();
    let scratch = tempfile_dir(dest)?;
    let (n_cells, n_features) = values.dim();
    let mut coo = nalgebra_sparse::CooMatrix::new(n_features, n_cells);
    for ((c, f), &v) in values.indexed_iter() {
        if v != 0.0 {
            coo.push(f, c, v);
        }
    }
    let csr = nalgebra_sparse::CsrMatrix::from(&coo);
    let mtx = scratch.join("matrix.mtx.gz");
    let mut gz = flate2::write::GzEncoder::new(
        std::io::BufWriter::new(std::fs::File::create(&mtx)?),
        flate2::Compression::fast(),
    );
    crossomics_data::mtx::write(&csr, &mut gz)?;
    gz.finish()?.flush()?;
    // the feature types 10x gives these features
    let feature_type = match apply::target_modality(t.direction) {
        Modality::Atac => crossomics_data::tenx::PEAKS,
        Modality::Rna => crossomics_data::tenx::GENE_EXPRESSION,
    };
    let features = t
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| tsv_field("feature", i, f).map(|f| format!("{f}\t{f}\t{feature_type}\n")))
        .collect::<Result<String>>();
    let barcodes = t
        .cells
        .barcodes()
        .iter()
        .enumerate()
        .map(|(i, b)| tsv_field("barcode", i, b).map(|b| format!("{b}\n")))
        .collect::<Result<String>>();
    let (features, barcodes) = match (features, barcodes) {
        (Ok(f), Ok(b)) => (f, b),
        (Err(e), _) | (_, Err(e)) => {
            let _ = std::fs::remove_dir_all(&scratch);
            return Err(e);
        }
    };
    std::fs::write(scratch.join("features.tsv"), features)?;
    std::fs::write(scratch.join("barcodes.tsv"), barcodes)?;
    let result = crossomics_portal::archive::write_zip(
        dest,
        &[
            ("prediction/matrix.mtx.gz", &mtx),
            ("prediction/features.tsv", &scratch.join("features.tsv")),
            ("prediction/barcodes.tsv", &scratch.join("barcodes.tsv")),
        ],
    );
    let _ = std::fs::remove_dir_all(&scratch);
    Ok(result?)
}

/// `name` as one field of a TSV line: refused (naming the `what` and its position) when
/// it holds a tab, a line break or another control character, which would shift the
/// columns or add lines (10x's own files never hold them, and no reader unescapes them).
pub fn tsv_field<'a>(what: &str, index: usize, name: &'a str) -> Result<&'a str> {
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        anyhow::bail!(
            "{what} {} (`{}`) contains the control character {:?}, which a TSV file cannot hold; rename it (the h5ad download keeps it as it is)",
            index + 1,
            crossomics_limits::excerpt_str(name, 60),
            c
        );
    }
    Ok(name)
}

fn tempfile_dir(beside: &Path) -> Result<PathBuf> {
    let d = beside.with_extension("parts.tmp");
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

fn summary(t: &Translated) -> Summary {
    let v = t.prediction.values();
    let (n, m) = v.dim();
    let mut total = 0f64;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut col = vec![0f64; m];
    for row in v.rows() {
        for (j, &x) in row.iter().enumerate() {
            let x = f64::from(x);
            total += x;
            lo = lo.min(x);
            hi = hi.max(x);
            col[j] += x;
        }
    }
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&a, &b| col[b].total_cmp(&col[a]));
    let denom = n.max(1) as f64;
    Summary {
        cells: n,
        features: m,
        values: match &t.prediction {
            Prediction::Atac { .. } => "accessibility probability".into(),
            Prediction::Rna { .. } => "log1p normalized expression".into(),
        },
        mean: total / (n * m).max(1) as f64,
        min: if lo.is_finite() { lo } else { 0.0 },
        max: if hi.is_finite() { hi } else { 0.0 },
        top_features: order
            .iter()
            .take(10)
            .map(|&j| FeatureMean {
                feature: t.features[j].clone(),
                mean: col[j] / denom,
            })
            .collect(),
    }
}

/// A UMAP of (at most [`PICTURE_CELLS`] of) the cells' latent embedding, coloured by
/// the upload's `cell_type` column when it has one, else by Leiden cluster (those of the
/// prediction's `obs["leiden"]`).
fn picture(path: &Path, t: &Translated, latent: &Latent, kind: &str) -> Result<()> {
    let n = latent.embedding.nrows();
    let take: Vec<usize> = if n > PICTURE_CELLS {
        use rand::seq::SliceRandom;
        let mut idx: Vec<usize> = (0..n).collect();
        idx.shuffle(&mut <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0));
        idx.truncate(PICTURE_CELLS);
        idx.sort_unstable();
        idx
    } else {
        (0..n).collect()
    };
    let x = latent.embedding.select(ndarray::Axis(0), &take);
    let coords =
        crossomics_plots::umap::layout(x.view(), &crossomics_plots::umap::UmapParams::default())?;
    let cells = t.cells.subset(&take);
    // the upload's cell types when it has them, else the latent's Leiden clusters (the
    // `leiden` column of the prediction's h5ad)
    let (codes, names, by) = match cells.codes("cell_type") {
        Ok((c, n)) => (c, n, " by cell_type"),
        Err(_) => {
            let codes: Vec<usize> = take.iter().map(|&i| latent.clusters[i]).collect();
            let n_clusters = latent.clusters.iter().max().map_or(0, |m| m + 1);
            let names = (0..n_clusters).map(|i| i.to_string()).collect();
            (codes, names, " by Leiden cluster")
        }
    };
    crossomics_plots::scatter(
        path,
        &format!("UMAP of the {kind} latent, {} cells{by}", take.len()),
        coords.view(),
        &codes,
        &names,
    )?;
    Ok(())
}

fn write_results(dir: &Path, t: &Translated, kind: &str) -> Result<PredictOutput> {
    // every name must fit the TSV files of the MatrixMarket download: checked before
    // any file is written
    for (i, f) in t.features.iter().enumerate() {
        tsv_field("feature", i, f)?;
    }
    for (i, b) in t.cells.barcodes().iter().enumerate() {
        tsv_field("barcode", i, b)?;
    }
    let mut files = Vec::new();
    let h5ad = dir.join("prediction.h5ad");
    for p in apply::write_h5ad(&h5ad, t)? {
        let name = p
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let label = if name.ends_with("_counts.h5ad") {
            "prediction: expected counts (h5ad)"
        } else {
            "prediction (h5ad)"
        };
        files.push(ResultFile {
            name,
            label: label.into(),
            media_type: "application/x-hdf5".into(),
        });
    }
    write_mtx_zip(&dir.join("prediction_mtx.zip"), t)?;
    files.push(ResultFile {
        name: "prediction_mtx.zip".into(),
        label: "prediction (MatrixMarket folder, zip)".into(),
        media_type: "application/zip".into(),
    });
    if let Some(l) = &t.latent {
        picture(&dir.join("embedding.png"), t, l, kind)?;
        files.push(ResultFile {
            name: "embedding.png".into(),
            label: "the cells' latent embedding (UMAP)".into(),
            media_type: "image/png".into(),
        });
    }
    let c = &t.coverage;
    Ok(PredictOutput {
        coverage: Coverage {
            modality: c.modality.to_string(),
            found: c.found,
            total: c.total,
            fraction: c.fraction(),
        },
        summary: summary(t),
        files,
    })
}

impl Backend for TranslatorBackend {
    fn models(&self) -> Vec<ModelInfo> {
        unpoison(self.loaded.read())
            .iter()
            .flat_map(|l| l.infos.iter().map(|(i, _)| i.clone()))
            .collect()
    }

    fn status(&self) -> BackendStatus {
        let note = unpoison(self.note.lock()).clone();
        let ready = !unpoison(self.loaded.read()).is_empty();
        let message = note.or_else(|| {
            self.defaults.load(Ordering::Relaxed).then(|| {
                "These are the default models: BABEL trained at first start on the bundled BMMC Multiome sample \
                 (NeurIPS 2021, 500 bone-marrow cells, 600 genes, 600 peaks, GRCh38). Train your own with \
                 `crossomics run` and serve its folder with --models."
                    .to_string()
            })
        });
        BackendStatus {
            device: self.device.clone(),
            ready,
            message,
        }
    }

    fn predict(
        &self,
        r: &PredictRequest,
        stage: &dyn Fn(Stage),
    ) -> std::result::Result<PredictOutput, String> {
        self.run(r, stage).map_err(|e| {
            // name the user's files (uploads are kept under `input/`, by their own names
            // or as in their archive), not the server's folders
            let out = r.out_dir.display();
            format!("{e:#}")
                .replace(&format!("{out}/input/"), "")
                .replace(&format!("{out}/"), "")
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_config_is_a_saved_translation_run_in_both_directions() {
        let cfg = crate::config::parse(DEFAULT_CONFIG, "configs/portal/default.toml").unwrap();
        assert!(cfg.is_translation());
        assert!(cfg.output.checkpoint);
        assert_eq!(cfg.translation.directions.len(), 2);
        assert_eq!(cfg.translation.genome.as_deref(), Some("GRCh38"));
    }

    #[test]
    fn model_ids_are_url_safe_and_runs_are_found_below_the_folder() {
        assert_eq!(slug("a b/c?d-1_2.3"), "a-b-c-d-1_2.3");
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("exp/run-1");
        std::fs::create_dir_all(&run).unwrap();
        for f in ["model.json", "config.resolved.toml"] {
            std::fs::write(run.join(f), "").unwrap();
        }
        // hidden folders (a run's work folder) and half-written runs are not runs
        let hidden = dir.path().join("exp/.run-2.tmp");
        std::fs::create_dir_all(&hidden).unwrap();
        std::fs::write(hidden.join("model.json"), "").unwrap();
        std::fs::write(hidden.join("config.resolved.toml"), "").unwrap();
        let half = dir.path().join("exp/run-3");
        std::fs::create_dir_all(&half).unwrap();
        std::fs::write(half.join("model.json"), "").unwrap();
        assert_eq!(run_dirs(dir.path()), vec![run]);
        assert!(run_dirs(&dir.path().join("missing")).is_empty());
    }
}
