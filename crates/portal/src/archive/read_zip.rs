//! Reading a zip with this module's own reader: the entry count taken from the end
//! records (zip64 too) and checked before the central directory is read, each entry
//! checked against its local header and checksum, links, special files and encryption
//! refused.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, Limit, Limits};

use super::entry::{count_entry, safe_relative, write_entry};
use super::{ArchiveError, Budget};

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

pub(super) const EOCD: &[u8] = b"PK\x05\x06";
pub(super) const EOCD64: &[u8] = b"PK\x06\x06";
pub(super) const EOCD64_LOCATOR: &[u8] = b"PK\x06\x07";
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

pub(super) fn unpack_zip(
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
