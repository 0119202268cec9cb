//! Unpacking uploaded archives (zip, tar, tar.gz) without trusting them: every entry's
//! path must stay inside the destination (no absolute paths, no `..`), only regular
//! files and folders are written (no links, devices or fifos), and what is read is
//! bounded before it is read, whatever the headers claim:
//!
//! - the number of entries (`max_archive_entries`): a zip's is taken from its end of
//!   central directory record *before* the central directory is read (the zip reader
//!   here is this module's own, so that nothing allocates by a count the archive claims);
//! - the bytes all entries unpack to (`max_unpacked_bytes`), counted as written, and for
//!   a gzipped entry (`matrix.mtx.gz` in a tar) by what it *inflates* to;
//! - the bytes each compressed stream inflates to (`max_inflated_bytes`): a tar.gz's
//!   gzip, each deflated zip entry, each gzipped entry;
//! - the size of tar extension headers (GNU long names, pax records), checked in the
//!   header before their data is read.
//!
//! A [`Budget`] carries these limits over all files of one job, and a cancel flag: a job
//! whose client hung up stops unpacking at the next chunk. Also the zip writer for result
//! downloads.
//!
//! Each submodule has one job: the [`Budget`] and its metered reader (`budget`), writing
//! one entry safely (`entry`), reading tar (`read_tar`) and zip (`read_zip`) archives,
//! and writing the zip of a job's results (`results`).

mod budget;
mod entry;
mod read_tar;
mod read_zip;
mod results;
#[cfg(test)]
mod tests;

use std::fs::File;
use std::io::{self, BufReader};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, LimitError};

pub use budget::{Budget, Metered, read_error};
pub use entry::{charge_inflated, is_gzip};
pub use read_tar::{MAX_LONG_NAME_BYTES, MAX_PAX_BYTES};
pub use results::write_zip;

/// Bytes one chunk of unpacking reads; the cancel flag is checked between chunks.
const CHUNK: usize = 64 << 10;

/// Why an archive (or a compressed upload) was refused.
#[derive(Debug)]
pub enum ArchiveError {
    /// The archive breaks a rule (escaping path, link); the message says which.
    Refused(String),
    /// Over one of the [`Limits`](crossomics_limits::Limits); the error names it and how to raise it.
    Limit(LimitError),
    /// The archive is malformed or truncated.
    Malformed(String),
    /// The job was given up (its client hung up) while unpacking.
    Cancelled,
    Io(io::Error),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(m) | Self::Malformed(m) => f.write_str(m),
            Self::Limit(e) => write!(f, "{e}"),
            Self::Cancelled => f.write_str("the upload was given up"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ArchiveError {}

impl From<io::Error> for ArchiveError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

impl From<LimitError> for ArchiveError {
    fn from(e: LimitError) -> Self {
        Self::Limit(e)
    }
}

/// The formats [`unpack`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
}

/// Unpacks `archive` into the folder `dest` (created), under the budget's limits.
/// Returns the files written, relative to `dest`. On error `dest` may hold part of the
/// archive: the caller removes the job folder.
pub fn unpack(
    archive: &Path,
    format: Format,
    dest: &Path,
    budget: &mut Budget,
) -> Result<Vec<PathBuf>, ArchiveError> {
    std::fs::create_dir_all(dest)?;
    match format {
        Format::Zip => read_zip::unpack_zip(archive, dest, budget),
        Format::Tar => read_tar::unpack_tar(BufReader::new(File::open(archive)?), dest, budget),
        Format::TarGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(archive)?));
            let capped = CappedReader::inflated(gz, &budget.limits, "the tar.gz's gzip stream");
            read_tar::unpack_tar(capped, dest, budget)
        }
    }
}
