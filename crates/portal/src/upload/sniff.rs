//! What a file is, judged by its first bytes (and, for gzip, by the first bytes of what it
//! inflates to); for messages, a readable note on what it starts with.

use std::fs::File;
use std::io::Read;
use std::path::Path;

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

/// A readable note on what a file starts with.
pub(super) fn describe_head(path: &Path) -> String {
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

/// Whether a text file's first line that is not a `#` comment (within its first 64 KiB)
/// reads as a 10x fragment: 4 or 5 tab-separated fields, the 2nd and 3rd integers.
pub(super) fn looks_like_fragments(path: &Path, gzip: bool) -> std::io::Result<bool> {
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
