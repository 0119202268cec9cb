//! Files written whole or not at all. Every output of crossomics (tables, models, h5ad,
//! plots, configs) is written to a temporary file beside its target, then renamed into
//! place: a reader never sees a partial file, and a failed or interrupted write leaves
//! none behind (the temporary file is removed on error).
//!
//! The temporary name is `.<stem>.<pid>-<n>.partial.<ext>`: unique per process and call,
//! hidden, and with the target's extension last, for writers that choose the format by
//! extension (image backends).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A fresh temporary path beside `path`.
pub fn temp_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let stem = path
        .file_stem()
        .map_or_else(|| "file".into(), |s| s.to_string_lossy().into_owned());
    let ext = path
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    path.with_file_name(format!(".{stem}.{}-{n}.partial{ext}", std::process::id()))
}

/// Writes `path` by `write`, which gets a temporary path to create; on success the file
/// is renamed into place (a failed rename becomes an error by `rename_error`), on error
/// it is removed and the error returned.
pub fn write_with<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
    rename_error: impl FnOnce(io::Error) -> E,
) -> Result<(), E> {
    let tmp = temp_path(path);
    let result = write(&tmp).and_then(|()| std::fs::rename(&tmp, path).map_err(rename_error));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `bytes` to `path` whole or not at all.
pub fn write(path: &Path, bytes: impl AsRef<[u8]>) -> io::Result<()> {
    write_with(path, |tmp| std::fs::write(tmp, bytes.as_ref()), |e| e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_write_replaces_the_file_and_leaves_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("table.csv");
        write(&p, "old").unwrap();
        write(&p, b"new").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(entries(dir.path()), ["table.csv"]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_partial_one() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.json");
        write(&p, "old").unwrap();
        let err = write_with(
            &p,
            |tmp| -> io::Result<()> {
                std::fs::write(tmp, "half")?;
                Err(io::Error::other("the disk is full"))
            },
            |e| e,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "the disk is full");
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        assert_eq!(entries(dir.path()), ["model.json"]);
    }

    #[test]
    fn temporary_names_are_hidden_unique_and_keep_the_extension() {
        let p = Path::new("/out/umap.png");
        let (a, b) = (temp_path(p), temp_path(p));
        assert_ne!(a, b);
        for t in [&a, &b] {
            assert_eq!(t.parent(), p.parent());
            assert_eq!(t.extension().unwrap(), "png");
            assert!(
                t.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(".umap.")
            );
        }
    }

    #[test]
    fn a_missing_folder_is_an_error_and_creates_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("no/such/folder/x.txt");
        assert!(write(&p, "x").is_err());
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }
}
