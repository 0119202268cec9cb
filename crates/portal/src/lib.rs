//! The CrossMP web portal (`crossomics serve`): a researcher uploads single-cell data of
//! one modality and downloads the other, predicted by a trained translator.
//!
//! This crate is the web side only: routes ([`http`]), the bounded job queue and its
//! workers ([`jobs`]), what an upload is, judged by its content ([`upload`]), and safe
//! unpacking of archives ([`archive`]). What a job computes (reading the data, the
//! model, the result files) comes from a [`Backend`]; `crossomics-runner` implements it
//! with its saved translators, and tests use small fakes. So the portal builds and is
//! tested without libtorch, and a new model kind needs no change here.

pub mod archive;
pub mod http;
pub mod jobs;
mod pages;
pub mod upload;

/// Archives made in tests, shared with the integration tests.
#[cfg(test)]
#[path = "../tests/common/archives.rs"]
mod test_archives;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

pub use crossomics_limits::Limits;
use serde::{Deserialize, Serialize};

pub use http::{Running, spawn};

/// What the server is allowed to do; every limit has a default that `crossomics serve`
/// flags override (`docs/portal.md`, Security, lists them all).
#[derive(Debug, Clone)]
pub struct PortalConfig {
    /// The only address the server listens on.
    pub addr: SocketAddr,
    /// Job folders (uploads and results) live under `<work_dir>/jobs/<id>/`.
    pub work_dir: PathBuf,
    /// Largest upload accepted, in bytes (all files of one job together).
    pub max_upload_bytes: u64,
    /// What one upload may hold and unpack to: archive entries, bytes unpacked, bytes
    /// one compressed stream inflates to, line length (`Limits::portal()` by default; the
    /// backend's readers apply the same limits to the data).
    pub limits: Limits,
    /// Jobs waiting beyond those running; one more is refused with "busy".
    pub queue_capacity: usize,
    /// Jobs computed at the same time.
    pub workers: usize,
    /// How long a finished job's results stay downloadable.
    pub job_ttl: Duration,
    /// Host names (`NAME` or `NAME:PORT`; without a port, any port) the server answers
    /// to beside the address it is bound to and `localhost`, `127.0.0.1`, `[::1]` at its
    /// port: the name a reverse proxy forwards, or the one users type.
    pub allowed_hosts: Vec<String>,
    /// A connection must send a request's headers within this time (an idle
    /// keep-alive connection is closed after it too).
    pub header_timeout: Duration,
    /// An upload that sends no bytes for this long is given up (and a client that reads
    /// nothing of an answer for this long is disconnected).
    pub body_idle_timeout: Duration,
    /// Connections open at once; more are answered 503 and closed.
    pub max_connections: usize,
    /// Uploads being received (or checked) at once; they count with the jobs for "busy".
    pub max_uploads_in_flight: usize,
    /// Files (`file` parts) in one upload.
    pub max_parts: usize,
    /// Bytes of one text form field (`model`, `genome`, `csrf`).
    pub max_field_bytes: usize,
    /// Wall time one job may compute; a job still running then fails.
    pub job_timeout: Duration,
    /// Disk all job folders (uploads in flight, waiting jobs, results) may use together.
    /// When a new upload needs room, the oldest finished results are deleted first; when
    /// that is not enough, the upload is refused (507).
    pub disk_quota_bytes: u64,
    /// Memory one job's computation may use (the backend enforces it on the process that
    /// computes the job).
    pub job_memory_bytes: u64,
}

impl Default for PortalConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            work_dir: PathBuf::from("portal"),
            max_upload_bytes: 2 << 30,
            limits: Limits::portal(),
            queue_capacity: 16,
            workers: 1,
            job_ttl: Duration::from_secs(24 * 3600),
            allowed_hosts: Vec::new(),
            header_timeout: Duration::from_secs(10),
            body_idle_timeout: Duration::from_secs(30),
            max_connections: 256,
            max_uploads_in_flight: 4,
            max_parts: 8,
            max_field_bytes: 256,
            job_timeout: Duration::from_secs(600),
            disk_quota_bytes: 20 << 30,
            job_memory_bytes: 4 << 30,
        }
    }
}

/// A trained model on offer, in one direction.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ModelInfo {
    /// What a job names the model by (letters, digits, `-`, `_`, `.`).
    pub id: String,
    pub name: String,
    /// `rna_to_atac` or `atac_to_rna`
    pub direction: String,
    /// `RNA` or `ATAC`: what the upload must hold
    pub source: String,
    /// what the prediction holds
    pub target: String,
    /// `GRCh38`, `hg19`, ... when the model declares it
    pub genome: Option<String>,
    /// what it was trained on, in words
    pub trained_on: String,
    /// model kind (`babel`, `ridge`, ...)
    pub kind: String,
    /// the model's input features (genes or peaks)
    pub input_features: usize,
    /// the features predicted
    pub output_features: usize,
    /// test-set metrics of the training run, in this direction
    pub metrics: Vec<(String, f64)>,
}

