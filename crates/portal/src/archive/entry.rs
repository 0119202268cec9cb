//! One archive entry, safely: its path kept inside the destination, its bytes written in
//! chunks against the budget, a gzipped entry counted by what it inflates to.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use crossomics_limits::{CappedReader, Limit, Limits};

use super::{ArchiveError, Budget, CHUNK, read_error};

/// A relative path of plain components, or an error naming the entry.
pub(super) fn safe_relative(name: &str) -> Result<Option<PathBuf>, ArchiveError> {
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
pub(super) fn write_entry(
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

pub(super) fn count_entry(entries: &mut u64, limits: &Limits) -> Result<(), ArchiveError> {
    *entries += 1;
    limits.check(
        Limit::ArchiveEntries,
        u128::from(*entries),
        "the archive",
        "its entries, counted as read",
    )?;
    Ok(())
}
