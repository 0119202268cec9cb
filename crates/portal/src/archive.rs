//! Unpacking uploaded archives (zip, tar, tar.gz) without trusting them: every entry's
//! path must stay inside the destination (no absolute paths, no `..`), only regular
//! files and folders are written (no links, devices or fifos), and the number of entries
//! and the bytes actually written are capped, whatever the headers claim. Also the zip
//! writer for result downloads.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Caps on what an archive may unpack to.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_bytes: u64,
    pub max_entries: usize,
}

/// Why an archive was refused.
#[derive(Debug)]
pub enum ArchiveError {
    /// The archive breaks a rule (escaping path, link, too big); the message says which.
    Refused(String),
    /// The archive is malformed or truncated.
    Malformed(String),
    Io(io::Error),
}

impl std::fmt::Display for ArchiveError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(m) | Self::Malformed(m) => f.write_str(m),
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
                    "archive entry `{name}` points outside the archive's folder"
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

/// Writes at most `budget` bytes of `from` to `to`; an error when there are more.
fn copy_capped(
    from: &mut dyn Read,
    to: &Path,
    budget: &mut u64,
    limits: &Limits,
) -> Result<(), ArchiveError> {
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
    let written = io::copy(&mut from.take(*budget + 1), &mut out)
        .map_err(|e| ArchiveError::Malformed(format!("archive is damaged or truncated: {e}")))?;
    if written > *budget {
        return Err(ArchiveError::Refused(format!(
            "archive unpacks to more than the limit of {}",
            crate::human_bytes(limits.max_bytes)
        )));
    }
    *budget -= written;
    out.flush()?;
    Ok(())
}

fn count_entry(entries: &mut usize, limits: &Limits) -> Result<(), ArchiveError> {
    *entries += 1;
    if *entries > limits.max_entries {
        return Err(ArchiveError::Refused(format!(
            "archive has more than {} entries",
            limits.max_entries
        )));
    }
    Ok(())
}

/// Unpacks `archive` into the folder `dest` (created), under `limits`. Returns the files
/// written, relative to `dest`. On error `dest` may hold part of the archive: the caller
/// removes the job folder.
pub fn unpack(
    archive: &Path,
    format: Format,
    dest: &Path,
    limits: &Limits,
) -> Result<Vec<PathBuf>, ArchiveError> {
    std::fs::create_dir_all(dest)?;
    let mut budget = limits.max_bytes;
    let mut entries = 0usize;
    let mut files = Vec::new();
    match format {
        Format::Zip => {
            let mut zip = zip::ZipArchive::new(File::open(archive)?)
                .map_err(|e| ArchiveError::Malformed(format!("not a readable zip archive: {e}")))?;
            for i in 0..zip.len() {
                count_entry(&mut entries, limits)?;
                let mut entry = zip.by_index(i).map_err(|e| {
                    ArchiveError::Malformed(format!("zip entry {i} is unreadable: {e}"))
                })?;
                let name = entry.name().to_string();
                let Some(rel) = safe_relative(&name)? else {
                    continue;
                };
                if entry.is_symlink() {
                    return Err(ArchiveError::Refused(format!(
                        "archive entry `{name}` is a link; only files and folders are accepted"
                    )));
                }
                if entry.is_dir() {
                    std::fs::create_dir_all(dest.join(&rel))?;
                    continue;
                }
                copy_capped(&mut entry, &dest.join(&rel), &mut budget, limits)?;
                files.push(rel);
            }
        }
        Format::Tar | Format::TarGz => {
            let file = File::open(archive)?;
            let reader: Box<dyn Read> = if format == Format::TarGz {
                Box::new(flate2::read::MultiGzDecoder::new(file))
            } else {
                Box::new(file)
            };
            let mut tar = tar::Archive::new(reader);
            let malformed = |e: io::Error| {
                ArchiveError::Malformed(format!("archive is damaged or truncated: {e}"))
            };
            for entry in tar.entries().map_err(malformed)? {
                count_entry(&mut entries, limits)?;
                let mut entry = entry.map_err(malformed)?;
                let name = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                let kind = entry.header().entry_type();
                // pax/GNU extension headers carry metadata, not files
                if kind.is_pax_global_extensions()
                    || kind.is_pax_local_extensions()
                    || kind.is_gnu_longname()
                    || kind.is_gnu_longlink()
                {
                    continue;
                }
                let Some(rel) = safe_relative(&name)? else {
                    continue;
                };
                if kind.is_dir() {
                    std::fs::create_dir_all(dest.join(&rel))?;
                } else if kind.is_file() {
                    copy_capped(&mut entry, &dest.join(&rel), &mut budget, limits)?;
                    files.push(rel);
                } else {
                    return Err(ArchiveError::Refused(format!(
                        "archive entry `{name}` is a {}; only files and folders are accepted",
                        if kind.is_symlink() || kind.is_hard_link() {
                            "link"
                        } else {
                            "special file"
                        }
                    )));
                }
            }
        }
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

    const LIMITS: Limits = Limits {
        max_bytes: 1 << 20,
        max_entries: 10,
    };

    fn tar_with(entries: &[(&str, &[u8])], gz: bool) -> Vec<u8> {
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
        if gz {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(&raw).unwrap();
            e.finish().unwrap()
        } else {
            raw
        }
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

    fn unpack_bytes(
        bytes: &[u8],
        format: Format,
    ) -> (tempfile::TempDir, Result<Vec<PathBuf>, ArchiveError>) {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("upload");
        std::fs::write(&a, bytes).unwrap();
        let dest = dir.path().join("out");
        let r = unpack(&a, format, &dest, &LIMITS);
        (dir, r)
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
    }

    #[test]
    fn caps_bytes_and_entries() {
        // a zip bomb in miniature: 2 MiB of zeros compress to a few KiB
        let zeros = vec![0u8; 2 << 20];
        let (_d, r) = unpack_bytes(&zip_with(&[("big", &zeros)]), Format::Zip);
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("more than the limit of 1.0 MiB")
        );
        let (_d, r) = unpack_bytes(&tar_with(&[("big", &zeros)], true), Format::TarGz);
        assert!(r.unwrap_err().to_string().contains("more than the limit"));
        let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
        let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
        let (_d, r) = unpack_bytes(&tar_with(&many, false), Format::Tar);
        assert!(r.unwrap_err().to_string().contains("more than 10 entries"));
    }

    #[test]
    fn truncated_archives_are_errors() {
        let entries: &[(&str, &[u8])] = &[("m/matrix.mtx", &[7u8; 5000])];
        let gz = tar_with(entries, true);
        let (_d, r) = unpack_bytes(&gz[..gz.len() / 2], Format::TarGz);
        assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
        let z = zip_with(entries);
        let (_d, r) = unpack_bytes(&z[..z.len() - 30], Format::Zip);
        assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
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
        let files = unpack(&z, Format::Zip, &dest, &LIMITS).unwrap();
        assert_eq!(files, vec![PathBuf::from("x/a.txt")]);
        assert_eq!(
            std::fs::read_to_string(dest.join("x/a.txt")).unwrap(),
            "alpha"
        );
        assert!(!dir.path().join("out.zip.tmp").exists());
    }
}
