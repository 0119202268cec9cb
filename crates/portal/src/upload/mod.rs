//! What an upload is, judged by its bytes, never by its name: HDF5 (h5ad or 10x h5), a
//! zip / tar / tar.gz of a 10x matrix folder, or the loose files of such a folder
//! (`matrix.mtx`, features and barcodes; each may be gzipped), told apart by the
//! MatrixMarket header and by line counts against the matrix's shape.
//!
//! Each submodule has one job: sniffing a file's type (`sniff`), reading the shape of
//! loose text files (`shape`), and sorting loose files into a dataset (`loose`); this
//! module turns an upload into the [`Input`] a backend reads.

mod loose;
mod shape;
mod sniff;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

use crate::Input;
use crate::archive::{self, ArchiveError, Budget, Format};
use loose::loose_files;
use sniff::describe_head;

pub use sniff::{HDF5_MAGIC, Sniffed, sniff};

/// A refused upload: the message is for the user; `unsupported` marks a file type
/// problem (HTTP 415), `too_large` a limit that the content went over (413), else bad
/// content (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadError {
    pub message: String,
    pub unsupported: bool,
    pub too_large: bool,
}

impl UploadError {
    fn bad(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            unsupported: false,
            too_large: false,
        }
    }

    fn unsupported(message: impl Into<String>) -> Self {
        Self {
            unsupported: true,
            ..Self::bad(message)
        }
    }

    /// From an error of unpacking or reading; `label` names the file when the error
    /// does not.
    fn from_archive(e: ArchiveError, label: Option<&str>) -> Self {
        let named = |m: String| match label {
            Some(l) => format!("{l}: {m}"),
            None => m,
        };
        match e {
            ArchiveError::Io(e) => read_failed(e),
            ArchiveError::Limit(l) => Self {
                too_large: true,
                ..Self::bad(named(l.to_string()))
            },
            e => Self::bad(named(e.to_string())),
        }
    }
}

impl std::fmt::Display for UploadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

const EXPECTED: &str = "expected an .h5ad or .h5mu file, a 10x .h5 matrix, a zip or tar.gz of a 10x matrix folder or of a plain-layout folder, a matrix.mtx with features.tsv and barcodes.tsv, or a fragments.tsv.gz with barcodes.tsv";

/// The files of one upload as received (`paths`), the names their browser sent (used only
/// in messages) and the job folder.
struct Received<'a> {
    paths: &'a [PathBuf],
    names: &'a [String],
    dir: &'a Path,
}

impl Received<'_> {
    /// How messages name uploaded file `i`: the name the browser sent, else its position.
    fn label(&self, i: usize) -> String {
        self.names
            .get(i)
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| format!("file {}", i + 1))
    }

    /// The job's `input` folder, created: where the dataset's files are moved to.
    fn input_folder(&self) -> Result<PathBuf, UploadError> {
        let folder = self.dir.join("input");
        std::fs::create_dir_all(&folder).map_err(read_failed)?;
        Ok(folder)
    }

    /// Moves uploaded file `i` to `to`.
    fn move_to(&self, i: usize, to: &Path) -> Result<(), UploadError> {
        std::fs::rename(&self.paths[i], to).map_err(read_failed)
    }
}

/// The last component of a name a browser sent, if it is a plain file name (letters,
/// digits, `.`, `-`, `_`; not hidden; at most 100 characters).
fn safe_name(sent: &str) -> Option<String> {
    let base = sent.rsplit(['/', '\\']).next()?.trim();
    let plain = base
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    (plain && !base.is_empty() && !base.starts_with('.') && base.len() <= 100)
        .then(|| base.to_string())
}

fn read_failed(e: std::io::Error) -> UploadError {
    UploadError::bad(format!("reading the upload failed: {e}"))
}

