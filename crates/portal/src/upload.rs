//! What an upload is, judged by its bytes, never by its name: HDF5 (h5ad or 10x h5), a
//! zip / tar / tar.gz of a 10x matrix folder, or the loose files of such a folder
//! (`matrix.mtx`, features and barcodes; each may be gzipped), told apart by the
//! MatrixMarket header and by line counts against the matrix's shape.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, Limit, Limits, read_line_capped};

use crate::Input;
use crate::archive::{self, ArchiveError, Budget, Format, Metered};

/// The signature every HDF5 file starts with (at offset 0 for files HDF5 writes).
pub const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// What the first bytes of a file say it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Hdf5,
    Zip,
    /// gzip holding a tar archive
    TarGz,
    Tar,
    /// MatrixMarket text (maybe gzipped)
    MatrixMarket {
        gzip: bool,
    },
    /// other text (maybe gzipped): a features or barcodes table, or a fragments file
    Text {
        gzip: bool,
    },
    /// a tabix index (`.tbi`: BGZF holding `TBI\x01`)
    TabixIndex,
    Unknown,
}

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

fn is_tar(head: &[u8]) -> bool {
    head.len() >= 262 && &head[257..262] == b"ustar"
}

/// UTF-8 without NUL bytes (a character cut by the end of the buffer allowed).
fn is_text(head: &[u8]) -> bool {
    let utf8 = match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    };
    !head.is_empty() && utf8 && !head.contains(&0)
}

fn head_of(reader: &mut dyn Read, n: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = Vec::with_capacity(n);
    reader.take(n as u64).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Looks at the first bytes of `path` (and, for gzip, of what it decompresses to).
pub fn sniff(path: &Path) -> std::io::Result<Sniffed> {
    let head = head_of(&mut File::open(path)?, 512)?;
    if head.starts_with(HDF5_MAGIC) || has_hdf5_superblock_after_userblock(path)? {
        return Ok(Sniffed::Hdf5);
    }
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        return Ok(Sniffed::Zip);
    }
    if is_tar(&head) {
        return Ok(Sniffed::Tar);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let mut gz = flate2::read::MultiGzDecoder::new(File::open(path)?);
        let inner = head_of(&mut gz, 512).unwrap_or_default();
        return Ok(if is_tar(&inner) {
            Sniffed::TarGz
        } else if inner.starts_with(b"TBI\x01") {
            Sniffed::TabixIndex
        } else if inner.starts_with(b"%%MatrixMarket") {
            Sniffed::MatrixMarket { gzip: true }
        } else if is_text(&inner) {
            Sniffed::Text { gzip: true }
        } else {
            Sniffed::Unknown
        });
    }
    if head.starts_with(b"%%MatrixMarket") {
        return Ok(Sniffed::MatrixMarket { gzip: false });
    }
    if is_text(&head) {
        return Ok(Sniffed::Text { gzip: false });
    }
    Ok(Sniffed::Unknown)
}

/// Whether the HDF5 signature sits where a user block ends: HDF5 looks for the superblock
/// at byte 0, 512, 1024, 2048 and so on; MuData writes a 512-byte user block
/// (`MuData (format-version=...)`) before it. Offsets up to 1 MiB are tried.
fn has_hdf5_superblock_after_userblock(path: &Path) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let mut offset = 512u64;
    while offset + HDF5_MAGIC.len() as u64 <= len && offset <= 1 << 20 {
        f.seek(SeekFrom::Start(offset))?;
        if head_of(&mut f, HDF5_MAGIC.len())? == HDF5_MAGIC {
            return Ok(true);
        }
        offset *= 2;
    }
    Ok(false)
}

/// A loose text file's lines, read through the budget: a gzipped one inflated under
/// `max_inflated_bytes`, each line under `max_line_bytes` (never a whole line into memory).
struct Lines {
    reader: BufReader<Metered<Box<dyn Read>>>,
    buf: Vec<u8>,
    source: String,
    limits: Limits,
}

impl Lines {
    fn open(path: &Path, gzip: bool, budget: &Budget, source: &str) -> std::io::Result<Self> {
        let f = File::open(path)?;
        let inner: Box<dyn Read> = if gzip {
            Box::new(CappedReader::inflated(
                flate2::read::MultiGzDecoder::new(BufReader::new(f)),
                budget.limits(),
                source,
            ))
        } else {
            Box::new(f)
        };
        Ok(Self {
            reader: BufReader::with_capacity(64 << 10, budget.metered(inner, source)),
            buf: Vec::new(),
            source: source.to_string(),
            limits: *budget.limits(),
        })
    }

