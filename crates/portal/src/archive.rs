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

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crossomics_limits::{CappedReader, Limit, LimitError, Limits};

/// Bytes of a GNU long name or long link this server reads (Linux's `PATH_MAX` is 4096).
pub const MAX_LONG_NAME_BYTES: u64 = 64 << 10;
/// Bytes of one pax extension header (path, times, xattrs) this server reads.
pub const MAX_PAX_BYTES: u64 = 1 << 20;
/// Bytes one chunk of unpacking reads; the cancel flag is checked between chunks.
const CHUNK: usize = 64 << 10;

/// Why an archive (or a compressed upload) was refused.
#[derive(Debug)]
pub enum ArchiveError {
    /// The archive breaks a rule (escaping path, link); the message says which.
    Refused(String),
    /// Over one of the [`Limits`]; the error names it and how to raise it.
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

/// The marker inside an `io::Error` that a [`Metered`] reader returns once the job is
/// cancelled.
#[derive(Debug)]
struct CancelledMarker;

impl std::fmt::Display for CancelledMarker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("cancelled")
    }
}

impl std::error::Error for CancelledMarker {}

/// An error of reading untrusted (maybe compressed) data, sorted: a limit, a
/// cancellation, else damage described by `what`.
pub fn read_error(e: io::Error, what: &str) -> ArchiveError {
    if let Some(limit) = LimitError::from_io(&e) {
        return ArchiveError::Limit(limit.clone());
    }
    if e.get_ref().is_some_and(|i| i.is::<CancelledMarker>()) {
        return ArchiveError::Cancelled;
    }
    ArchiveError::Malformed(format!("{what}: {e}"))
}

/// What one job's files may still unpack to, the limits, and the job's cancel flag.
#[derive(Debug, Clone)]
pub struct Budget {
    limits: Limits,
    /// of `limits.max_unpacked_bytes`
    used: u64,
    cancel: Arc<AtomicBool>,
}

impl Budget {
    pub fn new(limits: &Limits) -> Self {
        Self::with_cancel(limits, Arc::new(AtomicBool::new(false)))
    }

    /// A budget that stops (with [`ArchiveError::Cancelled`]) once `cancel` is set.
    pub fn with_cancel(limits: &Limits, cancel: Arc<AtomicBool>) -> Self {
        Self {
            limits: *limits,
            used: 0,
            cancel,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Bytes unpacked (or inflated) so far.
    pub fn used(&self) -> u64 {
        self.used
    }

    fn room(&self) -> u64 {
        self.limits.max_unpacked_bytes.saturating_sub(self.used)
    }

    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed)
    }

    fn check_cancel(&self) -> Result<(), ArchiveError> {
        if self.cancelled() {
            Err(ArchiveError::Cancelled)
        } else {
            Ok(())
        }
    }

    fn over(&self, claimed: u64, source: &str) -> LimitError {
        LimitError {
            file: source.to_string(),
            what: "what the upload unpacks to, counted as written and inflated".into(),
            claimed: u128::from(claimed),
            limit: Limit::UnpackedBytes,
            max: self.limits.max_unpacked_bytes,
        }
    }

    /// Counts `n` more bytes against `max_unpacked_bytes`.
    pub fn charge(&mut self, n: u64, source: &str) -> Result<(), ArchiveError> {
        let total = self.used.saturating_add(n);
        if total > self.limits.max_unpacked_bytes {
            return Err(self.over(total, source).into());
        }
        self.used = total;
        Ok(())
    }

    /// A reader over `inner` that fails once what it read would not fit in what is
    /// left of the budget, or once the job is cancelled. Charge what it read
    /// ([`Metered::read_so_far`]) afterwards.
    pub fn metered<R: Read>(&self, inner: R, source: &str) -> Metered<R> {
        Metered {
            inner,
            read: 0,
            room: self.room(),
            before: self.used,
            max: self.limits.max_unpacked_bytes,
            cancel: Arc::clone(&self.cancel),
            source: source.to_string(),
        }
    }
}

/// See [`Budget::metered`].
#[derive(Debug)]
pub struct Metered<R> {
    inner: R,
    read: u64,
    room: u64,
    before: u64,
    max: u64,
    cancel: Arc<AtomicBool>,
    source: String,
}

impl<R> Metered<R> {
    pub fn read_so_far(&self) -> u64 {
        self.read
    }
}

impl<R: Read> Read for Metered<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.cancel.load(Ordering::Relaxed) {
            return Err(io::Error::other(CancelledMarker));
        }
        let room = self.room.saturating_sub(self.read).saturating_add(1);
        let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.room {
            return Err(LimitError {
                file: self.source.clone(),
                what: "what the upload unpacks to, counted as written and inflated".into(),
                claimed: u128::from(self.before.saturating_add(self.read)),
                limit: Limit::UnpackedBytes,
                max: self.max,
            }
            .into_io());
        }
        Ok(n)
    }
}

