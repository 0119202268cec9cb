//! Resumable, verified download of one dataset: `<dest>/<file>.part`, HTTP `Range`
//! resume, checksum while streaming, atomic rename to `<dest>/<file>`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::checksum::{Checksum, Digests, HashAlgo, Hashers, hash_file};
use crate::error::FetchError;
use crate::registry::{DatasetEntry, RemoteFile};

/// Environment variable that [`FetchOptions::from_env`] reads as the base-URL override.
pub const BASE_URL_ENV: &str = "CROSSOMICS_FETCH_BASE_URL";

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Download every file from `<base_url>/<file name>` instead of its registry URL
    /// (a mirror, or a local test server).
    pub base_url: Option<String>,
    /// Expected checksums by file name; they take precedence over the registry's.
    pub expected: BTreeMap<String, Checksum>,
    /// Download again even when the final file already exists.
    pub force: bool,
    /// Limit for establishing a connection.
    pub connect_timeout: Duration,
    /// Limit for any single read or write on the socket (not for the whole download,
    /// which may take hours): a stalled transfer fails after this long and can be resumed.
    pub read_timeout: Duration,
    /// Use a proxy from `ALL_PROXY` / `HTTPS_PROXY` / `HTTP_PROXY` (never for loopback URLs).
    pub proxy_from_env: bool,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            base_url: None,
            expected: BTreeMap::new(),
            force: false,
            connect_timeout: Duration::from_secs(30),
            read_timeout: Duration::from_secs(120),
            proxy_from_env: true,
        }
    }
}

impl FetchOptions {
    /// The defaults, with `base_url` taken from `CROSSOMICS_FETCH_BASE_URL` when it is set
    /// and not empty.
    pub fn from_env() -> Self {
        let base_url = std::env::var(BASE_URL_ENV)
            .ok()
            .filter(|s| !s.trim().is_empty());
        FetchOptions {
            base_url,
            ..FetchOptions::default()
        }
    }

    /// Sets the base-URL override.
    pub fn with_base_url(mut self, base_url: impl Into<String>) -> Self {
        self.base_url = Some(base_url.into());
        self
    }

    /// Expects `checksum` for the file named `file_name`.
    pub fn expect(mut self, file_name: impl Into<String>, checksum: Checksum) -> Self {
        self.expected.insert(file_name.into(), checksum);
        self
    }

    /// The URL `file` is downloaded from under these options.
    pub fn url_for(&self, file: &RemoteFile) -> String {
        match &self.base_url {
            Some(base) => format!("{}/{}", base.trim_end_matches('/'), file.file_name),
            None => file.url.to_string(),
        }
    }
}

/// Progress of the file being downloaded, for a progress bar.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// Local file name.
    pub file: &'a str,
    /// 0-based index of the file in the dataset.
    pub file_index: usize,
    /// Number of files in the dataset.
    pub file_count: usize,
    /// Bytes of this file on disk so far (including a resumed prefix).
    pub done: u64,
    /// Total bytes of this file, when known.
    pub total: Option<u64>,
}

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileStatus {
    /// Downloaded from the first byte.
    Downloaded,
    /// Completed from an existing `.part` of `from` bytes.
    Resumed { from: u64 },
    /// The final file was already there (and matched its checksum, when one is pinned);
    /// nothing was requested.
    AlreadyPresent,
}

/// Whether the file was checked against a pinned checksum.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The file's digest equals this pinned checksum.
    Verified(Checksum),
    /// No checksum was pinned: the file could not be verified (see `FileReport::sha256`).
    Unverified,
}

/// One fetched file.
#[derive(Debug, Clone)]
pub struct FileReport {
    pub file_name: String,
    pub path: PathBuf,
    pub url: String,
    pub bytes: u64,
    pub status: FileStatus,
    pub verification: Verification,
    /// SHA-256 of the file, always computed (pin it with `--sha256` next time).
    pub sha256: String,
}

impl FileReport {
    pub fn is_verified(&self) -> bool {
        matches!(self.verification, Verification::Verified(_))
    }
}