/// Turns a job's uploaded files (in `parts`, as received) into the [`Input`] a backend
/// reads, unpacking archives into `dir` under the budget (which also carries the job's
/// cancel flag). `names` are the names the browser sent, used only in messages.
pub fn classify(
    parts: &[PathBuf],
    names: &[String],
    dir: &Path,
    budget: &mut Budget,
) -> Result<Input, UploadError> {
    let received = Received {
        paths: parts,
        names,
        dir,
    };
    let label = |i: usize| received.label(i);
    match parts {
        [] => Err(UploadError::bad("no file was uploaded (form field `file`)")),
        [one] => {
            let kind = sniff(one).map_err(read_failed)?;
            let format = match kind {
                Sniffed::Hdf5 => {
                    // under the user's own name, so that the backend's errors name it
                    let folder = received.input_folder()?;
                    let name = names.first().and_then(|n| safe_name(n));
                    let p = folder.join(name.as_deref().unwrap_or("input.h5"));
                    received.move_to(0, &p)?;
                    return Ok(Input::Hdf5(p));
                }
                Sniffed::Zip => Format::Zip,
                Sniffed::Tar => Format::Tar,
                Sniffed::TarGz => Format::TarGz,
                Sniffed::MatrixMarket { .. } => {
                    return Err(UploadError::bad(format!(
                        "{} is a MatrixMarket matrix alone: upload it together with its features.tsv and barcodes.tsv, or the folder as a zip or tar.gz",
                        label(0)
                    )));
                }
                Sniffed::TabixIndex => {
                    return Err(UploadError::bad(format!(
                        "{} is a tabix index alone: upload it together with its fragments file and the cells' barcodes",
                        label(0)
                    )));
                }
                Sniffed::Text { .. } | Sniffed::Unknown => {
                    return Err(UploadError::unsupported(format!(
                        "{}: unsupported file type ({}); {EXPECTED}",
                        label(0),
                        describe_head(one)
                    )));
                }
            };
            let dest = dir.join("input");
            archive::unpack(one, format, &dest, budget)
                .map_err(|e| UploadError::from_archive(e, Some(&label(0))))?;
            let _ = std::fs::remove_file(one);
            find_in_archive(&dest, &label(0))
        }
        _ => loose_files(&received, budget),
    }
}

/// The one 10x matrix folder (or the one HDF5 file) an unpacked archive holds.
fn find_in_archive(root: &Path, label: &str) -> Result<Input, UploadError> {
    let mut matrix_dirs = Vec::new();
    let mut plain_dirs = Vec::new();
    let mut hdf5 = Vec::new();
    let mut stack = vec![(root.to_path_buf(), 0usize)];
    while let Some((d, depth)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            let Ok(ft) = e.file_type() else { continue };
            if ft.is_dir() {
                if depth < 8 {
                    stack.push((p, depth + 1));
                }
                continue;
            }
            if !ft.is_file() {
                continue;
            }
            match sniff(&p) {
                Ok(Sniffed::MatrixMarket { .. }) => {
                    let name = p.file_name().unwrap_or_default().to_string_lossy();
                    if name == "matrix.mtx" || name == "matrix.mtx.gz" {
                        matrix_dirs.push(d.clone());
                    }
                    // a plain-layout folder: counted once, by its RNA (or only) matrix
                    let plain = ["rna_counts.mtx", "rna_counts.mtx.gz"].contains(&&*name)
                        || (["atac_counts.mtx", "atac_counts.mtx.gz"].contains(&&*name)
                            && !["rna_counts.mtx", "rna_counts.mtx.gz"]
                                .iter()
                                .any(|r| d.join(r).is_file()));
                    if plain {
                        plain_dirs.push(d.clone());
                    }
                }
                Ok(Sniffed::Hdf5) => hdf5.push(p),
                _ => {}
            }
        }
    }
    match (
        matrix_dirs.as_slice(),
        plain_dirs.as_slice(),
        hdf5.as_slice(),
    ) {
        ([one], [], []) => Ok(Input::MatrixMarketDir(one.clone())),
        ([], [one], []) => Ok(Input::PlainDir(one.clone())),
        ([], [], [one]) => Ok(Input::Hdf5(one.clone())),
        ([], [], []) => Err(UploadError::bad(format!(
            "{label}: the archive holds no matrix.mtx[.gz] (a 10x matrix folder), no rna_counts.mtx[.gz] / atac_counts.mtx[.gz] (a plain-layout folder) and no HDF5 file"
        ))),
        _ => Err(UploadError::bad(format!(
            "{label}: the archive holds {} 10x matrix folders, {} plain-layout folders and {} HDF5 files; upload one dataset at a time",
            matrix_dirs.len(),
            plain_dirs.len(),
            hdf5.len()
        ))),
    }
}
