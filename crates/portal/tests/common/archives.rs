//! Archives made in tests: gzip, tar (names written raw, as an attacker would) and zip.
//! Shared by the integration tests and the crate's own unit tests (`src/lib.rs` includes
//! this file), which do not each use every helper.
#![allow(dead_code)]

use std::io::Write;

/// `bytes` gzipped.
pub fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

/// A tar of regular files (mode 644), gzipped when `gzip`.
pub fn tar_with(entries: &[(&str, &[u8])], gzip: bool) -> Vec<u8> {
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

/// A zip of files (deflated).
pub fn zip_with(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, data) in entries {
        zip.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}