/// The formats [`unpack`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
}

/// A relative path of plain components, or an error naming the entry.
fn safe_relative(name: &str) -> Result<Option<PathBuf>, ArchiveError> {
    let p = Path::new(name);
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                return Err(ArchiveError::Refused(format!(
                    "archive entry `{}` points outside the archive's folder",
                    crossomics_limits::excerpt_str(name, 200)
                )));
            }
        }
    }
    // macOS's resource forks and Finder files are not data
    let junk = out.components().any(|c| {
        let s = c.as_os_str().to_string_lossy();
        s == "__MACOSX" || s.starts_with("._") || s == ".DS_Store"
    });
    Ok((!out.as_os_str().is_empty() && !junk).then_some(out))
}

/// Whether a file starts with the gzip magic bytes.
pub fn is_gzip(path: &Path) -> io::Result<bool> {
    let mut head = [0u8; 2];
    let mut f = File::open(path)?;
    let mut n = 0;
    while n < 2 {
        match f.read(&mut head[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n == 2 && head == [0x1f, 0x8b])
}

/// Reads a gzip file to its end, counting what it inflates to against
/// `max_inflated_bytes` (this one stream) and the budget (all of the job); returns the
/// inflated size, already charged.
pub fn charge_inflated(
    path: &Path,
    budget: &mut Budget,
    source: &str,
) -> Result<u64, ArchiveError> {
    let gz = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(path)?));
    let capped = CappedReader::inflated(gz, &budget.limits, source);
    let mut metered = budget.metered(capped, source);
    let mut buf = vec![0u8; CHUNK];
    loop {
        match metered.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(read_error(e, &format!("{source} is not a valid gzip file"))),
        }
    }
    let n = metered.read_so_far();
    budget.charge(n, source)?;
    Ok(n)
}

/// Writes `from` to the new file `to`, in chunks, counting the bytes against the budget;
/// a gzipped entry is then counted by what it inflates to as well.
fn write_entry(
    from: &mut dyn Read,
    to: &Path,
    budget: &mut Budget,
    name: &str,
) -> Result<u64, ArchiveError> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    let mut out = File::create_new(to).map_err(|e| {
        if e.kind() == io::ErrorKind::AlreadyExists {
            ArchiveError::Refused(format!(
                "archive lists `{}` twice",
                to.file_name().unwrap_or_default().to_string_lossy()
            ))
        } else {
            ArchiveError::Io(e)
        }
    })?;
    let source = format!(
        "archive entry `{}`",
        crossomics_limits::excerpt_str(name, 200)
    );
    let mut reader = budget.metered(from, &source);
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(read_error(e, "archive is damaged or truncated")),
        };
        out.write_all(&buf[..n])?;
    }
    let written = reader.read_so_far();
    budget.charge(written, &source)?;
    out.flush()?;
    drop(out);
    if is_gzip(to)? {
        // it counts by what it inflates to (or by its size on disk, if that is more)
        budget.used -= written;
        let inflated = charge_inflated(to, budget, &source)?;
        budget.used += written.saturating_sub(inflated);
    }
    Ok(written)
}

fn count_entry(entries: &mut u64, limits: &Limits) -> Result<(), ArchiveError> {
    *entries += 1;
    limits.check(
        Limit::ArchiveEntries,
        u128::from(*entries),
        "the archive",
        "its entries, counted as read",
    )?;
    Ok(())
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
        Format::Zip => unpack_zip(archive, dest, budget),
        Format::Tar => unpack_tar(BufReader::new(File::open(archive)?), dest, budget),
        Format::TarGz => {
            let gz = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(archive)?));
            let capped = CappedReader::inflated(gz, &budget.limits, "the tar.gz's gzip stream");
            unpack_tar(capped, dest, budget)
        }
    }
}

