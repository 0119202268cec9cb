//! Dataset download for users with internet: the full-size public paired RNA+ATAC
//! datasets by name, with checksums and resumable downloads (`crossomics fetch <name>`).
//!
//! - [`registry`] lists the datasets: per file a URL, a size and a pinned checksum
//!   (MD5 or SHA-256, whichever the source published) where one was found, plus a
//!   description, genome build, citation and license note. Checksums are never invented:
//!   a file without one is downloaded, its SHA-256 reported, and the report says that it
//!   could not be verified ([`Verification::Unverified`]); pin one with
//!   [`FetchOptions::expect`] (the CLI's `--sha256`).
//! - [`fetch`] downloads into `dest_dir/<file>.part`, resumes an existing `.part` with an
//!   HTTP `Range: bytes=N-` request (a server that answers `200` instead of `206` is
//!   downloaded again from the first byte; `416` means the part is already complete or
//!   unusable), hashes while streaming, and renames the verified file atomically to
//!   `dest_dir/<file>`. A checksum mismatch deletes the `.part` and names the file, the
//!   expected and the actual digest. A final file already present and matching is not
//!   requested again, so fetching is idempotent.
//! - [`FetchOptions::base_url`] (or `CROSSOMICS_FETCH_BASE_URL` via
//!   [`FetchOptions::from_env`]) points every file at `<base>/<file name>`: a mirror, or the
//!   local HTTP server of the tests, which never reach the internet.
//!
//! Every socket read and connect has a timeout ([`FetchOptions::read_timeout`],
//! [`FetchOptions::connect_timeout`]); a stalled transfer fails with
//! [`FetchError::Interrupted`] and the next call resumes it.
//!
//! ```no_run
//! use crossomics_fetch::{FetchOptions, fetch};
//! let dir = std::path::Path::new("data/snareseq_mouse_cortex");
//! let mut bar = |p: &crossomics_fetch::Progress<'_>| eprint!("\r{} {}", p.file, p.done);
//! let report = fetch("snareseq_mouse_cortex", dir, &FetchOptions::from_env(), Some(&mut bar))?;
//! println!("{report}");
//! # Ok::<(), crossomics_fetch::FetchError>(())
//! ```

mod checksum;
mod download;
mod error;
mod registry;

use std::path::Path;

pub use checksum::{Checksum, HashAlgo};
pub use download::{
    BASE_URL_ENV, FetchOptions, FetchReport, FileReport, FileStatus, Progress, Verification,
};
pub use error::FetchError;
pub use registry::{DatasetEntry, RemoteFile, names, registry};

/// The registry entry called `name` (case-insensitive; `-` and `_` are interchangeable).
/// An unknown name is an error that lists the known ones.
pub fn lookup(name: &str) -> Result<&'static DatasetEntry, FetchError> {
    let wanted = normalize(name);
    registry()
        .iter()
        .find(|e| normalize(&e.name) == wanted)
        .ok_or_else(|| FetchError::UnknownDataset {
            name: name.to_string(),
            known: names().into_iter().map(str::to_string).collect(),
        })
}

fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase().replace('-', "_")
}