impl fmt::Display for FileReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = match self.status {
            FileStatus::Downloaded => "downloaded".to_string(),
            FileStatus::Resumed { from } => format!("resumed at byte {from}"),
            FileStatus::AlreadyPresent => "already present".to_string(),
        };
        write!(f, "{}: {status}, {} bytes, ", self.file_name, self.bytes)?;
        match &self.verification {
            Verification::Verified(c) => write!(f, "{} verified", c.algo),
            Verification::Unverified => write!(
                f,
                "NOT VERIFIED (no published checksum); sha256 {}",
                self.sha256
            ),
        }
    }
}

/// Everything `fetch` did.
#[derive(Debug, Clone)]
pub struct FetchReport {
    pub dataset: String,
    /// The directory holding the files.
    pub dir: PathBuf,
    pub files: Vec<FileReport>,
}

impl FetchReport {
    /// Whether every file matched a pinned checksum.
    pub fn all_verified(&self) -> bool {
        self.files.iter().all(FileReport::is_verified)
    }
}

impl fmt::Display for FetchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} in {}:", self.dataset, self.dir.display())?;
        for file in &self.files {
            writeln!(f, "  {file}")?;
        }
        Ok(())
    }
}

/// Downloads every file of `entry` into `dest_dir` (created if missing).
pub(crate) fn fetch_entry(
    entry: &DatasetEntry,
    dest_dir: &Path,
    opts: &FetchOptions,
    progress: Option<&mut dyn FnMut(&Progress<'_>)>,
) -> Result<FetchReport, FetchError> {
    for name in opts.expected.keys() {
        if entry.file(name).is_none() {
            return Err(FetchError::UnknownFile {
                dataset: entry.name.to_string(),
                file: name.clone(),
                files: entry
                    .files
                    .iter()
                    .map(|f| f.file_name.to_string())
                    .collect(),
            });
        }
    }
    fs::create_dir_all(dest_dir).map_err(|source| FetchError::Io {
        path: dest_dir.to_path_buf(),
        source,
    })?;
    let mut noop = |_: &Progress<'_>| {};
    let progress: &mut dyn FnMut(&Progress<'_>) = match progress {
        Some(p) => p,
        None => &mut noop,
    };
    let mut files = Vec::with_capacity(entry.files.len());
    for (index, file) in entry.files.iter().enumerate() {
        let job = Job {
            file,
            url: opts.url_for(file),
            expected: opts
                .expected
                .get(&*file.file_name)
                .or(file.checksum.as_ref()),
            final_path: dest_dir.join(&*file.file_name),
            part_path: dest_dir.join(format!("{}.part", file.file_name)),
            index,
            count: entry.files.len(),
        };
        let report = job.run(opts, progress)?;
        match &report.verification {
            Verification::Verified(c) => {
                tracing::info!("{}: {} verified ({})", report.file_name, c.algo, c.hex);
            }
            Verification::Unverified => tracing::warn!(
                "{}: no published checksum, could not be verified; its sha256 is {}",
                report.file_name,
                report.sha256
            ),
        }
        files.push(report);
    }
    Ok(FetchReport {
        dataset: entry.name.to_string(),
        dir: dest_dir.to_path_buf(),
        files,
    })
}

/// One file to fetch.
struct Job<'a> {
    file: &'a RemoteFile,
    url: String,
    expected: Option<&'a Checksum>,
    final_path: PathBuf,
    part_path: PathBuf,
    index: usize,
    count: usize,
}

/// How a body stream ended.
enum Streamed {
    /// The part file holds the whole file: `bytes` long, with these digests, of which
    /// the first `from` were on disk before this run.
    Complete {
        bytes: u64,
        digests: Digests,
        from: u64,
    },
    /// The server answered in a way that invalidates the part file; start from zero.
    Restart(String),
}