fn unpack_tar(
    reader: impl Read,
    dest: &Path,
    budget: &mut Budget,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut tar = tar::Archive::new(reader);
    let malformed = |e: io::Error| read_error(e, "archive is damaged or truncated");
    let mut files = Vec::new();
    let mut entries = 0u64;
    // extension headers describe the entry after them
    let (mut long_name, mut pax_path, mut pax_size) = (None::<Vec<u8>>, None::<Vec<u8>>, None);
    let mut extensions_in_a_row = 0;
    // raw: the tar crate would read GNU long names and pax records whole, however large
    // their headers say they are; here their size is checked first
    for entry in tar.entries().map_err(malformed)?.raw(true) {
        budget.check_cancel()?;
        let mut entry = entry.map_err(malformed)?;
        let kind = entry.header().entry_type();
        let size = entry.header().entry_size().map_err(malformed)?;
        let (is_long, is_pax) = (
            kind.is_gnu_longname() || kind.is_gnu_longlink(),
            kind.is_pax_local_extensions() || kind.is_pax_global_extensions(),
        );
        if is_long || is_pax {
            extensions_in_a_row += 1;
            if extensions_in_a_row > 4 {
                return Err(ArchiveError::Refused(
                    "archive has more than 4 extension headers for one entry".into(),
                ));
            }
            let cap = if is_pax {
                MAX_PAX_BYTES
            } else {
                MAX_LONG_NAME_BYTES
            };
            if size > cap {
                return Err(ArchiveError::Refused(format!(
                    "archive has a {} header of {} (this server reads at most {})",
                    if is_pax {
                        "pax extension"
                    } else {
                        "GNU long name"
                    },
                    crate::human_bytes(size),
                    crate::human_bytes(cap)
                )));
            }
            let mut data = Vec::with_capacity(size as usize);
            (&mut entry)
                .take(size)
                .read_to_end(&mut data)
                .map_err(malformed)?;
            if (data.len() as u64) < size {
                return Err(ArchiveError::Malformed(
                    "archive is damaged or truncated (in an extension header)".into(),
                ));
            }
            if kind.is_gnu_longname() {
                while data.last() == Some(&0) {
                    data.pop();
                }
                long_name = Some(data);
            } else if kind.is_pax_local_extensions() {
                for record in tar::PaxExtensions::new(&data) {
                    let record = record.map_err(malformed)?;
                    match record.key_bytes() {
                        b"path" => pax_path = Some(record.value_bytes().to_vec()),
                        b"size" => {
                            let v = record.value().ok().and_then(|v| v.parse::<u64>().ok());
                            pax_size = Some(v.ok_or_else(|| {
                                ArchiveError::Malformed("archive has a bad pax size".into())
                            })?);
                        }
                        _ => {}
                    }
                }
            }
            // long links name link targets: links are refused below anyway
            continue;
        }
        extensions_in_a_row = 0;
        count_entry(&mut entries, &budget.limits)?;
        let name_bytes = pax_path
            .take()
            .or(long_name.take())
            .unwrap_or_else(|| entry.path_bytes().into_owned());
        if let Some(s) = pax_size.take()
            && s != size
        {
            return Err(ArchiveError::Refused(
                "archive entry's pax size differs from its header's size (not supported)".into(),
            ));
        }
        let name = String::from_utf8_lossy(&name_bytes).into_owned();
        let Some(rel) = safe_relative(&name)? else {
            continue;
        };
        if kind.is_dir() {
            std::fs::create_dir_all(dest.join(&rel))?;
        } else if kind.is_file() {
            write_entry(
                &mut (&mut entry).take(size),
                &dest.join(&rel),
                budget,
                &name,
            )?;
            files.push(rel);
        } else {
            return Err(ArchiveError::Refused(format!(
                "archive entry `{}` is a {}; only files and folders are accepted",
                crossomics_limits::excerpt_str(&name, 200),
                if kind.is_symlink() || kind.is_hard_link() {
                    "link"
                } else {
                    "special file"
                }
            )));
        }
    }
    if long_name.is_some() || pax_path.is_some() {
        return Err(ArchiveError::Malformed(
            "archive is damaged or truncated (an extension header describes no entry)".into(),
        ));
    }
    Ok(files)
}

/// One entry of a zip's central directory.
#[derive(Debug)]
struct ZipEntry {
    name: String,
    made_by: u16,
    flags: u16,
    method: u16,
    crc: u32,
    compressed: u64,
    uncompressed: u64,
    local_offset: u64,
    external_attrs: u32,
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u64_at(b: &[u8], i: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[i..i + 8]);
    u64::from_le_bytes(a)
}

fn read_at(f: &mut File, offset: u64, buf: &mut [u8]) -> Result<(), ArchiveError> {
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
        .map_err(|_| ArchiveError::Malformed("zip archive is damaged or truncated".into()))
}

const EOCD: &[u8] = b"PK\x05\x06";
const EOCD64: &[u8] = b"PK\x06\x06";
const EOCD64_LOCATOR: &[u8] = b"PK\x06\x07";
const CENTRAL: &[u8] = b"PK\x01\x02";
const LOCAL: &[u8] = b"PK\x03\x04";

