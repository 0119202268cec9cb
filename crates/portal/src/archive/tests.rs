use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossomics_limits::Limits;

use super::read_zip::{EOCD, EOCD64, EOCD64_LOCATOR};
use super::*;
use crate::test_archives::{gz, tar_with, zip_with};

fn limits() -> Limits {
    Limits {
        max_unpacked_bytes: 1 << 20,
        max_inflated_bytes: 1 << 20,
        max_archive_entries: 10,
        ..Limits::portal()
    }
}

fn unpack_with(
    bytes: &[u8],
    format: Format,
    limits: &Limits,
) -> (tempfile::TempDir, Result<Vec<PathBuf>, ArchiveError>) {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("upload");
    std::fs::write(&a, bytes).unwrap();
    let dest = dir.path().join("out");
    let r = unpack(&a, format, &dest, &mut Budget::new(limits));
    (dir, r)
}

fn unpack_bytes(
    bytes: &[u8],
    format: Format,
) -> (tempfile::TempDir, Result<Vec<PathBuf>, ArchiveError>) {
    unpack_with(bytes, format, &limits())
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
fn long_names_of_gnu_and_pax_tars_are_read() {
    let long = format!("{}/matrix.mtx", "d".repeat(150));
    for mut h in [tar::Header::new_gnu(), tar::Header::new_ustar()] {
        let mut builder = tar::Builder::new(Vec::new());
        h.set_size(2);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        builder.append_data(&mut h, &long, &b"ab"[..]).unwrap();
        // a pax path record, as bsdtar writes for long or non-ASCII names
        let mut pax = tar::Builder::new(Vec::new());
        pax.append_pax_extensions([("path", long.as_bytes())])
            .unwrap();
        let mut h2 = tar::Header::new_ustar();
        h2.set_size(2);
        h2.set_mode(0o644);
        h2.set_path("short").unwrap();
        h2.set_cksum();
        pax.append(&h2, &b"cd"[..]).unwrap();
        for (bytes, want) in [
            (builder.into_inner().unwrap(), b"ab"),
            (pax.into_inner().unwrap(), b"cd"),
        ] {
            let (dir, r) = unpack_bytes(&bytes, Format::Tar);
            assert_eq!(r.unwrap(), vec![PathBuf::from(&long)]);
            assert_eq!(
                std::fs::read(dir.path().join("out").join(&long)).unwrap(),
                want
            );
        }
    }
}

/// A tar whose first header is an extension of `kind` claiming `size` bytes; its data
/// is not there (an attacker needs to send none of it).
fn tar_claiming(kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
    h.set_size(size);
    h.set_cksum();
    let mut bytes = h.as_bytes().to_vec();
    bytes.extend_from_slice(&[b'a'; 4096]);
    bytes
}

#[test]
fn huge_extension_headers_are_refused_before_they_are_read() {
    for (kind, what) in [
        (
            tar::EntryType::GNULongName,
            "GNU long name header of 1.0 GiB",
        ),
        (tar::EntryType::XHeader, "pax extension header of 1.0 GiB"),
        (
            tar::EntryType::XGlobalHeader,
            "pax extension header of 1.0 GiB",
        ),
    ] {
        let bytes = tar_claiming(kind, 1 << 30);
        let (_d, r) = unpack_bytes(&bytes, Format::Tar);
        let e = r.unwrap_err().to_string();
        assert!(e.contains(what), "{e}");
        let (_d, r) = unpack_bytes(&gz(&bytes), Format::TarGz);
        assert!(r.unwrap_err().to_string().contains(what));
    }
    // within the cap but cut short: damaged
    let (_d, r) = unpack_bytes(
        &tar_claiming(tar::EntryType::GNULongName, 8192),
        Format::Tar,
    );
    assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
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
    let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    z.add_symlink(
        "link",
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    let (_d, r) = unpack_bytes(&z.finish().unwrap().into_inner(), Format::Zip);
    assert!(r.unwrap_err().to_string().contains("`link` is a link"));
}

#[test]
fn caps_bytes_and_entries() {
    // a zip bomb in miniature: 2 MiB of zeros compress to a few KiB
    let zeros = vec![0u8; 2 << 20];
    for (bytes, format) in [
        (zip_with(&[("big", &zeros)]), Format::Zip),
        (tar_with(&[("big", &zeros)], true), Format::TarGz),
    ] {
        let (_d, r) = unpack_bytes(&bytes, format);
        let e = r.unwrap_err();
        assert!(matches!(e, ArchiveError::Limit(_)), "{e:?}");
        let e = e.to_string();
        assert!(
            e.contains("over the limit of 1.0 MiB") && e.contains("--max-"),
            "{e}"
        );
    }
    let names: Vec<String> = (0..11).map(|i| format!("f{i}")).collect();
    let many: Vec<(&str, &[u8])> = names.iter().map(|n| (n.as_str(), &b"x"[..])).collect();
    for (bytes, format) in [
        (tar_with(&many, false), Format::Tar),
        (zip_with(&many), Format::Zip),
    ] {
        let (_d, r) = unpack_bytes(&bytes, format);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("(11) is over the limit of 10 entries"), "{e}");
        assert!(e.contains("--max-archive-entries"), "{e}");
    }
}

#[test]
fn a_gzipped_entry_counts_by_what_it_inflates_to() {
    // 64 KiB of gzip that inflates to 2 MiB: under the cap as written, over it inflated
    let bomb = gz(&vec![b'%'; 2 << 20]);
    assert!(bomb.len() < 64 << 10);
    for (bytes, format) in [
        (tar_with(&[("m/matrix.mtx.gz", &bomb)], false), Format::Tar),
        (tar_with(&[("m/matrix.mtx.gz", &bomb)], true), Format::TarGz),
        (zip_with(&[("m/matrix.mtx.gz", &bomb)]), Format::Zip),
    ] {
        let (_d, r) = unpack_bytes(&bytes, format);
        let e = r.unwrap_err().to_string();
        assert!(
            e.contains("matrix.mtx.gz") && e.contains("over the limit of 1.0 MiB"),
            "{e}"
        );
    }
    // the inflation cap of one stream, under a larger unpacked budget
    let l = Limits {
        max_unpacked_bytes: 64 << 20,
        ..limits()
    };
    let (_d, r) = unpack_with(
        &tar_with(&[("m/matrix.mtx.gz", &bomb)], false),
        Format::Tar,
        &l,
    );
    let e = r.unwrap_err().to_string();
    assert!(e.contains("max_inflated_bytes"), "{e}");
    // and a small one is fine
    let small = gz(b"%%MatrixMarket\n");
    let (_d, r) = unpack_bytes(
        &tar_with(&[("m/matrix.mtx.gz", &small)], false),
        Format::Tar,
    );
    assert_eq!(r.unwrap(), vec![PathBuf::from("m/matrix.mtx.gz")]);
}

/// A zip of nothing but an end record (zip64 when `count` needs it) claiming `count`
/// entries.
pub(crate) fn zip_claiming(count: u64) -> Vec<u8> {
    let mut z = Vec::new();
    if count >= 0xFFFF {
        // zip64 end record, its locator, then the plain end record saying "see zip64"
        z.extend_from_slice(EOCD64);
        z.extend_from_slice(&44u64.to_le_bytes());
        z.extend_from_slice(&[45, 0, 45, 0]);
        z.extend_from_slice(&[0; 8]);
        z.extend_from_slice(&count.to_le_bytes());
        z.extend_from_slice(&count.to_le_bytes());
        z.extend_from_slice(&count.wrapping_mul(46).to_le_bytes());
        z.extend_from_slice(&0u64.to_le_bytes());
        z.extend_from_slice(EOCD64_LOCATOR);
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(&0u64.to_le_bytes());
        z.extend_from_slice(&1u32.to_le_bytes());
        z.extend_from_slice(EOCD);
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&[0xFF; 4]);
        z.extend_from_slice(&[0xFF; 8]);
        z.extend_from_slice(&[0; 2]);
    } else {
        z.extend_from_slice(EOCD);
        z.extend_from_slice(&[0; 4]);
        z.extend_from_slice(&(count as u16).to_le_bytes());
        z.extend_from_slice(&(count as u16).to_le_bytes());
        z.extend_from_slice(&((count * 46) as u32).to_le_bytes());
        z.extend_from_slice(&0u32.to_le_bytes());
        z.extend_from_slice(&[0; 2]);
    }
    z
}