/// The server's state as the backend sees it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BackendStatus {
    /// where predictions run (`cpu`, `cuda:0`)
    pub device: String,
    /// false while no model can take jobs (e.g. the default models are training)
    pub ready: bool,
    /// shown on the page (training progress, what the default models are)
    pub message: Option<String>,
}

/// What a job's upload turned out to be (judged by content, see [`upload`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// An HDF5 file: AnnData `.h5ad` or a 10x `.h5` feature-barcode matrix.
    Hdf5(PathBuf),
    /// A folder with `matrix.mtx[.gz]`, `features.tsv[.gz]` (or `genes.tsv`) and
    /// `barcodes.tsv[.gz]`, as 10x writes it.
    MatrixMarketDir(PathBuf),
    /// A folder in crossomics' plain layout (`rna_counts.mtx[.gz]`, `atac_counts.mtx[.gz]`,
    /// `genes.tsv`, `peaks.tsv`, `cells.tsv`).
    PlainDir(PathBuf),
    /// A 10x ATAC fragments file and the cells' barcodes (its tabix index beside it when
    /// one was uploaded): counted into the model's peaks.
    Fragments {
        fragments: PathBuf,
        barcodes: PathBuf,
    },
}

impl Input {
    /// In words, for the job page.
    pub fn describe(&self) -> &'static str {
        match self {
            Self::Hdf5(_) => "HDF5 (h5ad or 10x h5)",
            Self::MatrixMarketDir(_) => "MatrixMarket folder (matrix.mtx, features, barcodes)",
            Self::PlainDir(_) => {
                "plain-layout folder (rna_counts.mtx, atac_counts.mtx, genes, peaks, cells)"
            }
            Self::Fragments { .. } => "ATAC fragments file with barcodes",
        }
    }
}

/// One job, as the backend computes it.
#[derive(Debug, Clone)]
pub struct PredictRequest {
    pub model_id: String,
    pub input: Input,
    /// the genome build the user declares, if any
    pub genome: Option<String>,
    /// where the result files go (the job's own folder)
    pub out_dir: PathBuf,
    /// When the job must be over (set as a worker starts it: `PortalConfig::job_timeout`
    /// from then). The backend must stop computing by then and return an error; the
    /// portal marks a job that is still running at its deadline failed in any case.
    pub deadline: Option<Instant>,
    /// The most memory the job's computation may use (`PortalConfig::job_memory_bytes`);
    /// the backend enforces it on the process that computes the job.
    pub memory_limit_bytes: u64,
    /// What the job's data may hold (`PortalConfig::limits`), for the backend's readers.
    pub limits: Limits,
}

/// The phases a running job reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    Preprocessing,
    Predicting,
}

/// How much of the model's features the upload covers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Coverage {
    /// `RNA` (genes) or `ATAC` (peaks)
    pub modality: String,
    pub found: usize,
    pub total: usize,
    pub fraction: f64,
}

/// The mean prediction of one feature over the cells.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FeatureMean {
    pub feature: String,
    pub mean: f64,
}

/// Summary statistics of a prediction.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Summary {
    pub cells: usize,
    pub features: usize,
    /// what the values are (`accessibility probability`, `log1p expression`)
    pub values: String,
    pub mean: f64,
    pub min: f64,
    pub max: f64,
    /// the features with the highest mean prediction
    pub top_features: Vec<FeatureMean>,
}

/// A file a job produced, inside its `out_dir`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ResultFile {
    /// file name inside the job's folder (also its download name)
    pub name: String,
    /// in words, for the page
    pub label: String,
    pub media_type: String,
}

/// What a finished job produced.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PredictOutput {
    pub coverage: Coverage,
    pub summary: Summary,
    pub files: Vec<ResultFile>,
}

/// What the portal needs from the models: the seam between the web side and the
/// translators. Implementations must be safe to call from several worker threads.
pub trait Backend: Send + Sync + 'static {
    /// The models on offer now.
    fn models(&self) -> Vec<ModelInfo>;
    /// Device, readiness and a message for the page.
    fn status(&self) -> BackendStatus;
    /// Computes one job; calls `stage` as it moves on. An error is shown to the user as
    /// the reason the job failed, so it should name the file and the problem.
    fn predict(
        &self,
        request: &PredictRequest,
        stage: &dyn Fn(Stage),
    ) -> Result<PredictOutput, String>;
}

/// Bytes in words (`2.0 GiB`).
pub use crossomics_limits::human_bytes;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_in_words() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(2 << 30), "2.0 GiB");
    }

    #[test]
    fn listens_on_loopback_by_default() {
        let c = PortalConfig::default();
        assert!(c.addr.ip().is_loopback());
        assert_eq!(c.max_upload_bytes, 2 * 1024 * 1024 * 1024);
        assert_eq!(c.limits, Limits::portal());
        assert!(c.limits.max_unpacked_bytes <= 4 << 30);
        assert!(c.allowed_hosts.is_empty());
    }
}
