//! Input limits shared by every reader of untrusted data (MatrixMarket, 10x folders and
//! `.h5`, h5ad / h5mu, archives, uploads), the `crossomics` CLI and the portal.
//!
//! The rule they serve: **allocate by what was read, never by a size a file claims.**
//! A header that claims 10^12 rows, an HDF5 dataspace of 10^15 values, a gzip stream that
//! inflates to terabytes or a 2 GiB "line" must end in an error that names the file, the
//! claim and the limit (and how to raise it) — not in an allocation the process cannot
//! survive (Rust aborts on allocation failure; an abort is not a panic and no
//! `catch_unwind` stops it).
//!
//! [`Limits`] is a plain serde struct (`[limits]` in a config, `--max-*` flags on the CLI),
//! [`Limit`] names one of its fields, [`LimitError`] is what exceeding one returns, and the
//! two I/O adaptors ([`CappedReader`], [`read_line_capped`]) bound decompression and line
//! buffering wherever a stream is read.

use std::fmt;
use std::io::{self, BufRead, Read};

use serde::{Deserialize, Serialize};

/// Upper bounds on what one input may hold. Every reader checks a claimed size (a header,
/// a dataspace, a `shape` attribute) against these **before** allocating for it, and
/// counts what it actually reads against them while streaming.
///
/// The defaults fit a 24 GB machine reading one dataset of a few million cells;
/// [`Limits::portal`] is the stricter set a server open to uploads starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Cells (rows of a matrix, barcodes, `obs` rows) in one file.
    pub max_cells: u64,
    /// Features (genes, peaks; matrix columns, `var` rows) in one file.
    pub max_features: u64,
    /// Stored entries of one sparse matrix (what a MatrixMarket size line or an h5ad
    /// `data` array claims, and what is read).
    pub max_nonzeros: u64,
    /// Values of one dense array read whole (a dense `X`, an `obsm` embedding, a
    /// prediction the size of cells x target features).
    pub max_dense_values: u64,
    /// Bytes one compressed stream (gzip, a zip or tar entry) may inflate to.
    pub max_inflated_bytes: u64,
    /// Bytes of one line of a text file (MatrixMarket, TSV, BED, CSV).
    pub max_line_bytes: u64,
    /// Entries of one archive (zip, tar).
    pub max_archive_entries: u64,
    /// Bytes all entries of one archive unpack to together.
    pub max_unpacked_bytes: u64,
    /// Columns of one `obs` / `var` data frame (or cell metadata table).
    pub max_obs_columns: u64,
    /// Objects (groups, datasets, links) in one HDF5 file.
    pub max_hdf5_objects: u64,
    /// Bytes of one HDF5 attribute, or of one chunk of a chunked dataset, as stored
    /// uncompressed (HDF5 allocates a whole chunk to decompress it).
    pub max_hdf5_block_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_cells: 5_000_000,
            max_features: 2_000_000,
            // CSR of 300 M entries is 3.6 GB (f32 value + 8-byte index); the MatrixMarket
            // reader holds COO triplets (16 B) on the way: about 8.4 GB at the limit.
            max_nonzeros: 300_000_000,
            // 2 GB of f32
            max_dense_values: 500_000_000,
            max_inflated_bytes: 64 << 30,
            max_line_bytes: 1 << 20,
            max_archive_entries: 1000,
            max_unpacked_bytes: 16 << 30,
            max_obs_columns: 10_000,
            max_hdf5_objects: 1_000_000,
            max_hdf5_block_bytes: 256 << 20,
        }
    }
}

impl Limits {
    /// The stricter defaults of `crossomics serve`: one job's data must fit in a couple of
    /// GiB whatever the upload claims (see `docs/portal.md`, Security).
    pub fn portal() -> Self {
        Self {
            max_cells: 200_000,
            max_features: 500_000,
            max_nonzeros: 60_000_000,
            max_dense_values: 100_000_000,
            max_inflated_bytes: 4 << 30,
            max_line_bytes: 64 << 10,
            max_archive_entries: 100,
            max_unpacked_bytes: 4 << 30,
            max_obs_columns: 1000,
            max_hdf5_objects: 100_000,
            max_hdf5_block_bytes: 64 << 20,
        }
    }

    /// The value of one limit.
    pub fn get(&self, limit: Limit) -> u64 {
        match limit {
            Limit::Cells => self.max_cells,
            Limit::Features => self.max_features,
            Limit::Nonzeros => self.max_nonzeros,
            Limit::DenseValues => self.max_dense_values,
            Limit::InflatedBytes => self.max_inflated_bytes,
            Limit::LineBytes => self.max_line_bytes,
            Limit::ArchiveEntries => self.max_archive_entries,
            Limit::UnpackedBytes => self.max_unpacked_bytes,
            Limit::ObsColumns => self.max_obs_columns,
            Limit::Hdf5Objects => self.max_hdf5_objects,
            Limit::Hdf5BlockBytes => self.max_hdf5_block_bytes,
        }
    }

