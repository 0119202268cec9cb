//! The one error type of this crate. Every message names the dataset, URL or file.

use std::io;
use std::path::PathBuf;

use crate::checksum::HashAlgo;

/// What went wrong while looking up or downloading a dataset.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The name is not in the registry.
    #[error("unknown dataset `{name}`; known datasets: {}", .known.join(", "))]
    UnknownDataset { name: String, known: Vec<String> },

    /// An expected checksum was given for a file the dataset does not have.
    #[error("dataset `{dataset}` has no file `{file}`; its files: {}", .files.join(", "))]
    UnknownFile {
        dataset: String,
        file: String,
        files: Vec<String>,
    },

    /// A checksum string could not be parsed.
    #[error("invalid checksum `{value}`: {reason}")]
    InvalidChecksum { value: String, reason: String },

    /// The server answered with an error status (4xx, 5xx, or an unusable 2xx/3xx).
    #[error("{url}: HTTP {status} {reason} (downloading {file})")]
    Http {
        url: String,
        file: String,
        status: u16,
        reason: String,
    },

    /// No HTTP answer at all: DNS, connection refused, TLS, timeout before the headers.
    #[error("{url}: cannot download {file}: {message}")]
    Connection {
        url: String,
        file: String,
        message: String,
    },

    /// The body stopped before its end (connection dropped, read timeout). The bytes
    /// received so far are kept in `part`; fetching again resumes from there.
    #[error(
        "{url}: download of {file} interrupted after {received} of {} bytes ({message}); \
         the partial file {} is kept and the next fetch resumes from it",
        .expected.map_or_else(|| "?".to_string(), |n| n.to_string()),
        .part.display()
    )]
    Interrupted {
        url: String,
        file: String,
        received: u64,
        expected: Option<u64>,
        part: PathBuf,
        message: String,
    },

    /// The downloaded bytes do not hash to the pinned checksum; the partial file was
    /// deleted and no final file was written.
    #[error(
        "checksum mismatch for {file} from {url}: expected {algo} {expected}, got {actual}; \
         the download was deleted"
    )]
    ChecksumMismatch {
        file: String,
        url: String,
        algo: HashAlgo,
        expected: String,
        actual: String,
    },

    /// The download has a different size than the registry records; it was deleted.
    #[error(
        "size mismatch for {file} from {url}: expected {expected} bytes, got {actual}; \
         the download was deleted"
    )]
    SizeMismatch {
        file: String,
        url: String,
        expected: u64,
        actual: u64,
    },

    /// A file already at the destination does not match the pinned checksum or size.
    /// It is left alone: delete it, or fetch with `force`.
    #[error(
        "{} already exists but does not match: expected {expected}, found {actual}; \
         delete it or fetch again with --force",
        .path.display()
    )]
    ExistingMismatch {
        path: PathBuf,
        expected: String,
        actual: String,
    },

    /// The server's answer could not be used (e.g. a 206 for the wrong byte range).
    #[error("{url}: {message} (downloading {file})")]
    Protocol {
        url: String,
        file: String,
        message: String,
    },

    /// A local file operation failed.
    #[error("{}: {source}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
