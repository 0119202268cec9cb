//! The zip of a job's result files, offered as one download.

use std::fs::File;
use std::io;
use std::path::Path;

/// Writes a zip of `files` (name in the archive, path on disk) to `dest`, atomically
/// (a temporary file renamed into place).
pub fn write_zip(dest: &Path, files: &[(&str, &Path)]) -> io::Result<()> {
    crossomics_atomic::write_with(
        dest,
        |tmp| {
            let mut zip = zip::ZipWriter::new(File::create(tmp)?);
            let options = zip::write::SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .large_file(true);
            for (name, path) in files {
                zip.start_file(*name, options).map_err(io::Error::other)?;
                io::copy(&mut File::open(path)?, &mut zip)?;
            }
            zip.finish().map_err(io::Error::other)?.sync_all()
        },
        |e| e,
    )
}
