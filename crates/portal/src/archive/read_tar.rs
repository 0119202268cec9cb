//! Reading a tar (or the tar inside a tar.gz) without trusting it: extension headers
//! (GNU long names, pax records) checked by size before they are read, links and special
//! files refused.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::entry::{count_entry, safe_relative, write_entry};
use super::{ArchiveError, Budget, read_error};

/// Bytes of a GNU long name or long link this server reads (Linux's `PATH_MAX` is 4096).
pub const MAX_LONG_NAME_BYTES: u64 = 64 << 10;
/// Bytes of one pax extension header (path, times, xattrs) this server reads.
pub const MAX_PAX_BYTES: u64 = 1 << 20;

pub(super) fn unpack_tar(
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