/// Downloads the registry dataset `name` into `dest_dir` (the files go directly into it;
/// it is created if missing). `progress` is called as bytes arrive.
pub fn fetch(
    name: &str,
    dest_dir: &Path,
    opts: &FetchOptions,
    progress: Option<&mut dyn FnMut(&Progress<'_>)>,
) -> Result<FetchReport, FetchError> {
    fetch_entry(lookup(name)?, dest_dir, opts, progress)
}

/// Downloads the files of any dataset entry (a registry entry or one built with
/// [`DatasetEntry::custom`]) into `dest_dir`.
pub fn fetch_entry(
    entry: &DatasetEntry,
    dest_dir: &Path,
    opts: &FetchOptions,
    progress: Option<&mut dyn FnMut(&Progress<'_>)>,
) -> Result<FetchReport, FetchError> {
    download::fetch_entry(entry, dest_dir, opts, progress)
}

/// Parses a command-line expected checksum for `entry`: `FILE=CHECKSUM`, or a bare
/// `CHECKSUM` when the dataset has exactly one file. `CHECKSUM` is `sha256:HEX`,
/// `md5:HEX` or bare hex (64 digits SHA-256, 32 MD5). Feed the result to
/// [`FetchOptions::expect`].
pub fn parse_expected(entry: &DatasetEntry, arg: &str) -> Result<(String, Checksum), FetchError> {
    let file_names = || -> Vec<String> {
        entry
            .files
            .iter()
            .map(|f| f.file_name.to_string())
            .collect()
    };
    let (file, checksum) = match arg.split_once('=') {
        Some((file, checksum)) => (file.trim().to_string(), checksum),
        None if entry.files.len() == 1 => (entry.files[0].file_name.to_string(), arg),
        None => {
            return Err(FetchError::InvalidChecksum {
                value: arg.to_string(),
                reason: format!(
                    "dataset `{}` has {} files; write FILE=CHECKSUM with FILE one of: {}",
                    entry.name,
                    entry.files.len(),
                    file_names().join(", ")
                ),
            });
        }
    };
    if entry.file(&file).is_none() {
        return Err(FetchError::UnknownFile {
            dataset: entry.name.to_string(),
            file,
            files: file_names(),
        });
    }
    Ok((file, Checksum::parse(checksum)?))
}

/// The registry as a plain-text table: name, files, size, pinned checksums, title.
pub fn list() -> String {
    let mut out = String::new();
    let width = registry().iter().map(|e| e.name.len()).max().unwrap_or(4);
    out.push_str(&format!(
        "{:<width$}  {:>5}  {:>10}  {:<8}  title\n",
        "name", "files", "size", "pinned"
    ));
    for e in registry() {
        let size = e
            .total_size()
            .map_or_else(|| "unknown".to_string(), crossomics_limits::human_bytes);
        let pinned = format!("{}/{}", e.pinned_count(), e.files.len());
        out.push_str(&format!(
            "{:<width$}  {:>5}  {:>10}  {:<8}  {}\n",
            e.name,
            e.files.len(),
            size,
            pinned,
            e.title
        ));
    }
    out
}

/// Everything the registry says about one dataset, for `crossomics fetch --info`.
pub fn describe(entry: &DatasetEntry) -> String {
    let mut out = format!(
        "{}: {}\n\n{}\n\n",
        entry.name, entry.title, entry.description
    );
    out.push_str(&format!("genome:    {}\n", entry.genome));
    out.push_str(&format!("cite:      {}\n", entry.citation));
    out.push_str(&format!("license:   {}\n", entry.license));
    out.push_str(&format!("homepage:  {}\n", entry.homepage));
    if !entry.checksum_source.is_empty() {
        out.push_str(&format!("checksums: {}\n", entry.checksum_source));
    }
    out.push_str("files:\n");
    for f in entry.files.iter() {
        let size = f.size.map_or_else(
            || "size unknown".to_string(),
            crossomics_limits::human_bytes,
        );
        let checksum = f
            .checksum
            .as_ref()
            .map_or_else(|| "no published checksum".to_string(), Checksum::to_string);
        out.push_str(&format!(
            "  {} ({size}, {checksum})\n    {}\n",
            f.file_name, f.url
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn registry_is_well_formed() {
        let mut names = HashSet::new();
        assert_eq!(registry().len(), 4);
        for e in registry() {
            assert!(names.insert(e.name.to_string()), "duplicate {}", e.name);
            assert!(!e.files.is_empty(), "{}", e.name);
            assert!(
                !e.title.is_empty() && !e.description.is_empty(),
                "{}",
                e.name
            );
            assert!(!e.genome.is_empty() && !e.citation.is_empty(), "{}", e.name);
            assert!(!e.license.is_empty(), "{}", e.name);
            assert!(e.homepage.starts_with("https://"), "{}", e.name);
            assert_eq!(
                e.pinned_count() > 0,
                !e.checksum_source.is_empty(),
                "{}",
                e.name
            );
            let mut files = HashSet::new();
            for f in e.files.iter() {
                assert!(files.insert(f.file_name.to_string()), "{}", f.file_name);
                assert!(f.url.starts_with("https://"), "{}", f.url);
                assert!(f.url.ends_with(&*f.file_name), "{}", f.url);
                assert!(!f.file_name.contains('/'), "{}", f.file_name);
                if let Some(c) = &f.checksum {
                    let parsed = Checksum::parse(&c.to_string()).unwrap();
                    assert_eq!(&parsed, c, "{}", f.file_name);
                }
            }
        }
    }

    #[test]
    fn lookup_is_forgiving_about_case_and_dashes() {
        assert_eq!(
            lookup("SNARESEQ-mouse-cortex").unwrap().name,
            "snareseq_mouse_cortex"
        );
        let err = lookup("pbmc3k").unwrap_err().to_string();
        for name in names() {
            assert!(err.contains(name), "{err}");
        }
    }

    #[test]
    fn expected_checksum_arguments() {
        let bmmc = lookup("bmmc_multiome_neurips2021").unwrap();
        let hex = "ab".repeat(32);
        let (file, c) = parse_expected(bmmc, &hex).unwrap();
        assert_eq!(file, bmmc.files[0].file_name);
        assert_eq!(c.algo, HashAlgo::Sha256);
        let snare = lookup("snareseq_mouse_cortex").unwrap();
        let err = parse_expected(snare, &hex).unwrap_err().to_string();
        assert!(err.contains("FILE=CHECKSUM"), "{err}");
        let arg = format!(
            "GSE126074_AdBrainCortex_SNAREseq_cDNA.genes.tsv.gz=md5:{}",
            "0".repeat(32)
        );
        let (file, c) = parse_expected(snare, &arg).unwrap();
        assert_eq!(file, "GSE126074_AdBrainCortex_SNAREseq_cDNA.genes.tsv.gz");
        assert_eq!(c.algo, HashAlgo::Md5);
        assert!(matches!(
            parse_expected(snare, &format!("nope.gz={hex}")),
            Err(FetchError::UnknownFile { .. })
        ));
    }

    #[test]
    fn listing_names_every_dataset() {
        let text = list();
        for e in registry() {
            assert!(text.contains(&*e.name));
            let info = describe(e);
            for f in e.files.iter() {
                assert!(info.contains(&*f.url));
            }
        }
        assert!(text.contains("154.8 MiB"), "{text}");
    }
}