#[test]
fn a_zip_claiming_many_entries_is_refused_before_its_directory_is_read() {
    for count in [11u64, 65_535, 1_000_000, u64::MAX / 64] {
        let (_d, r) = unpack_bytes(&zip_claiming(count), Format::Zip);
        let e = r.unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, ArchiveError::Limit(_)), "{count}: {msg}");
        assert!(
            msg.contains(&format!("({count}) is over the limit of 10 entries")),
            "{msg}"
        );
    }
}

#[test]
fn truncated_or_damaged_archives_are_errors() {
    let entries: &[(&str, &[u8])] = &[("m/matrix.mtx", &[7u8; 5000])];
    let gz = tar_with(entries, true);
    let (_d, r) = unpack_bytes(&gz[..gz.len() / 2], Format::TarGz);
    assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
    let z = zip_with(entries);
    for cut in [&z[..z.len() - 30], &z[40..], &z[..z.len() / 2]] {
        let (_d, r) = unpack_bytes(cut, Format::Zip);
        assert!(matches!(r, Err(ArchiveError::Malformed(_))), "{r:?}");
    }
    // a flipped byte in the data: the checksum says so
    let mut z = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    z.start_file("a.txt", stored).unwrap();
    z.write_all(b"hello hello").unwrap();
    let mut flipped = z.finish().unwrap().into_inner();
    let at = flipped.windows(5).position(|w| w == b"hello").unwrap();
    flipped[at] = b'j';
    let (_d, r) = unpack_bytes(&flipped, Format::Zip);
    assert!(r.unwrap_err().to_string().contains("checksum"));
}

#[test]
fn a_zip_behind_prepended_bytes_is_read() {
    let mut z = b"#!/bin/sh\nexit 0\n".to_vec();
    z.extend(zip_with(&[("a.txt", b"alpha")]));
    let (dir, r) = unpack_bytes(&z, Format::Zip);
    assert_eq!(r.unwrap(), vec![PathBuf::from("a.txt")]);
    assert_eq!(
        std::fs::read(dir.path().join("out/a.txt")).unwrap(),
        b"alpha"
    );
}

#[test]
fn cancelling_stops_unpacking() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("upload");
    std::fs::write(&a, tar_with(&[("a", b"x")], false)).unwrap();
    let cancel = Arc::new(AtomicBool::new(true));
    let mut budget = Budget::with_cancel(&limits(), cancel);
    let r = unpack(&a, Format::Tar, &dir.path().join("out"), &mut budget);
    assert!(matches!(r, Err(ArchiveError::Cancelled)), "{r:?}");
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
    let files = unpack(&z, Format::Zip, &dest, &mut Budget::new(&limits())).unwrap();
    assert_eq!(files, vec![PathBuf::from("x/a.txt")]);
    assert_eq!(
        std::fs::read_to_string(dest.join("x/a.txt")).unwrap(),
        "alpha"
    );
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["a.txt", "back", "out.zip"],
        "no temporary file is left"
    );
}