/// Where a zip's central directory is and how many entries it claims, from its end
/// records; the count is checked against the limit here, before anything is read by it.
fn zip_directory(f: &mut File, limits: &Limits) -> Result<(u64, u64, u64), ArchiveError> {
    let damaged = |m: &str| ArchiveError::Malformed(format!("not a readable zip archive: {m}"));
    let len = f.metadata()?.len();
    let tail_len = len.min(22 + 65535);
    let mut tail = vec![0u8; tail_len as usize];
    read_at(f, len - tail_len, &mut tail)?;
    // the last end record whose comment fits in the file
    let at = (0..tail.len().saturating_sub(21))
        .rev()
        .find(|&i| &tail[i..i + 4] == EOCD && i + 22 + u16_at(&tail, i + 20) as usize <= tail.len())
        .ok_or_else(|| damaged("no end of central directory record (is it truncated?)"))?;
    let eocd_pos = len - tail_len + at as u64;
    let e = &tail[at..at + 22];
    let (disk, cd_disk) = (u16_at(e, 4), u16_at(e, 6));
    let (mut on_disk, mut count) = (u64::from(u16_at(e, 8)), u64::from(u16_at(e, 10)));
    let (mut cd_size, mut cd_offset) = (u64::from(u32_at(e, 12)), u64::from(u32_at(e, 16)));
    let mut cd_end = eocd_pos;
    let zip64 =
        count == 0xFFFF || on_disk == 0xFFFF || cd_size == 0xFFFF_FFFF || cd_offset == 0xFFFF_FFFF;
    if zip64 {
        if eocd_pos < 20 {
            return Err(damaged("its zip64 end record is missing"));
        }
        let mut loc = [0u8; 20];
        read_at(f, eocd_pos - 20, &mut loc)?;
        if &loc[..4] != EOCD64_LOCATOR {
            return Err(damaged("its zip64 end record is missing"));
        }
        if u32_at(&loc, 16) > 1 {
            return Err(ArchiveError::Refused(
                "multi-part zip archives are not supported".into(),
            ));
        }
        // where the locator says, or (data prepended to the archive shifts that) right
        // before the locator, where writers put it
        let said = u64_at(&loc, 8);
        let mut r = [0u8; 56];
        let mut at64 = None;
        for at in [Some(said), (eocd_pos - 20).checked_sub(56)] {
            let Some(at) = at.filter(|a| a.checked_add(56).is_some_and(|e| e <= eocd_pos - 20))
            else {
                continue;
            };
            read_at(f, at, &mut r)?;
            if &r[..4] == EOCD64 {
                at64 = Some(at);
                break;
            }
        }
        let at64 = at64.ok_or_else(|| damaged("its zip64 end record is missing"))?;
        if u32_at(&r, 16) != 0 || u32_at(&r, 20) != 0 {
            return Err(ArchiveError::Refused(
                "multi-part zip archives are not supported".into(),
            ));
        }
        on_disk = u64_at(&r, 24);
        count = u64_at(&r, 32);
        cd_size = u64_at(&r, 40);
        cd_offset = u64_at(&r, 48);
        cd_end = at64;
    } else if disk != 0 || cd_disk != 0 {
        return Err(ArchiveError::Refused(
            "multi-part zip archives are not supported".into(),
        ));
    }
    for claimed in [count, on_disk] {
        limits.check(
            Limit::ArchiveEntries,
            u128::from(claimed),
            "the zip archive",
            "the entry count of its central directory",
        )?;
    }
    // 46 bytes and at most three 64 KiB fields per entry
    if cd_size > count.saturating_mul(46 + 3 * 65535) || cd_size > cd_end {
        return Err(damaged(
            "its central directory's size does not fit its entries",
        ));
    }
    // data prepended to the archive (a self-extractor) shifts every offset
    let start = cd_end - cd_size;
    if start < cd_offset {
        return Err(damaged("its central directory is out of place"));
    }
    let shift = start - cd_offset;
    Ok((start, count, shift))
}

fn zip_entries(
    f: &mut File,
    start: u64,
    count: u64,
    shift: u64,
) -> Result<Vec<ZipEntry>, ArchiveError> {
    let damaged = || ArchiveError::Malformed("zip archive's central directory is damaged".into());
    f.seek(SeekFrom::Start(start))?;
    let mut r = BufReader::new(&mut *f);
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let mut h = [0u8; 46];
        r.read_exact(&mut h).map_err(|_| damaged())?;
        if &h[..4] != CENTRAL {
            return Err(damaged());
        }
        let (name_len, extra_len, comment_len) = (
            u16_at(&h, 28) as usize,
            u16_at(&h, 30) as usize,
            u16_at(&h, 32) as usize,
        );
        let mut name = vec![0u8; name_len];
        let mut extra = vec![0u8; extra_len];
        r.read_exact(&mut name).map_err(|_| damaged())?;
        r.read_exact(&mut extra).map_err(|_| damaged())?;
        io::copy(&mut (&mut r).take(comment_len as u64), &mut io::sink())?;
        let mut e = ZipEntry {
            name: String::from_utf8_lossy(&name).into_owned(),
            made_by: u16_at(&h, 4),
            flags: u16_at(&h, 8),
            method: u16_at(&h, 10),
            crc: u32_at(&h, 16),
            compressed: u64::from(u32_at(&h, 20)),
            uncompressed: u64::from(u32_at(&h, 24)),
            local_offset: u64::from(u32_at(&h, 42)),
            external_attrs: u32_at(&h, 38),
        };
        // zip64: the fields that are all ones come, in this order, from extra field 1
        let mut i = 0;
        while i + 4 <= extra.len() {
            let (id, size) = (u16_at(&extra, i), u16_at(&extra, i + 2) as usize);
            let body = extra.get(i + 4..i + 4 + size).ok_or_else(damaged)?;
            if id == 1 {
                let mut j = 0;
                for field in [&mut e.uncompressed, &mut e.compressed, &mut e.local_offset] {
                    if *field == 0xFFFF_FFFF {
                        if j + 8 > body.len() {
                            return Err(damaged());
                        }
                        *field = u64_at(body, j);
                        j += 8;
                    }
                }
            }
            i += 4 + size;
        }
        e.local_offset = e.local_offset.checked_add(shift).ok_or_else(damaged)?;
        out.push(e);
    }
    Ok(out)
}