    /// The next line (without its line end), `None` at the end.
    fn next(&mut self) -> Result<Option<&[u8]>, ArchiveError> {
        let n = read_line_capped(&mut self.reader, &mut self.buf, &self.limits, &self.source)
            .map_err(|e| archive::read_error(e, &format!("{} is unreadable", self.source)))?;
        if n == 0 {
            return Ok(None);
        }
        let mut line = &self.buf[..];
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        Ok(Some(line))
    }

    /// Reads to the end (a gzipped file is measured by what it inflates to); charges
    /// the budget with what was read.
    fn finish(mut self, budget: &mut Budget) -> Result<(), ArchiveError> {
        let mut sink = [0u8; 64 << 10];
        loop {
            match self.reader.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(archive::read_error(
                        e,
                        &format!("{} is unreadable", self.source),
                    ));
                }
            }
        }
        budget.charge(self.reader.get_ref().read_so_far(), &self.source)
    }
}

/// `rows x cols` from a MatrixMarket header (the first line that is not a comment),
/// checked against the limits (10x matrices are features x barcodes); a gzipped matrix
/// is then read to its end, so that what it inflates to is counted.
fn mtx_shape(
    path: &Path,
    gzip: bool,
    budget: &mut Budget,
    source: &str,
) -> Result<(usize, usize), ArchiveError> {
    let mut lines = Lines::open(path, gzip, budget, source)?;
    let shape = loop {
        let Some(line) = lines.next()? else {
            return Err(ArchiveError::Malformed(format!(
                "{source}: MatrixMarket file has no size line"
            )));
        };
        let t = String::from_utf8_lossy(line);
        let t = t.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        match (num(0), num(1)) {
            (Some(r), Some(c)) => break (r, c),
            _ => {
                return Err(ArchiveError::Malformed(format!(
                    "{source}: MatrixMarket size line `{}` is not `rows cols entries`",
                    crossomics_limits::excerpt_str(t, 80)
                )));
            }
        }
    };
    let limits = *budget.limits();
    limits.check(
        Limit::Features,
        u128::from(shape.0),
        source,
        "the size line's row count (features)",
    )?;
    limits.check(
        Limit::Cells,
        u128::from(shape.1),
        source,
        "the size line's column count (barcodes)",
    )?;
    if gzip {
        lines.finish(budget)?;
    } else {
        budget.charge(lines.reader.get_ref().read_so_far(), source)?;
    }
    Ok((shape.0 as usize, shape.1 as usize))
}

/// Lines (not counting trailing empty ones) and the tab-separated columns of the first;
/// counting stops past `max_lines` (the table cannot fit the matrix then).
fn text_shape(
    path: &Path,
    gzip: bool,
    budget: &mut Budget,
    source: &str,
    max_lines: usize,
) -> Result<(usize, usize), ArchiveError> {
    let mut reader = Lines::open(path, gzip, budget, source)?;
    let (mut lines, mut blank_run, mut cols) = (0usize, 0usize, 0usize);
    while let Some(line) = reader.next()? {
        if line.iter().all(u8::is_ascii_whitespace) {
            blank_run += 1;
            continue;
        }
        if lines == 0 {
            cols = line.split(|&b| b == b'\t').count();
        }
        lines += 1 + blank_run;
        blank_run = 0;
        if lines > max_lines {
            return Ok((lines, cols));
        }
    }
    budget.charge(reader.reader.get_ref().read_so_far(), source)?;
    Ok((lines, cols))
}