impl Job<'_> {
    fn name(&self) -> &str {
        &self.file.file_name
    }

    fn want_md5(&self) -> bool {
        self.expected.is_some_and(|c| c.algo == HashAlgo::Md5)
    }

    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
        move |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    fn progress(&self, cb: &mut dyn FnMut(&Progress<'_>), done: u64, total: Option<u64>) {
        cb(&Progress {
            file: self.name(),
            file_index: self.index,
            file_count: self.count,
            done,
            total,
        });
    }

    fn run(
        &self,
        opts: &FetchOptions,
        cb: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<FileReport, FetchError> {
        if self.final_path.exists() {
            if opts.force {
                fs::remove_file(&self.final_path).map_err(Self::io_err(&self.final_path))?;
            } else {
                return self.check_existing(cb);
            }
        }
        let agent = build_agent(&self.url, opts);
        let mut restarted = false;
        loop {
            let offset = part_len(&self.part_path)?;
            let outcome = match self.file.size {
                // A complete part left by an earlier run that stopped before the rename.
                Some(size) if offset == size && offset > 0 => {
                    self.progress(cb, offset, Some(size));
                    self.complete_part(offset)?
                }
                Some(size) if offset > size => Streamed::Restart(format!(
                    "{offset} bytes on disk, more than the {size} expected"
                )),
                _ => self.request(&agent, offset, cb)?,
            };
            match outcome {
                Streamed::Complete {
                    bytes,
                    digests,
                    from,
                } => {
                    let status = if from > 0 {
                        FileStatus::Resumed { from }
                    } else {
                        FileStatus::Downloaded
                    };
                    return self.finish(bytes, digests, status);
                }
                Streamed::Restart(why) => {
                    if restarted {
                        return Err(FetchError::Protocol {
                            url: self.url.clone(),
                            file: self.name().to_string(),
                            message: format!("cannot resume: {why}"),
                        });
                    }
                    tracing::info!("{}: {why}; downloading from the first byte", self.name());
                    remove_if_exists(&self.part_path)?;
                    restarted = true;
                }
            }
        }
    }

    /// Hashes a part file that already holds every byte.
    fn complete_part(&self, bytes: u64) -> Result<Streamed, FetchError> {
        let (len, digests) = hash_file(&self.part_path, self.want_md5())?;
        debug_assert_eq!(len, bytes);
        Ok(Streamed::Complete {
            bytes: len,
            digests,
            from: bytes,
        })
    }

    /// One GET (with `Range` when `offset > 0`), streamed into the part file.
    fn request(
        &self,
        agent: &ureq::Agent,
        offset: u64,
        cb: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<Streamed, FetchError> {
        let mut req = agent.get(&self.url).set("Accept-Encoding", "identity");
        if offset > 0 {
            tracing::info!("{}: resuming at byte {offset}", self.name());
            req = req.set("Range", &format!("bytes={offset}-"));
        }
        let response = match req.call() {
            Ok(response) => response,
            Err(ureq::Error::Status(416, response)) if offset > 0 => {
                // Range not satisfiable: the part is complete, or longer than the file.
                let total = response
                    .header("Content-Range")
                    .and_then(parse_content_range)
                    .and_then(|r| r.total);
                return if total == Some(offset) {
                    self.progress(cb, offset, Some(offset));
                    self.complete_part(offset)
                } else {
                    Ok(Streamed::Restart(format!(
                        "the server cannot serve bytes from {offset} on (HTTP 416)"
                    )))
                };
            }
            Err(ureq::Error::Status(status, response)) => {
                return Err(FetchError::Http {
                    url: self.url.clone(),
                    file: self.name().to_string(),
                    status,
                    reason: response.status_text().to_string(),
                });
            }
            Err(ureq::Error::Transport(transport)) => {
                return Err(FetchError::Connection {
                    url: self.url.clone(),
                    file: self.name().to_string(),
                    message: transport_message(&transport),
                });
            }
        };
        let content_length = response
            .header("Content-Length")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let (append, total) = match response.status() {
            206 => {
                let range = response
                    .header("Content-Range")
                    .and_then(parse_content_range);
                match range {
                    Some(r) if r.start == offset => {
                        (offset > 0, r.total.or(content_length.map(|n| offset + n)))
                    }
                    Some(r) => {
                        return Ok(Streamed::Restart(format!(
                            "asked for bytes from {offset}, the server sent bytes from {}",
                            r.start
                        )));
                    }
                    None => {
                        return Ok(Streamed::Restart(
                            "a partial answer (HTTP 206) without a usable Content-Range"
                                .to_string(),
                        ));
                    }
                }
            }
            200 => {
                if offset > 0 {
                    tracing::info!(
                        "{}: the server ignored the Range request (HTTP 200); downloading from the first byte",
                        self.name()
                    );
                }
                (false, content_length)
            }
            status => {
                return Err(FetchError::Http {
                    url: self.url.clone(),
                    file: self.name().to_string(),
                    status,
                    reason: format!("{} (expected 200 or 206)", response.status_text()),
                });
            }
        };
        let start = if append { offset } else { 0 };
        self.stream(response.into_reader(), start, total, cb)
    }

    /// Writes the body to the part file (appending after `start` bytes), hashing as it goes.
    fn stream(
        &self,
        mut body: impl Read,
        start: u64,
        total: Option<u64>,
        cb: &mut dyn FnMut(&Progress<'_>),
    ) -> Result<Streamed, FetchError> {
        let mut hashers = Hashers::new(self.want_md5());
        let mut out = if start > 0 {
            let prefix = hashers.update_from_file(&self.part_path)?;
            if prefix != start {
                return Ok(Streamed::Restart(format!(
                    "{} changed while resuming",
                    self.part_path.display()
                )));
            }
            OpenOptions::new()
                .append(true)
                .open(&self.part_path)
                .map_err(Self::io_err(&self.part_path))?
        } else {
            File::create(&self.part_path).map_err(Self::io_err(&self.part_path))?
        };
        let mut done = start;
        self.progress(cb, done, total);
        let mut buf = vec![0u8; 64 * 1024];
        let interrupted = |done: u64, message: String| FetchError::Interrupted {
            url: self.url.clone(),
            file: self.name().to_string(),
            received: done,
            expected: total,
            part: self.part_path.clone(),
            message,
        };
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    out.flush().map_err(Self::io_err(&self.part_path))?;
                    return Err(interrupted(done, e.to_string()));
                }
            };
            out.write_all(&buf[..n])
                .map_err(Self::io_err(&self.part_path))?;
            hashers.update(&buf[..n]);
            done += n as u64;
            self.progress(cb, done, total);
        }
        out.sync_all().map_err(Self::io_err(&self.part_path))?;
        if let Some(total) = total
            && done != total
        {
            return Err(interrupted(
                done,
                "the connection closed before the end of the file".to_string(),
            ));
        }
        Ok(Streamed::Complete {
            bytes: done,
            digests: hashers.finish(),
            from: start,
        })
    }

    /// Verifies the complete part file and renames it to the final name.
    fn finish(
        &self,
        bytes: u64,
        digests: Digests,
        status: FileStatus,
    ) -> Result<FileReport, FetchError> {
        let verification = match self.expected {
            Some(expected) => {
                let actual = digests.get(expected.algo).unwrap_or_default();
                if !expected.matches(actual) {
                    remove_if_exists(&self.part_path)?;
                    return Err(FetchError::ChecksumMismatch {
                        file: self.name().to_string(),
                        url: self.url.clone(),
                        algo: expected.algo,
                        expected: expected.hex.to_string(),
                        actual: actual.to_string(),
                    });
                }
                Verification::Verified(expected.clone())
            }
            None => {
                if let Some(size) = self.file.size
                    && size != bytes
                {
                    remove_if_exists(&self.part_path)?;
                    return Err(FetchError::SizeMismatch {
                        file: self.name().to_string(),
                        url: self.url.clone(),
                        expected: size,
                        actual: bytes,
                    });
                }
                Verification::Unverified
            }
        };
        fs::rename(&self.part_path, &self.final_path).map_err(Self::io_err(&self.final_path))?;
        Ok(FileReport {
            file_name: self.name().to_string(),
            path: self.final_path.clone(),
            url: self.url.clone(),
            bytes,
            status,
            verification,
            sha256: digests.sha256,
        })
    }

    /// The final file exists: check it without any request.
    fn check_existing(&self, cb: &mut dyn FnMut(&Progress<'_>)) -> Result<FileReport, FetchError> {
        let (bytes, digests) = hash_file(&self.final_path, self.want_md5())?;
        let verification = match self.expected {
            Some(expected) => {
                let actual = digests.get(expected.algo).unwrap_or_default();
                if !expected.matches(actual) {
                    return Err(FetchError::ExistingMismatch {
                        path: self.final_path.clone(),
                        expected: expected.to_string(),
                        actual: format!("{}:{actual}", expected.algo),
                    });
                }
                Verification::Verified(expected.clone())
            }
            None => {
                if let Some(size) = self.file.size
                    && size != bytes
                {
                    return Err(FetchError::ExistingMismatch {
                        path: self.final_path.clone(),
                        expected: format!("{size} bytes"),
                        actual: format!("{bytes} bytes"),
                    });
                }
                Verification::Unverified
            }
        };
        self.progress(cb, bytes, Some(bytes));
        Ok(FileReport {
            file_name: self.name().to_string(),
            path: self.final_path.clone(),
            url: self.url.clone(),
            bytes,
            status: FileStatus::AlreadyPresent,
            verification,
            sha256: digests.sha256,
        })
    }
}

fn build_agent(url: &str, opts: &FetchOptions) -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(opts.connect_timeout)
        .timeout_read(opts.read_timeout)
        .timeout_write(opts.read_timeout)
        .redirects(10)
        .user_agent(concat!("crossomics-fetch/", env!("CARGO_PKG_VERSION")))
        .try_proxy_from_env(opts.proxy_from_env && !is_loopback(url))
        .build()
}