fn unpack_zip(
    archive: &Path,
    dest: &Path,
    budget: &mut Budget,
) -> Result<Vec<PathBuf>, ArchiveError> {
    let mut f = File::open(archive)?;
    let len = f.metadata()?.len();
    let (start, count, shift) = zip_directory(&mut f, &budget.limits)?;
    let entries = zip_entries(&mut f, start, count, shift)?;
    let mut files = Vec::new();
    let mut n = 0u64;
    for e in entries {
        budget.check_cancel()?;
        count_entry(&mut n, &budget.limits)?;
        let shown = crossomics_limits::excerpt_str(&e.name, 200);
        let Some(rel) = safe_relative(&e.name)? else {
            continue;
        };
        // Unix mode in the high half of the external attributes, when made on Unix
        let unix_mode = (e.made_by >> 8 == 3).then_some(e.external_attrs >> 16);
        let file_type = unix_mode.map(|m| m & 0o170_000);
        if file_type == Some(0o120_000) {
            return Err(ArchiveError::Refused(format!(
                "archive entry `{shown}` is a link; only files and folders are accepted"
            )));
        }
        if e.name.ends_with('/') || file_type == Some(0o040_000) {
            std::fs::create_dir_all(dest.join(&rel))?;
            continue;
        }
        if file_type.is_some_and(|t| t != 0 && t != 0o100_000) {
            return Err(ArchiveError::Refused(format!(
                "archive entry `{shown}` is a special file; only files and folders are accepted"
            )));
        }
        if e.flags & 1 != 0 {
            return Err(ArchiveError::Refused(format!(
                "archive entry `{shown}` is encrypted"
            )));
        }
        let mut local = [0u8; 30];
        read_at(&mut f, e.local_offset, &mut local)?;
        if &local[..4] != LOCAL {
            return Err(ArchiveError::Malformed(format!(
                "zip archive is damaged: entry `{shown}` is not where its directory says"
            )));
        }
        let data =
            e.local_offset + 30 + u64::from(u16_at(&local, 26)) + u64::from(u16_at(&local, 28));
        if data.checked_add(e.compressed).is_none_or(|end| end > len) {
            return Err(ArchiveError::Malformed(format!(
                "zip archive is damaged or truncated (entry `{shown}`)"
            )));
        }
        f.seek(SeekFrom::Start(data))?;
        let raw = BufReader::new((&mut f).take(e.compressed));
        let source = format!("archive entry `{shown}`");
        let mut crc = flate2::CrcReader::new(match e.method {
            0 => Box::new(raw) as Box<dyn Read + '_>,
            8 => Box::new(CappedReader::inflated(
                flate2::bufread::DeflateDecoder::new(raw),
                &budget.limits,
                source.clone(),
            )),
            m => {
                return Err(ArchiveError::Refused(format!(
                    "archive entry `{shown}` uses compression method {m}; only stored and deflated entries are read"
                )));
            }
        });
        let written = write_entry(&mut crc, &dest.join(&rel), budget, &e.name)?;
        if written != e.uncompressed || crc.crc().sum() != e.crc {
            return Err(ArchiveError::Malformed(format!(
                "zip archive is damaged: entry `{shown}` does not match its checksum"
            )));
        }
        files.push(rel);
    }
    Ok(files)
}