    /// Sets one limit (the CLI's `--max-*` flags).
    pub fn set(&mut self, limit: Limit, value: u64) {
        let field = match limit {
            Limit::Cells => &mut self.max_cells,
            Limit::Features => &mut self.max_features,
            Limit::Nonzeros => &mut self.max_nonzeros,
            Limit::DenseValues => &mut self.max_dense_values,
            Limit::InflatedBytes => &mut self.max_inflated_bytes,
            Limit::LineBytes => &mut self.max_line_bytes,
            Limit::ArchiveEntries => &mut self.max_archive_entries,
            Limit::UnpackedBytes => &mut self.max_unpacked_bytes,
            Limit::ObsColumns => &mut self.max_obs_columns,
            Limit::Hdf5Objects => &mut self.max_hdf5_objects,
            Limit::Hdf5BlockBytes => &mut self.max_hdf5_block_bytes,
        };
        *field = value;
    }

    /// `Ok` when `claimed <= limit`; otherwise an error naming `source`, `what` was
    /// claimed and how to raise the limit. `claimed` is a `u128` so that products of two
    /// claimed `u64` sizes cannot overflow on the way here.
    pub fn check(
        &self,
        limit: Limit,
        claimed: u128,
        source: &str,
        what: &str,
    ) -> Result<(), LimitError> {
        let max = self.get(limit);
        if claimed <= u128::from(max) {
            Ok(())
        } else {
            Err(LimitError {
                file: source.to_string(),
                what: what.to_string(),
                claimed,
                limit,
                max,
            })
        }
    }
}

/// One field of [`Limits`]: its config key and CLI flag come from here, so an error can
/// say how to raise it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    Cells,
    Features,
    Nonzeros,
    DenseValues,
    InflatedBytes,
    LineBytes,
    ArchiveEntries,
    UnpackedBytes,
    ObsColumns,
    Hdf5Objects,
    Hdf5BlockBytes,
}

impl Limit {
    /// Every limit, in the order of [`Limits`]' fields.
    pub const ALL: [Limit; 11] = [
        Limit::Cells,
        Limit::Features,
        Limit::Nonzeros,
        Limit::DenseValues,
        Limit::InflatedBytes,
        Limit::LineBytes,
        Limit::ArchiveEntries,
        Limit::UnpackedBytes,
        Limit::ObsColumns,
        Limit::Hdf5Objects,
        Limit::Hdf5BlockBytes,
    ];

    /// The field of [`Limits`] (and the key under `[limits]` in a config file).
    pub fn key(self) -> &'static str {
        match self {
            Limit::Cells => "max_cells",
            Limit::Features => "max_features",
            Limit::Nonzeros => "max_nonzeros",
            Limit::DenseValues => "max_dense_values",
            Limit::InflatedBytes => "max_inflated_bytes",
            Limit::LineBytes => "max_line_bytes",
            Limit::ArchiveEntries => "max_archive_entries",
            Limit::UnpackedBytes => "max_unpacked_bytes",
            Limit::ObsColumns => "max_obs_columns",
            Limit::Hdf5Objects => "max_hdf5_objects",
            Limit::Hdf5BlockBytes => "max_hdf5_block_bytes",
        }
    }

    /// The command-line flag that sets it (`--max-cells`).
    pub fn flag(self) -> String {
        format!("--{}", self.key().replace('_', "-"))
    }

    /// In words, for messages and docs.
    pub fn describe(self) -> &'static str {
        match self {
            Limit::Cells => "cells in one file",
            Limit::Features => "features in one file",
            Limit::Nonzeros => "stored entries of one sparse matrix",
            Limit::DenseValues => "values of one dense array",
            Limit::InflatedBytes => "bytes one compressed stream inflates to",
            Limit::LineBytes => "bytes of one text line",
            Limit::ArchiveEntries => "entries of one archive",
            Limit::UnpackedBytes => "bytes one archive unpacks to",
            Limit::ObsColumns => "columns of one obs/var table",
            Limit::Hdf5Objects => "objects in one HDF5 file",
            Limit::Hdf5BlockBytes => "bytes of one HDF5 attribute or chunk",
        }
    }

    /// Whether the limit counts bytes (for printing it in KiB / MiB / GiB).
    pub fn is_bytes(self) -> bool {
        matches!(
            self,
            Limit::InflatedBytes | Limit::LineBytes | Limit::UnpackedBytes | Limit::Hdf5BlockBytes
        )
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

/// A claimed or counted size over one of the [`Limits`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}: {what} ({}) is over the limit of {} {} ({}; raise it with `{}` or `{}` under `[limits]` in the config)",
    amount(*claimed, limit.is_bytes()),
    amount(u128::from(*max), limit.is_bytes()),
    limit.describe(),
    limit.key(),
    limit.flag(),
    limit.key()
)]
pub struct LimitError {
    /// the file (or upload) that made the claim
    pub file: String,
    /// what was claimed, in words (`the size line's row count`)
    pub what: String,
    pub claimed: u128,
    pub limit: Limit,
    pub max: u64,
}