/// A transport error without the URL (the error message names it already), with each
/// distinct cause once: "Connection Failed: Connect error: Connection refused (os error 111)".
fn transport_message(transport: &ureq::Transport) -> String {
    let mut parts = vec![transport.kind().to_string()];
    if let Some(message) = transport.message() {
        parts.push(message.to_string());
    }
    let mut source = std::error::Error::source(transport);
    while let Some(cause) = source {
        let text = cause.to_string();
        // Nested ureq errors repeat the URL and kind: keep only their new tail.
        let tail = text.rsplit(": ").next().unwrap_or(&text).to_string();
        if !parts.contains(&tail) {
            parts.push(tail);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// Whether the URL's host is the local machine (no proxy for those).
fn is_loopback(url: &str) -> bool {
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        host_port.split(':').next().unwrap_or("")
    };
    host.eq_ignore_ascii_case("localhost") || host == "::1" || host.starts_with("127.")
}

fn part_len(path: &Path) -> Result<u64, FetchError> {
    match fs::metadata(path) {
        Ok(meta) => Ok(meta.len()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
        Err(source) => Err(FetchError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn remove_if_exists(path: &Path) -> Result<(), FetchError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(FetchError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// A parsed `Content-Range: bytes START-END/TOTAL` (or `bytes */TOTAL`; TOTAL may be `*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ContentRange {
    start: u64,
    total: Option<u64>,
}

fn parse_content_range(value: &str) -> Option<ContentRange> {
    let rest = value.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    let start = match range.trim() {
        "*" => total?,
        r => r.split_once('-')?.0.trim().parse().ok()?,
    };
    Some(ContentRange { start, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_forms() {
        assert_eq!(
            parse_content_range("bytes 100-199/200"),
            Some(ContentRange {
                start: 100,
                total: Some(200)
            })
        );
        assert_eq!(
            parse_content_range("bytes 5-9/*"),
            Some(ContentRange {
                start: 5,
                total: None
            })
        );
        assert_eq!(
            parse_content_range("bytes */300"),
            Some(ContentRange {
                start: 300,
                total: Some(300)
            })
        );
        assert_eq!(parse_content_range("items 1-2/3"), None);
        assert_eq!(parse_content_range("bytes x-2/3"), None);
    }

    #[test]
    fn loopback_hosts() {
        assert!(is_loopback("http://127.0.0.1:8080/a"));
        assert!(is_loopback("http://localhost/a"));
        assert!(is_loopback("http://user@[::1]:80/a"));
        assert!(!is_loopback("https://ftp.ncbi.nlm.nih.gov/geo/x"));
        assert!(!is_loopback("https://127example.org/x"));
    }

    #[test]
    fn base_url_override_uses_the_file_name() {
        let file = RemoteFile::new("https://example.org/deep/path/x.h5?dl=1", "x.h5");
        let opts = FetchOptions::default().with_base_url("http://127.0.0.1:9/mirror/");
        assert_eq!(opts.url_for(&file), "http://127.0.0.1:9/mirror/x.h5");
        assert_eq!(
            FetchOptions::default().url_for(&file),
            "https://example.org/deep/path/x.h5?dl=1"
        );
    }
}
