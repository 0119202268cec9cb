//! Reading a text file as a stream of numbered lines under the limits: BGZF, gzip or
//! plain, told apart by content, a truncated BGZF file refused, and a fragments file opened
//! with the tabix index beside it.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, LimitError, Limits, excerpt_str};

use super::tabix::TabixIndex;
use crate::error::{DataError, Result};

/// The 28-byte empty block that ends every complete BGZF file (SAM/BAM spec, 4.1.2).
const BGZF_EOF: [u8; 28] = [
    0x1f, 0x8b, 0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x06, 0x00, 0x42, 0x43, 0x02, 0x00,
    0x1b, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Bgzf,
    Gzip,
    None,
}

/// Lines of a text file under the limits, numbered from 1.
pub(super) struct Lines {
    reader: Box<dyn BufRead>,
    path: PathBuf,
    name: String,
    limits: Limits,
    buf: Vec<u8>,
    lineno: usize,
}

impl Lines {
    /// Opens `path` as plain text or gzip (BGZF included), whatever its name says.
    pub(super) fn open(path: &Path, limits: &Limits) -> Result<Self> {
        let (file, compression) = open_detect(path)?;
        let reader = match compression {
            Compression::None => Box::new(BufReader::new(file)) as Box<dyn BufRead>,
            _ => inflating(flate2::read::MultiGzDecoder::new(file), path, limits),
        };
        Ok(Self::new(reader, path, limits))
    }

    fn new(reader: Box<dyn BufRead>, path: &Path, limits: &Limits) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            name: path.display().to_string(),
            limits: *limits,
            buf: Vec::new(),
            lineno: 0,
        }
    }

    /// The next line (numbered from 1) with its ending, `None` at the end of the file.
    pub(super) fn next_line(&mut self) -> Result<Option<(usize, &[u8])>> {
        self.lineno += 1;
        let n = crossomics_limits::read_line_capped(
            &mut self.reader,
            &mut self.buf,
            &self.limits,
            &self.name,
        )
        .map_err(|e| read_error(&self.path, self.lineno, e))?;
        Ok((n > 0).then_some((self.lineno, self.buf.as_slice())))
    }
}

/// A decompressor behind the inflated-bytes cap, buffered for line reading.
fn inflating(inner: impl Read + 'static, path: &Path, limits: &Limits) -> Box<dyn BufRead> {
    Box::new(BufReader::new(CappedReader::inflated(
        inner,
        limits,
        path.display().to_string(),
    )))
}

/// A read error as a [`DataError`]: a limit as itself, corrupt data naming the line.
fn read_error(path: &Path, line: usize, e: io::Error) -> DataError {
    if let Some(limit) = LimitError::from_io(&e) {
        return DataError::Limit(limit.clone());
    }
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            DataError::Parse {
                path: path.to_path_buf(),
                line,
                reason: format!(
                    "the file is corrupt or truncated ({})",
                    excerpt_str(&e.to_string(), 120)
                ),
            }
        }
        _ => DataError::io(path, e),
    }
}

/// Opens `path` and tells BGZF from other gzip and from uncompressed text by its first
/// bytes. An empty file is an error; a BGZF file must end in the BGZF end-of-file block
/// (otherwise it was cut short, possibly at a block boundary no decoder would notice).
fn open_detect(path: &Path) -> Result<(File, Compression)> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        return Err(DataError::invalid(
            path.display().to_string(),
            "is a folder, not a file",
        ));
    }
    let len = meta.len();
    if len == 0 {
        return Err(DataError::Empty {
            what: path.display().to_string(),
            reason: "the file is empty".into(),
        });
    }
    let mut head = [0u8; 18];
    let n = read_up_to(&mut file, &mut head).map_err(|e| DataError::io(path, e))?;
    let head = &head[..n];
    let compression = if head.len() == 18
        && head[..4] == [0x1f, 0x8b, 0x08, 0x04]
        && head[10..16] == [0x06, 0x00, b'B', b'C', 0x02, 0x00]
    {
        Compression::Bgzf
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    };
    if compression == Compression::Bgzf {
        let mut tail = [0u8; 28];
        let complete = len >= 28
            && file.seek(SeekFrom::End(-28)).is_ok()
            && read_up_to(&mut file, &mut tail).is_ok_and(|n| n == 28)
            && tail == BGZF_EOF;
        if !complete {
            return Err(DataError::invalid(
                path.display().to_string(),
                "truncated BGZF file: it does not end in the BGZF end-of-file block \
                 (an interrupted download or copy?)",
            ));
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DataError::io(path, e))?;
    Ok((file, compression))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The lines of a fragments file and the tabix index beside it, read and checked.
pub(super) fn open_fragments(path: &Path, limits: &Limits) -> Result<(Lines, Option<TabixIndex>)> {
    let (file, compression) = open_detect(path)?;
    let tbi = tbi_path(path);
    let index = if tbi.is_file() {
        if compression != Compression::Bgzf {
            return Err(DataError::invalid(
                tbi.display().to_string(),
                format!(
                    "a tabix index beside {}, which is not BGZF-compressed: the index belongs \
                     to another file (remove it, or recompress with `bgzip` and reindex)",
                    path.display()
                ),
            ));
        }
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        Some(TabixIndex::read(&tbi, file_len, limits)?)
    } else {
        None
    };
    let reader = match compression {
        Compression::Bgzf => inflating(noodles_bgzf::io::Reader::new(file), path, limits),
        Compression::Gzip => inflating(flate2::read::MultiGzDecoder::new(file), path, limits),
        Compression::None => Box::new(BufReader::new(file)) as Box<dyn BufRead>,
    };
    Ok((Lines::new(reader, path, limits), index))
}

/// `fragments.tsv.gz` -> `fragments.tsv.gz.tbi`
fn tbi_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tbi");
    PathBuf::from(s)
}