impl LimitError {
    /// As an `io::Error` (kind `InvalidData`), for adaptors inside `Read` chains; recover
    /// it with [`LimitError::from_io`].
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, self)
    }

    /// The `LimitError` inside an `io::Error` made by [`LimitError::into_io`].
    pub fn from_io(e: &io::Error) -> Option<&LimitError> {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<LimitError>())
    }
}

fn amount(n: u128, bytes: bool) -> String {
    if bytes {
        human_bytes(u64::try_from(n).unwrap_or(u64::MAX))
    } else {
        n.to_string()
    }
}

/// Bytes in words with binary units (`2.0 GiB`, `512 B`).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A reader that fails (with a [`LimitError`] inside an `io::Error`) once more than
/// `max` bytes have come through it: wrap every decompressor in one, so that a small
/// compressed file cannot inflate without bound.
#[derive(Debug)]
pub struct CappedReader<R> {
    inner: R,
    read: u64,
    max: u64,
    limit: Limit,
    source: String,
}

impl<R: Read> CappedReader<R> {
    /// Caps `inner` at `limits.max_inflated_bytes`; `source` names the stream in errors.
    pub fn inflated(inner: R, limits: &Limits, source: impl Into<String>) -> Self {
        Self::new(inner, Limit::InflatedBytes, limits, source)
    }

    /// Caps `inner` at the value of `limit`.
    pub fn new(inner: R, limit: Limit, limits: &Limits, source: impl Into<String>) -> Self {
        Self {
            inner,
            read: 0,
            max: limits.get(limit),
            limit,
            source: source.into(),
        }
    }

    /// Bytes read so far.
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    pub fn into_inner(self) -> R {
        self.inner
    }
}

impl<R: Read> Read for CappedReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.read > self.max {
            return Err(self.error());
        }
        // never ask for more than one byte past the cap, so that going over is seen
        let room = (self.max - self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.max {
            return Err(self.error());
        }
        Ok(n)
    }
}

impl<R> CappedReader<R> {
    fn error(&self) -> io::Error {
        LimitError {
            file: self.source.clone(),
            what: "the data read".into(),
            claimed: u128::from(self.read),
            limit: self.limit,
            max: self.max,
        }
        .into_io()
    }
}

/// Reads one line (up to and including `\n`) into `buf`, which is cleared first; returns
/// the bytes read (0 at the end of the stream). A line longer than `limits.max_line_bytes`
/// is an error (a [`LimitError`] inside the `io::Error`) after reading at most that many
/// bytes of it: the buffer never grows past the limit, whatever the file holds.
pub fn read_line_capped<R: BufRead + ?Sized>(
    reader: &mut R,
    buf: &mut Vec<u8>,
    limits: &Limits,
    source: &str,
) -> io::Result<usize> {
    buf.clear();
    let max = limits.max_line_bytes;
    loop {
        let (done, used) = {
            let available = match reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if available.is_empty() {
                return Ok(buf.len());
            }
            match available.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    buf.extend_from_slice(&available[..=i]);
                    (true, i + 1)
                }
                None => {
                    buf.extend_from_slice(available);
                    (false, available.len())
                }
            }
        };
        reader.consume(used);
        if buf.len() as u64 > max.saturating_add(1) {
            return Err(LimitError {
                file: source.to_string(),
                what: "a line".into(),
                claimed: buf.len() as u128,
                limit: Limit::LineBytes,
                max,
            }
            .into_io());
        }
        if done {
            return Ok(buf.len());
        }
    }
}