/// How messages name uploaded file `i`: the name the browser sent, else its position.
fn label(names: &[String], i: usize) -> String {
    names
        .get(i)
        .filter(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| format!("file {}", i + 1))
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
    let io = read_failed;
    let label = |i: usize| label(names, i);
    match parts {
        [] => Err(UploadError::bad("no file was uploaded (form field `file`)")),
        [one] => {
            let kind = sniff(one).map_err(io)?;
            let format = match kind {
                Sniffed::Hdf5 => {
                    // under the user's own name, so that the backend's errors name it
                    let folder = dir.join("input");
                    std::fs::create_dir_all(&folder).map_err(io)?;
                    let name = names.first().and_then(|n| safe_name(n));
                    let p = folder.join(name.as_deref().unwrap_or("input.h5"));
                    std::fs::rename(one, &p).map_err(io)?;
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
        many => loose_files(many, names, dir, budget),
    }
}

/// A readable note on what a file starts with.
fn describe_head(path: &Path) -> String {
    let head = File::open(path)
        .and_then(|mut f| head_of(&mut f, 16))
        .unwrap_or_default();
    if head.is_empty() {
        return "the file is empty".into();
    }
    if is_text(&head) {
        let text = String::from_utf8_lossy(&head);
        let first = text.lines().next().unwrap_or("").trim();
        format!(
            "text starting `{}`",
            crossomics_limits::excerpt_str(first, 16)
        )
    } else {
        let hex: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
        format!("binary, starting {}", hex.join(" "))
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

/// Loose files of a 10x matrix folder: one MatrixMarket matrix (features x barcodes), a
/// table with one line per matrix row (features) and one with a line per column
/// (barcodes). They are renamed to the names 10x gives them. Every file is read through
/// the budget (gzipped ones counted by what they inflate to), lines one at a time.
fn loose_files(
    parts: &[PathBuf],
    names: &[String],
    dir: &Path,
    budget: &mut Budget,
) -> Result<Input, UploadError> {
    let io = read_failed;
    let label = |i: usize| label(names, i);
    let mut matrix = None;
    let mut texts = Vec::new();
    let mut index = None;
    for (i, p) in parts.iter().enumerate() {
        match sniff(p).map_err(io)? {
            Sniffed::TabixIndex => index = Some(i),
            Sniffed::MatrixMarket { gzip } => {
                if matrix.is_some() {
                    return Err(UploadError::bad(
                        "two MatrixMarket matrices were uploaded; upload one dataset at a time",
                    ));
                }
                matrix = Some((i, gzip));
            }
            Sniffed::Text { gzip } => texts.push((i, gzip)),
            _ => {
                return Err(UploadError::unsupported(format!(
                    "{}: unsupported file type among several files ({}); several files must be a matrix.mtx with its features.tsv and barcodes.tsv",
                    label(i),
                    describe_head(p)
                )));
            }
        }
    }
    if matrix.is_none() {
        return fragment_files(parts, names, dir, &texts, index);
    }
    if let Some(i) = index {
        return Err(UploadError::bad(format!(
            "{}: a tabix index beside a MatrixMarket matrix; an index belongs to a fragments file",
            label(i)
        )));
    }
    // the matrix first: its shape bounds how far the tables are worth counting
    let matrix = match matrix {
        Some((i, gzip)) => {
            let shape = mtx_shape(&parts[i], gzip, budget, &label(i))
                .map_err(|e| UploadError::from_archive(e, None))?;
            Some((i, gzip, shape))
        }
        None => None,
    };
    let max_lines = matrix.map_or(usize::MAX, |(_, _, (r, c))| r.max(c));
    let mut tables = Vec::new();
    for (i, gzip) in texts {
        let shape = text_shape(&parts[i], gzip, budget, &label(i), max_lines)
            .map_err(|e| UploadError::from_archive(e, None))?;
        tables.push((i, gzip, shape));
    }
    let Some((mi, mgz, (rows, cols))) = matrix else {
        return Err(UploadError::bad(
            "several files but no MatrixMarket matrix (a file starting `%%MatrixMarket`) among them",
        ));
    };
    if tables.len() != 2 {
        return Err(UploadError::bad(format!(
            "a MatrixMarket matrix needs exactly two tables beside it (features and barcodes); {} were uploaded",
            tables.len()
        )));
    }
    // features: one line per row (10x matrices are features x barcodes); barcodes one
    // per column. A square matrix is told apart by columns: barcodes have one.
    let (a, b) = (tables[0], tables[1]);
    // (index, gzip, (lines, columns)) of tables `f` and `b` fit as features and barcodes
    let fits = |f: &(usize, bool, (usize, usize)), b: &(usize, bool, (usize, usize))| {
        f.2.0 == rows && b.2.0 == cols
    };
    let (features, barcodes) = match (fits(&a, &b), fits(&b, &a)) {
        // both ways only when the matrix is square
        (true, true) if a.2.1 >= b.2.1 => (a, b),
        (true, true) => (b, a),
        (true, false) => (a, b),
        (false, true) => (b, a),
        (false, false) => {
            return Err(UploadError::bad(format!(
                "the matrix {} is {rows} features x {cols} barcodes, but the tables have {} ({}) and {} ({}) lines",
                label(mi),
                a.2.0,
                label(a.0),
                b.2.0,
                label(b.0)
            )));
        }
    };
    let folder = dir.join("input");
    std::fs::create_dir_all(&folder).map_err(io)?;
    let gz = |z: bool| if z { ".gz" } else { "" };
    for (i, name) in [
        (mi, format!("matrix.mtx{}", gz(mgz))),
        (features.0, format!("features.tsv{}", gz(features.1))),
        (barcodes.0, format!("barcodes.tsv{}", gz(barcodes.1))),
    ] {
        std::fs::rename(&parts[i], folder.join(name)).map_err(io)?;
    }
    Ok(Input::MatrixMarketDir(folder))
}

/// Loose files of ATAC fragments: one fragments file (`chrom start end barcode [count]`
/// lines, gzipped or not), one barcodes table, and optionally its tabix index. Renamed to
/// `fragments.tsv[.gz]`, `barcodes.tsv[.gz]` and `fragments.tsv.gz.tbi`; their content is
/// read (under the job's limits) when the job counts them.
fn fragment_files(
    parts: &[PathBuf],
    names: &[String],
    dir: &Path,
    texts: &[(usize, bool)],
    index: Option<usize>,
) -> Result<Input, UploadError> {
    let io = read_failed;
    let label = |i: usize| label(names, i);
    let mut fragments = Vec::new();
    let mut tables = Vec::new();
    for &(i, gzip) in texts {
        if looks_like_fragments(&parts[i], gzip).map_err(io)? {
            fragments.push((i, gzip));
        } else {
            tables.push((i, gzip));
        }
    }
    match (fragments.as_slice(), tables.as_slice()) {
        ([(f, fgz)], [(b, bgz)]) => {
            let folder = dir.join("input");
            std::fs::create_dir_all(&folder).map_err(io)?;
            let gz = |z: bool| if z { ".gz" } else { "" };
            let fpath = folder.join(format!("fragments.tsv{}", gz(*fgz)));
            let bpath = folder.join(format!("barcodes.tsv{}", gz(*bgz)));
            std::fs::rename(&parts[*f], &fpath).map_err(io)?;
            std::fs::rename(&parts[*b], &bpath).map_err(io)?;
            if let Some(t) = index {
                if !fgz {
                    return Err(UploadError::bad(format!(
                        "{}: a tabix index beside an uncompressed fragments file {}",
                        label(t),
                        label(*f)
                    )));
                }
                std::fs::rename(&parts[t], folder.join("fragments.tsv.gz.tbi")).map_err(io)?;
            }
            Ok(Input::Fragments {
                fragments: fpath,
                barcodes: bpath,
            })
        }
        ([], _) => Err(UploadError::bad(
            "several files but no MatrixMarket matrix (a file starting `%%MatrixMarket`) and no fragments file (`chrom start end barcode` lines) among them",
        )),
        ([_], t) => Err(UploadError::bad(format!(
            "a fragments file needs exactly one barcodes table beside it (one cell barcode a line); {} other tables were uploaded",
            t.len()
        ))),
        (many, _) => Err(UploadError::bad(format!(
            "{} fragments files were uploaded; upload one dataset at a time",
            many.len()
        ))),
    }
}

/// Whether a text file's first line that is not a `#` comment (within its first 64 KiB)
/// reads as a 10x fragment: 4 or 5 tab-separated fields, the 2nd and 3rd integers.
fn looks_like_fragments(path: &Path, gzip: bool) -> std::io::Result<bool> {
    let f = File::open(path)?;
    let mut head = Vec::new();
    if gzip {
        flate2::read::MultiGzDecoder::new(f)
            .take(64 << 10)
            .read_to_end(&mut head)
            .or_else(|e| if head.is_empty() { Err(e) } else { Ok(0) })?;
    } else {
        f.take(64 << 10).read_to_end(&mut head)?;
    }
    let text = String::from_utf8_lossy(&head);
    let Some(line) = text
        .lines()
        .find(|l| !l.starts_with('#') && !l.trim().is_empty())
    else {
        return Ok(false);
    };
    let fields: Vec<&str> = line.trim_end_matches('\r').split('\t').collect();
    Ok((4..=5).contains(&fields.len())
        && fields[1].parse::<u64>().is_ok()
        && fields[2].parse::<u64>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn limits() -> Limits {
        Limits {
            max_unpacked_bytes: 1 << 20,
            max_inflated_bytes: 1 << 20,
            max_archive_entries: 100,
            max_line_bytes: 1024,
            ..Limits::portal()
        }
    }

    fn budget() -> Budget {
        Budget::new(&limits())
    }

    const MTX: &[u8] =
        b"%%MatrixMarket matrix coordinate integer general\n% c\n3 2 2\n1 1 5\n3 2 1\n";
    const FEATURES: &[u8] =
        b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\nG3\tG3\tGene Expression\n";
    const BARCODES: &[u8] = b"AAAC-1\nAAAG-1\n";

    fn write_parts(dir: &Path, parts: &[&[u8]]) -> Vec<PathBuf> {
        parts
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let p = dir.join(format!("part-{i}"));
                std::fs::write(&p, b).unwrap();
                p
            })
            .collect()
    }

    #[test]
    fn sniffs_by_content() {
        let dir = tempfile::tempdir().unwrap();
        let cases: Vec<(Vec<u8>, Sniffed)> = vec![
            ([HDF5_MAGIC, b"rest"].concat(), Sniffed::Hdf5),
            // MuData's 512-byte user block before the superblock
            (
                [
                    &b"MuData (format-version=0.1.0;"[..],
                    &[b' '; 483],
                    HDF5_MAGIC,
                    b"rest",
                ]
                .concat(),
                Sniffed::Hdf5,
            ),
            (b"PK\x03\x04rest".to_vec(), Sniffed::Zip),
            (MTX.to_vec(), Sniffed::MatrixMarket { gzip: false }),
            (gz(MTX), Sniffed::MatrixMarket { gzip: true }),
            (BARCODES.to_vec(), Sniffed::Text { gzip: false }),
            (gz(BARCODES), Sniffed::Text { gzip: true }),
            (vec![0u8, 1, 2, 3, 255], Sniffed::Unknown),
            (vec![], Sniffed::Unknown),
        ];
        for (i, (bytes, want)) in cases.into_iter().enumerate() {
            // the name says h5ad; only the content counts
            let p = dir.path().join(format!("{i}.h5ad"));
            std::fs::write(&p, &bytes).unwrap();
            assert_eq!(sniff(&p).unwrap(), want, "case {i}");
        }
    }

    #[test]
    fn loose_files_are_named_by_shape_in_any_order() {
        for order in [[0, 1, 2], [2, 0, 1], [1, 2, 0]] {
            let dir = tempfile::tempdir().unwrap();
            let all: [&[u8]; 3] = [MTX, FEATURES, BARCODES];
            let gz_features = gz(FEATURES);
            let mut chosen: Vec<&[u8]> = order.iter().map(|&i| all[i]).collect();
            // one of them gzipped
            let pos = order.iter().position(|&i| i == 1).unwrap();
            chosen[pos] = &gz_features;
            let parts = write_parts(dir.path(), &chosen);
            let names = vec![String::new(); 3];
            let input = classify(&parts, &names, dir.path(), &mut budget()).unwrap();
            let folder = dir.path().join("input");
            assert_eq!(input, Input::MatrixMarketDir(folder.clone()));
            assert_eq!(std::fs::read(folder.join("matrix.mtx")).unwrap(), MTX);
            assert_eq!(
                std::fs::read(folder.join("barcodes.tsv")).unwrap(),
                BARCODES
            );
            assert!(folder.join("features.tsv.gz").is_file());
        }
    }

    #[test]
    fn hdf5_uploads_keep_a_plain_name_of_the_users() {
        let dir = tempfile::tempdir().unwrap();
        let h5 = [HDF5_MAGIC, b"rest"].concat();
        for (sent, kept) in [
            ("rna.h5ad", "rna.h5ad"),
            ("C:\\data\\pbmc.h5", "pbmc.h5"),
            ("../../etc/passwd", "passwd"),
            ("my data.h5ad", "input.h5"),
            (".hidden", "input.h5"),
            ("", "input.h5"),
        ] {
            let job = dir.path().join(format!("job-{}", kept.len() + sent.len()));
            std::fs::create_dir_all(&job).unwrap();
            let parts = write_parts(&job, &[&h5]);
            let input = classify(&parts, &[sent.to_string()], &job, &mut budget()).unwrap();
            assert_eq!(input, Input::Hdf5(job.join("input").join(kept)), "{sent}");
        }
    }

    #[test]
    fn a_square_matrix_tells_features_from_barcodes_by_columns() {
        let dir = tempfile::tempdir().unwrap();
        let mtx = b"%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 3\n";
        let features = b"G1\tG1\tGene Expression\nG2\tG2\tGene Expression\n";
        let parts = write_parts(dir.path(), &[BARCODES, mtx, features]);
        let input = classify(&parts, &[], dir.path(), &mut budget()).unwrap();
        assert_eq!(input, Input::MatrixMarketDir(dir.path().join("input")));
        let read = |n: &str| std::fs::read(dir.path().join("input").join(n)).unwrap();
        assert_eq!(read("barcodes.tsv"), BARCODES);
        assert_eq!(read("features.tsv"), features);
    }

    #[test]
    fn loose_files_that_do_not_fit_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["m.mtx", "f.tsv", "b.tsv"].map(String::from).to_vec();
        let parts = write_parts(
            dir.path(),
            &[MTX, FEATURES, b"AAAC-1\nAAAG-1\nAACT-1\nTTTT-1\n"],
        );
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.message.contains("3 features x 2 barcodes") && e.message.contains("b.tsv"),
            "{e}"
        );
        let parts = write_parts(dir.path(), &[MTX, FEATURES]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(e.message.contains("exactly two tables"), "{e}");
        let parts = write_parts(dir.path(), &[FEATURES, BARCODES]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(e.message.contains("no MatrixMarket matrix"), "{e}");
        let parts = write_parts(dir.path(), &[MTX]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.message.contains("m.mtx is a MatrixMarket matrix alone"),
            "{e}"
        );
        let parts = write_parts(dir.path(), &[b"barcode,gene\n"]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.unsupported && e.message.contains("text starting `barcode,gene`"),
            "{e}"
        );
        let parts = write_parts(dir.path(), &[b""]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.unsupported && e.message.contains("the file is empty"),
            "{e}"
        );
        let e = classify(&[], &[], dir.path(), &mut budget()).unwrap_err();
        assert!(e.message.contains("no file was uploaded"), "{e}");
    }

    #[test]
    fn archives_must_hold_one_dataset() {
        let dir = tempfile::tempdir().unwrap();
        let zip = |entries: &[(&str, &[u8])]| {
            let mut z = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
            for (n, d) in entries {
                z.start_file(*n, zip::write::SimpleFileOptions::default())
                    .unwrap();
                z.write_all(d).unwrap();
            }
            z.finish().unwrap().into_inner()
        };
        let names = vec!["sample.zip".to_string()];
        let one = zip(&[
            ("filtered_feature_bc_matrix/matrix.mtx.gz", &gz(MTX)),
            ("filtered_feature_bc_matrix/features.tsv.gz", &gz(FEATURES)),
            ("filtered_feature_bc_matrix/barcodes.tsv.gz", &gz(BARCODES)),
        ]);
        let job = dir.path().join("a");
        std::fs::create_dir_all(&job).unwrap();
        let parts = write_parts(&job, &[&one]);
        let input = classify(&parts, &names, &job, &mut budget()).unwrap();
        assert_eq!(
            input,
            Input::MatrixMarketDir(job.join("input/filtered_feature_bc_matrix"))
        );

        let two = zip(&[("a/matrix.mtx", MTX), ("b/matrix.mtx", MTX)]);
        let job = dir.path().join("b");
        std::fs::create_dir_all(&job).unwrap();
        let parts = write_parts(&job, &[&two]);
        let e = classify(&parts, &names, &job, &mut budget()).unwrap_err();
        assert!(e.message.contains("2 10x matrix folders"), "{e}");

        let none = zip(&[("readme.txt", b"hello")]);
        let job = dir.path().join("c");
        std::fs::create_dir_all(&job).unwrap();
        let parts = write_parts(&job, &[&none]);
        let e = classify(&parts, &names, &job, &mut budget()).unwrap_err();
        assert!(
            e.message
                .contains("sample.zip: the archive holds no matrix.mtx"),
            "{e}"
        );
    }

    /// `n` concatenated gzip members of `block`: what a bomb looks like, made cheaply.
    fn gz_repeat(block: &[u8], n: usize) -> Vec<u8> {
        gz(block).repeat(n)
    }

    #[test]
    fn loose_gzip_bombs_are_cut_off_at_the_inflation_limit() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv"]
            .map(String::from)
            .to_vec();
        // a matrix header, then 8 MiB of comment lines
        let mut bomb = gz(b"%%MatrixMarket matrix coordinate integer general\n");
        bomb.extend(gz_repeat(&b"%\n".repeat(1 << 19), 8));
        let parts = write_parts(dir.path(), &[&bomb, &gz(FEATURES), BARCODES]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(e.too_large, "{e}");
        assert!(
            e.message.starts_with("matrix.mtx.gz: ") && e.message.contains("--max-inflated-bytes"),
            "{e}"
        );
        // a table that inflates to 8 MiB (of empty lines: counting lines does not stop it)
        let table = gz_repeat(&b"\n".repeat(1 << 20), 8);
        let parts = write_parts(dir.path(), &[&gz(MTX), &table, BARCODES]);
        let roomy = Limits {
            max_unpacked_bytes: 64 << 20,
            ..limits()
        };
        let e = classify(&parts, &names, dir.path(), &mut Budget::new(&roomy)).unwrap_err();
        assert!(
            e.too_large
                && e.message.contains("features.tsv.gz")
                && e.message.contains("max_inflated_bytes"),
            "{e}"
        );
        // each file fits, together they do not: the unpacked budget of the job
        let l = Limits {
            max_unpacked_bytes: 1 << 20,
            max_inflated_bytes: 4 << 20,
            ..limits()
        };
        let mut half = gz(b"%%MatrixMarket matrix coordinate integer general\n");
        half.extend(gz_repeat(&b"%\n".repeat(1 << 18), 3));
        let parts = write_parts(dir.path(), &[&half, &gz(FEATURES), BARCODES]);
        let e = classify(&parts, &names, dir.path(), &mut Budget::new(&l)).unwrap_err();
        assert!(
            e.too_large && e.message.contains("--max-unpacked-bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_line_longer_than_the_limit_is_refused_after_reading_only_the_limit() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = ["m.mtx", "f.tsv.gz", "b.tsv"].map(String::from).to_vec();
        // a 1 GiB line of 'A' in 1024 gzip members of 1 MiB: a few MiB of upload
        let line = gz_repeat(&vec![b'A'; 1 << 20], 1024);
        let parts = write_parts(dir.path(), &[MTX, &line, BARCODES]);
        let l = Limits {
            max_inflated_bytes: 4 << 30,
            max_unpacked_bytes: 4 << 30,
            ..limits()
        };
        let t = std::time::Instant::now();
        let e = classify(&parts, &names, dir.path(), &mut Budget::new(&l)).unwrap_err();
        assert!(
            e.too_large && e.message.contains("f.tsv.gz") && e.message.contains("--max-line-bytes"),
            "{e}"
        );
        // stopped at the first line, not after inflating the gigabyte
        assert!(t.elapsed() < std::time::Duration::from_secs(5));
        // the same in a matrix header
        let mut mtx = b"%%MatrixMarket matrix coordinate integer general\n%".to_vec();
        mtx.extend(vec![b'x'; 4096]);
        let parts = write_parts(dir.path(), &[&mtx, FEATURES, BARCODES]);
        let e = classify(&parts, &names, dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.message.contains("m.mtx") && e.message.contains("max_line_bytes"),
            "{e}"
        );
    }

    #[test]
    fn a_matrix_claiming_more_cells_than_the_limit_is_refused_at_its_size_line() {
        let dir = tempfile::tempdir().unwrap();
        let mtx = b"%%MatrixMarket matrix coordinate integer general\n3 1000000000000 1\n1 1 1\n";
        let parts = write_parts(dir.path(), &[mtx, FEATURES, BARCODES]);
        let e = classify(&parts, &["a.mtx".into()], dir.path(), &mut budget()).unwrap_err();
        assert!(
            e.too_large && e.message.contains("a.mtx") && e.message.contains("--max-cells"),
            "{e}"
        );
    }
}