/// Writes a zip of `files` (name in the archive, path on disk) to `dest`, atomically
/// (a temporary file renamed into place).
pub fn write_zip(dest: &Path, files: &[(&str, &Path)]) -> io::Result<()> {
    let tmp = dest.with_extension("zip.tmp");
    let result = (|| -> io::Result<()> {
        let mut zip = zip::ZipWriter::new(File::create(&tmp)?);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(true);
        for (name, path) in files {
            zip.start_file(*name, options).map_err(io::Error::other)?;
            io::copy(&mut File::open(path)?, &mut zip)?;
        }
        zip.finish().map_err(io::Error::other)?.sync_all()
    })();
    match result {
        Ok(()) => std::fs::rename(&tmp, dest),
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_unpacked_bytes: 1 << 20,
            max_inflated_bytes: 1 << 20,
            max_archive_entries: 10,
            ..Limits::portal()
        }
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn tar_with(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for (name, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name as an attacker would
            let bytes = name.as_bytes();
            h.as_old_mut().name[..bytes.len()].copy_from_slice(bytes);
            h.set_cksum();
            builder.append(&h, *data).unwrap();
        }
        let raw = builder.into_inner().unwrap();
        if gzip { gz(&raw) } else { raw }
    }

    fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut zip = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        for (name, data) in entries {
            zip.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            zip.write_all(data).unwrap();
        }
        zip.finish().unwrap().into_inner()
    }

    fn unpack_with(
        bytes: &[u8],
        format: Format,
        limits: &Limits,
    ) -> (tempfile::TempDir, Result<Vec<PathBuf>, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("upload");
        std::fs::write(&a, bytes).unwrap();
        let dest = dir.path().join("out");
        let r = unpack(&a, format, &dest, &mut Budget::new(limits));
        (dir, r)
    }

    fn unpack_bytes(
        bytes: &[u8],
        format: Format,
    ) -> (tempfile::TempDir, Result<Vec<PathBuf>, ArchiveError>) {
        unpack_with(bytes, format, &limits())
    }

    #[test]
    fn unpacks_folders_of_every_format() {
        let entries: &[(&str, &[u8])] = &[("m/matrix.mtx", b"x"), ("m/barcodes.tsv", b"AAAC\n")];
        for (bytes, format) in [
            (tar_with(entries, false), Format::Tar),
            (tar_with(entries, true), Format::TarGz),
            (zip_with(entries), Format::Zip),
        ] {
            let (dir, r) = unpack_bytes(&bytes, format);
            let files = r.unwrap();
            assert_eq!(
                files,
                vec![
                    PathBuf::from("m/matrix.mtx"),
                    PathBuf::from("m/barcodes.tsv")
                ]
            );
            assert_eq!(
                std::fs::read(dir.path().join("out/m/barcodes.tsv")).unwrap(),
                b"AAAC\n"
            );
        }
    }

    #[test]
    fn long_names_of_gnu_and_pax_tars_are_read() {
        let long = format!("{}/matrix.mtx", "d".repeat(150));
        for mut h in [tar::Header::new_gnu(), tar::Header::new_ustar()] {
            let mut builder = tar::Builder::new(Vec::new());
            h.set_size(2);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            builder.append_data(&mut h, &long, &b"ab"[..]).unwrap();
            // a pax path record, as bsdtar writes for long or non-ASCII names
            let mut pax = tar::Builder::new(Vec::new());
            pax.append_pax_extensions([("path", long.as_bytes())])
                .unwrap();
            let mut h2 = tar::Header::new_ustar();
            h2.set_size(2);
            h2.set_mode(0o644);
            h2.set_path("short").unwrap();
            h2.set_cksum();
            pax.append(&h2, &b"cd"[..]).unwrap();
            for (bytes, want) in [
                (builder.into_inner().unwrap(), b"ab"),
                (pax.into_inner().unwrap(), b"cd"),
            ] {
                let (dir, r) = unpack_bytes(&bytes, Format::Tar);
                assert_eq!(r.unwrap(), vec![PathBuf::from(&long)]);
                assert_eq!(
                    std::fs::read(dir.path().join("out").join(&long)).unwrap(),
                    want
                );
            }
        }
    }

    /// A tar whose first header is an extension of `kind` claiming `size` bytes; its data
    /// is not there (an attacker needs to send none of it).
    fn tar_claiming(kind: tar::EntryType, size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
        h.set_size(size);
        h.set_cksum();
        let mut bytes = h.as_bytes().to_vec();
        bytes.extend_from_slice(&[b'a'; 4096]);
        bytes
    }

    #[test]
    fn huge_extension_headers_are_refused_before_they_are_read() {
        for (kind, what) in [
            (
                tar::EntryType::GNULongName,
                "GNU long name header of 1.0 GiB",
            ),
            (tar::EntryType::XHeader, "pax extension header of 1.0 GiB"),
            (
                tar::EntryType::XGlobalHeader,
                "pax extension header of 1.0 GiB",
            ),
        ] {
            let bytes = tar_claiming(kind, 1 << 30);
            let (_d, r) = unpack_bytes(&bytes, Format::Tar);
            let e = r.unwrap_err().to_string();
            assert!(e.contains(what), "{e}");
            let (_d, r) = unpack_bytes(&gz(&bytes), Format::TarGz);
            assert!(r.unwrap_err().to_string().contains(what));
        }
        // within the cap but cut short: damaged
        let (_d, r) = unpack_bytes(
            &tar_claiming(tar::EntryType::GNULongName, 8192),
            Format::Tar,
        );
        assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
    }

    #[test]
    fn refuses_paths_out_of_the_folder() {
        for name in ["../evil.txt", "/etc/evil.txt", "m/../../evil.txt"] {
            for (bytes, format) in [
                (tar_with(&[(name, b"x")], true), Format::TarGz),
                (zip_with(&[(name, b"x")]), Format::Zip),
            ] {
                let (dir, r) = unpack_bytes(&bytes, format);
                match r {
                    // zip's writer may normalise; what matters is that nothing escaped
                    Ok(files) => assert!(files.iter().all(|f| !f.starts_with("..")), "{name}"),
                    Err(e) => assert!(e.to_string().contains("outside"), "{name}: {e}"),
                }
                assert!(!dir.path().join("evil.txt").exists(), "{name}");
            }
        }
        // tar keeps the raw name: it must be an error
        let (_d, r) = unpack_bytes(&tar_with(&[("../evil.txt", b"x")], false), Format::Tar);
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("`../evil.txt` points outside")
        );
    }

    #[test]
    fn refuses_links() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        builder.append_link(&mut h, "link", "/etc/passwd").unwrap();
        let bytes = builder.into_inner().unwrap();
        let (_d, r) = unpack_bytes(&bytes, Format::Tar);
        assert!(r.unwrap_err().to_string().contains("`link` is a link"));
        let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        z.add_symlink(
            "link",
            "/etc/passwd",
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        let (_d, r) = unpack_bytes(&z.finish().unwrap().into_inner(), Format::Zip);
        assert!(r.unwrap_err().to_string().contains("`link` is a link"));
    }

    #[test]
    fn caps_bytes_and_entries() {
        // a zip bomb in miniature: 2 MiB of zeros compress to a few KiB
        let zeros = vec![0u8; 2 << 20];
        for (bytes, format) in [
            (zip_with(&[("big", &zeros)]), Format::Zip),
            (tar_with(&[("big", &zeros)], true), Format::TarGz),
        ] {
            let (_d, r) = unpack_bytes(&bytes, format);
            let e = r.unwrap_err();
            assert!(matches!(e, ArchiveError::Limit(_)), "{e:?}");
            let e = e.to_string();
            assert!(
                e.contains("over the limit of 1.0 MiB") && e.contains("--max-"),
                "{e}"
            );
        }
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        for (bytes, format) in [
            (tar_with(&many, false), Format::Tar),
            (zip_with(&many), Format::Zip),
        ] {
            let (_d, r) = unpack_bytes(&bytes, format);
            let e = r.unwrap_err().to_string();
            assert!(e.contains("(11) is over the limit of 10 entries"), "{e}");
            assert!(e.contains("--max-archive-entries"), "{e}");
        }
    }

    #[test]
    fn a_gzipped_entry_counts_by_what_it_inflates_to() {
        // 64 KiB of gzip that inflates to 2 MiB: under the cap as written, over it inflated
        let bomb = gz(&vec![b'%'; 2 << 20]);
        assert!(bomb.len() < 64 << 10);
        for (bytes, format) in [
            (tar_with(&[("m/matrix.mtx.gz", &bomb)], false), Format::Tar),
            (tar_with(&[("m/matrix.mtx.gz", &bomb)], true), Format::TarGz),
            (zip_with(&[("m/matrix.mtx.gz", &bomb)]), Format::Zip),
        ] {
            let (_d, r) = unpack_bytes(&bytes, format);
            let e = r.unwrap_err().to_string();
            assert!(
                e.contains("matrix.mtx.gz") && e.contains("over the limit of 1.0 MiB"),
                "{e}"
            );
        }
        // the inflation cap of one stream, under a larger unpacked budget
        let l = Limits {
            max_unpacked_bytes: 64 << 20,
            ..limits()
        };
        let (_d, r) = unpack_with(
            &tar_with(&[("m/matrix.mtx.gz", &bomb)], false),
            Format::Tar,
            &l,
        );
        let e = r.unwrap_err().to_string();
        assert!(e.contains("max_inflated_bytes"), "{e}");
        // and a small one is fine
        let small = gz(b"%%MatrixMarket\n");
        let (_d, r) = unpack_bytes(
            &tar_with(&[("m/matrix.mtx.gz", &small)], false),
            Format::Tar,
        );
        assert_eq!(r.unwrap(), vec![PathBuf::from("m/matrix.mtx.gz")]);
    }

    /// A zip of nothing but an end record (zip64 when `count` needs it) claiming `count`
    /// entries.
    pub(crate) fn zip_claiming(count: u64) -> Vec<u8> {
        let mut z = Vec::new();
        if count >= 0xFFFF {
            // zip64 end record, its locator, then the plain end record saying "see zip64"
            z.extend_from_slice(EOCD64);
            z.extend_from_slice(&44u64.to_le_bytes());
            z.extend_from_slice(&[45, 0, 45, 0]);
            z.extend_from_slice(&[0; 8]);
            z.extend_from_slice(&count.to_le_bytes());
            z.extend_from_slice(&count.to_le_bytes());
            z.extend_from_slice(&count.wrapping_mul(46).to_le_bytes());
            z.extend_from_slice(&0u64.to_le_bytes());
            z.extend_from_slice(EOCD64_LOCATOR);
            z.extend_from_slice(&0u32.to_le_bytes());
            z.extend_from_slice(&0u64.to_le_bytes());
            z.extend_from_slice(&1u32.to_le_bytes());
            z.extend_from_slice(EOCD);
            z.extend_from_slice(&[0; 4]);
            z.extend_from_slice(&[0xFF; 4]);
            z.extend_from_slice(&[0xFF; 8]);
            z.extend_from_slice(&[0; 2]);
        } else {
            z.extend_from_slice(EOCD);
            z.extend_from_slice(&[0; 4]);
            z.extend_from_slice(&(count as u16).to_le_bytes());
            z.extend_from_slice(&(count as u16).to_le_bytes());
            z.extend_from_slice(&((count * 46) as u32).to_le_bytes());
            z.extend_from_slice(&0u32.to_le_bytes());
            z.extend_from_slice(&[0; 2]);
        }
        z
    }

    #[test]
    fn a_zip_claiming_many_entries_is_refused_before_its_directory_is_read() {
        for count in [11u64, 65_535, 1_000_000, u64::MAX / 64] {
            let (_d, r) = unpack_bytes(&zip_claiming(count), Format::Zip);
            let e = r.unwrap_err();
            let msg = e.to_string();
            assert!(matches!(e, ArchiveError::Limit(_)), "{count}: {msg}");
            assert!(
                msg.contains(&format!("({count}) is over the limit of 10 entries")),
                "{msg}"
            );
        }
    }

    #[test]
    fn truncated_or_damaged_archives_are_errors() {
        let entries: &[(&str, &[u8])] = &[("m/matrix.mtx", &[7u8; 5000])];
        let gz = tar_with(entries, true);
        let (_d, r) = unpack_bytes(&gz[..gz.len() / 2], Format::TarGz);
        assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
        let z = zip_with(entries);
        for cut in [&z[..z.len() - 30], &z[40..], &z[..z.len() / 2]] {
            let (_d, r) = unpack_bytes(cut, Format::Zip);
            assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
        }
        // a flipped byte in the data: the checksum says so
        let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        z.start_file("a.txt", stored).unwrap();
        z.write_all(b"hello hello").unwrap();
        let mut flipped = z.finish().unwrap().into_inner();
        let at = flipped.windows(5).position(|w| w == b"hello").unwrap();
        flipped[at] = b'j';
        let (_d, r) = unpack_bytes(&flipped, Format::Zip);
        assert!(r.unwrap_err().to_string().contains("checksum"));
    }

    #[test]
    fn a_zip_behind_prepended_bytes_is_read() {
        let mut z = b"#!/bin/sh\nexit 0\n".to_vec();
        z.extend(zip_with(&[("a.txt", b"alpha")]));
        let (dir, r) = unpack_bytes(&z, Format::Zip);
        assert_eq!(r.unwrap(), vec![PathBuf::from("a.txt")]);
        assert_eq!(
            std::fs::read(dir.path().join("out/a.txt")).unwrap(),
            b"alpha"
        );
    }

    #[test]
    fn cancelling_stops_unpacking() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("upload");
        std::fs::write(&a, tar_with(&[("a", b"x")], false)).unwrap();
        let cancel = Arc::new(AtomicBool::new(true));
        let mut budget = Budget::with_cancel(&limits(), cancel);
        let r = unpack(&a, Format::Tar, &dir.path().join("out"), &mut budget);
        assert!(matches!(r, Err(ArchiveError::Cancelled)), "{r:?}");
    }

    #[test]
    fn skips_macos_junk() {
        let (_d, r) = unpack_bytes(
            &zip_with(&[("__MACOSX/._matrix.mtx", b"x"), ("matrix.mtx", b"y")]),
            Format::Zip,
        );
        assert_eq!(r.unwrap(), vec![PathBuf::from("matrix.mtx")]);
    }

    #[test]
    fn zip_writer_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        std::fs::write(&a, "alpha").unwrap();
        let z = dir.path().join("out.zip");
        write_zip(&z, &[("x/a.txt", &a)]).unwrap();
        let dest = dir.path().join("back");
        let files = unpack(&z, Format::Zip, &dest, &mut Budget::new(&limits())).unwrap();
        assert_eq!(files, vec![PathBuf::from("x/a.txt")]);
        assert_eq!(
            std::fs::read_to_string(dest.join("x/a.txt")).unwrap(),
            "alpha"
        );
        assert!(!dir.path().join("out.zip.tmp").exists());
    }
}