/// A short, escaped excerpt of untrusted bytes for an error message: at most `max_chars`
/// characters, control and non-ASCII characters escaped, `…` when cut. Error messages
/// quote file content only through this, so no message can carry more than a few bytes
/// of whatever a file points at.
pub fn excerpt(bytes: &[u8], max_chars: usize) -> String {
    let mut out = String::new();
    for (shown, &b) in bytes.iter().enumerate() {
        if shown >= max_chars {
            out.push('…');
            break;
        }
        match b {
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// [`excerpt`] of a string.
pub fn excerpt_str(s: &str, max_chars: usize) -> String {
    excerpt(s.as_bytes(), max_chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    #[test]
    fn every_limit_round_trips_through_get_and_set_and_its_key_is_the_serde_field() {
        let mut limits = Limits::default();
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            limits.set(limit, 1000 + i as u64);
        }
        for (i, limit) in Limit::ALL.into_iter().enumerate() {
            assert_eq!(limits.get(limit), 1000 + i as u64);
            let text = format!("{} = 7\n", limit.key());
            let parsed: Limits = toml::from_str(&text).unwrap();
            assert_eq!(parsed.get(limit), 7, "{limit}");
        }
    }

    #[test]
    fn unknown_keys_are_refused_by_name() {
        let err = toml::from_str::<Limits>("max_cell = 3\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_cell"), "{err}");
    }

    #[test]
    fn the_portal_is_stricter_than_the_cli_everywhere() {
        let (cli, portal) = (Limits::default(), Limits::portal());
        for limit in Limit::ALL {
            assert!(portal.get(limit) <= cli.get(limit), "{limit}");
        }
    }

    #[test]
    fn a_claim_over_the_limit_names_the_file_the_claim_and_how_to_raise_it() {
        let limits = Limits::default();
        assert!(
            limits
                .check(Limit::Cells, 5_000_000, "a.mtx", "rows")
                .is_ok()
        );
        let e = limits
            .check(Limit::Cells, 1_000_000_000_000, "a.mtx", "the row count")
            .unwrap_err();
        let msg = e.to_string();
        for needle in [
            "a.mtx",
            "the row count",
            "1000000000000",
            "5000000",
            "max_cells",
            "--max-cells",
        ] {
            assert!(msg.contains(needle), "{needle}: {msg}");
        }
    }

    #[test]
    fn capped_reader_stops_one_byte_past_the_cap() {
        let limits = Limits {
            max_inflated_bytes: 10,
            ..Limits::default()
        };
        let mut ok = Vec::new();
        CappedReader::inflated(Cursor::new(vec![1u8; 10]), &limits, "x")
            .read_to_end(&mut ok)
            .unwrap();
        assert_eq!(ok.len(), 10);
        let mut r = CappedReader::inflated(std::io::repeat(0), &limits, "bomb.gz");
        let mut out = Vec::new();
        let e = r.read_to_end(&mut out).unwrap_err();
        assert!(out.len() <= 11, "{}", out.len());
        let inner = LimitError::from_io(&e).unwrap();
        assert_eq!(inner.limit, Limit::InflatedBytes);
        assert!(e.to_string().contains("bomb.gz"));
    }

    #[test]
    fn long_lines_are_cut_off_at_the_limit() {
        let limits = Limits {
            max_line_bytes: 8,
            ..Limits::default()
        };
        let mut buf = Vec::new();
        let mut r = Cursor::new(b"short\nexactly8\nmuch too long line\n".to_vec());
        assert_eq!(read_line_capped(&mut r, &mut buf, &limits, "f").unwrap(), 6);
        assert_eq!(buf, b"short\n");
        // 8 bytes plus the newline is allowed
        assert_eq!(read_line_capped(&mut r, &mut buf, &limits, "f").unwrap(), 9);
        let e = read_line_capped(&mut r, &mut buf, &limits, "f").unwrap_err();
        assert_eq!(LimitError::from_io(&e).unwrap().limit, Limit::LineBytes);
        // an endless line is read only up to the limit plus one buffer
        let mut endless = std::io::BufReader::with_capacity(16, std::io::repeat(b'a'));
        let e = read_line_capped(&mut endless, &mut buf, &limits, "f").unwrap_err();
        assert!(LimitError::from_io(&e).is_some());
        assert!(buf.len() <= 8 + 1 + 16, "{}", buf.len());
    }

    #[test]
    fn excerpts_are_short_and_escaped() {
        assert_eq!(excerpt(b"root:x:0:0\nbin", 20), "root:x:0:0\\nbin");
        assert_eq!(excerpt(b"abcdef", 3), "abc…");
        assert_eq!(excerpt(&[0, 0xff, b'\\'], 10), "\\x00\\xff\\\\");
    }

    proptest::proptest! {
        #[test]
        fn capped_lines_reassemble_the_input_when_every_line_fits(
            lines in proptest::collection::vec("[a-z ]{0,20}", 0..20)
        ) {
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            let limits = Limits { max_line_bytes: 20, ..Limits::default() };
            let mut r = Cursor::new(text.as_bytes().to_vec());
            let mut buf = Vec::new();
            let mut back = Vec::new();
            while read_line_capped(&mut r, &mut buf, &limits, "p").unwrap() > 0 {
                back.extend_from_slice(&buf);
            }
            proptest::prop_assert_eq!(back, text.into_bytes());
        }
    }
}
