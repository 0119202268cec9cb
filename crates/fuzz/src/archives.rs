//! Zip and tar writers with full control over every header field, so that an archive
//! can lie: entry names with `..`, absolute or very long names, links, devices and
//! fifos, declared sizes that differ from the data, entry counts that differ from the
//! entries, nested gzip, many entries.

use std::io::Write;

use rand::Rng;

use crate::mutate::{self, CaseRng, pick};

/// What an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Symlink,
    Hardlink,
    CharDev,
    BlockDev,
    Fifo,
    /// a GNU long-name extension header for the next entry (tar only)
    GnuLongName,
    /// a pax extension header (tar only)
    Pax,
    /// a pax global header (tar only)
    PaxGlobal,
}

/// One entry as written (`declared` overrides the size the header claims).
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub data: Vec<u8>,
    pub link: String,
    pub declared: Option<u64>,
    /// zip: deflate the data
    pub deflate: bool,
}

impl Entry {
    pub fn file(name: &str, data: Vec<u8>) -> Self {
        Self {
            name: name.to_string(),
            kind: Kind::File,
            data,
            link: String::new(),
            declared: None,
            deflate: true,
        }
    }
}

fn octal(field: &mut [u8], v: u64) {
    let width = field.len() - 1;
    let s = format!("{v:0width$o}");
    if s.len() <= width {
        field[..width].copy_from_slice(s.as_bytes());
        field[width] = 0;
    } else {
        // GNU base-256 for values that do not fit
        field.fill(0);
        field[0] = 0x80;
        let bytes = v.to_be_bytes();
        let n = field.len();
        field[n - 8..].copy_from_slice(&bytes);
    }
}

fn tar_header(name: &[u8], kind: u8, size: u64, link: &str, mode: u64) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    if name.len() > 100 {
        // ustar prefix: the part before the last 100 bytes
        let split = name.len() - 100;
        let p = split.min(155);
        h[345..345 + p].copy_from_slice(&name[..p]);
        h[..100].copy_from_slice(&name[split..]);
    }
    octal(&mut h[100..108], mode);
    octal(&mut h[108..116], 1000);
    octal(&mut h[116..124], 1000);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_700_000_000);
    h[156] = kind;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link.as_bytes()[..l]);
    h[257..263].copy_from_slice(b"ustar\0");
    h[263..265].copy_from_slice(b"00");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    let s = format!("{sum:06o}\0 ");
    h[148..156].copy_from_slice(s.as_bytes());
    h
}

fn pad512(out: &mut Vec<u8>) {
    let rem = out.len() % 512;
    if rem != 0 {
        out.resize(out.len() + 512 - rem, 0);
    }
}

/// A tar archive of `entries`; `end` writes the two zero blocks.
pub fn tar(entries: &[Entry], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for e in entries {
        let (kind, mode) = match e.kind {
            Kind::File => (b'0', 0o644),
            Kind::Dir => (b'5', 0o755),
            Kind::Symlink => (b'2', 0o777),
            Kind::Hardlink => (b'1', 0o644),
            Kind::CharDev => (b'3', 0o644),
            Kind::BlockDev => (b'4', 0o644),
            Kind::Fifo => (b'6', 0o644),
            Kind::GnuLongName => (b'L', 0o644),
            Kind::Pax => (b'x', 0o644),
            Kind::PaxGlobal => (b'g', 0o644),
        };
        let size = e.declared.unwrap_or(e.data.len() as u64);
        let name = if e.kind == Kind::GnuLongName {
            "././@LongLink"
        } else {
            e.name.as_str()
        };
        out.extend_from_slice(&tar_header(name.as_bytes(), kind, size, &e.link, mode));
        out.extend_from_slice(&e.data);
        pad512(&mut out);
    }
    if end {
        out.extend_from_slice(&[0u8; 1024]);
    }
    out
}

fn crc32(data: &[u8]) -> u32 {
    let mut c = flate2::Crc::new();
    c.update(data);
    c.sum()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::fast());
    let _ = e.write_all(data);
    e.finish().unwrap_or_default()
}

/// How a zip's records may lie.
#[derive(Debug, Clone, Copy, Default)]
pub struct ZipLies {
    /// the end record's entry count
    pub count: Option<u16>,
    /// the end record's central directory offset
    pub cd_offset: Option<u32>,
    /// the end record's central directory size
    pub cd_size: Option<u32>,
    /// the central records' uncompressed sizes: 0xffffffff (zip64 marker) or huge
    pub usize: Option<u32>,
    /// a comment after the end record
    pub comment: bool,
    /// no local headers' data descriptors match: CRCs are wrong
    pub bad_crc: bool,
}

/// A zip archive of `entries`.
pub fn zip(entries: &[Entry], lies: ZipLies) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    let mut count = 0u16;
    for e in entries {
        let (mode, is_dir) = match e.kind {
            Kind::Dir => (0o40755u32, true),
            Kind::Symlink => (0o120777, false),
            Kind::CharDev => (0o20644, false),
            Kind::BlockDev => (0o60644, false),
            Kind::Fifo => (0o10644, false),
            _ => (0o100644, false),
        };
        let name = if is_dir && !e.name.ends_with('/') {
            format!("{}/", e.name)
        } else {
            e.name.clone()
        };
        let payload = if e.kind == Kind::Symlink {
            e.link.as_bytes().to_vec()
        } else {
            e.data.clone()
        };
        let (method, stored) = if e.deflate && !payload.is_empty() {
            (8u16, deflate(&payload))
        } else {
            (0u16, payload.clone())
        };
        let crc = if lies.bad_crc {
            crc32(&payload) ^ 1
        } else {
            crc32(&payload)
        };
        let usize_real = payload.len() as u32;
        let usize_decl = e.declared.map(|d| d as u32).unwrap_or(usize_real);
        let offset = out.len() as u32;
        let local = |w: &mut Vec<u8>, usz: u32| {
            w.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
            w.extend_from_slice(&20u16.to_le_bytes());
            w.extend_from_slice(&0u16.to_le_bytes());
            w.extend_from_slice(&method.to_le_bytes());
            w.extend_from_slice(&0u16.to_le_bytes());
            w.extend_from_slice(&0x5821u16.to_le_bytes());
            w.extend_from_slice(&crc.to_le_bytes());
            w.extend_from_slice(&(stored.len() as u32).to_le_bytes());
            w.extend_from_slice(&usz.to_le_bytes());
            w.extend_from_slice(&(name.len() as u16).to_le_bytes());
            w.extend_from_slice(&0u16.to_le_bytes());
            w.extend_from_slice(name.as_bytes());
        };
        local(&mut out, usize_decl);
        out.extend_from_slice(&stored);
        let c = &mut central;
        c.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        c.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes());
        c.extend_from_slice(&20u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&method.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0x5821u16.to_le_bytes());
        c.extend_from_slice(&crc.to_le_bytes());
        c.extend_from_slice(&(stored.len() as u32).to_le_bytes());
        c.extend_from_slice(&lies.usize.unwrap_or(usize_decl).to_le_bytes());
        c.extend_from_slice(&(name.len() as u16).to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&0u16.to_le_bytes());
        c.extend_from_slice(&(mode << 16).to_le_bytes());
        c.extend_from_slice(&offset.to_le_bytes());
        c.extend_from_slice(name.as_bytes());
        count = count.wrapping_add(1);
    }
    let cd_offset = out.len() as u32;
    let cd_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    let n = lies.count.unwrap_or(count);
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&lies.cd_size.unwrap_or(cd_size).to_le_bytes());
    out.extend_from_slice(&lies.cd_offset.unwrap_or(cd_offset).to_le_bytes());
    let comment: &[u8] = if lies.comment {
        b"PK\x05\x06 a comment holding a fake end record"
    } else {
        b""
    };
    out.extend_from_slice(&(comment.len() as u16).to_le_bytes());
    out.extend_from_slice(comment);
    out
}

/// A 10x matrix folder's files under `prefix` (`sample/filtered_feature_bc_matrix/`),
/// each gzipped or not, maybe mutated.
pub fn tenx_folder_entries(rng: &mut CaseRng, prefix: &str) -> Vec<Entry> {
    let genes = rng.gen_range(1..6);
    let peaks = rng.gen_range(0..6);
    let cells = rng.gen_range(1..8);
    let mtx = crate::text::mtx_seed(rng, genes + peaks, cells, "integer", false);
    let mut files = vec![
        ("matrix.mtx", mtx.into_bytes()),
        (
            "features.tsv",
            crate::text::features_tsv(genes, peaks).into_bytes(),
        ),
        (
            "barcodes.tsv",
            crate::text::barcodes_tsv(cells).into_bytes(),
        ),
    ];
    if rng.gen_bool(0.2) {
        let i = rng.gen_range(0..3);
        let text = String::from_utf8_lossy(&files[i].1).into_owned();
        files[i].1 = if i == 0 {
            crate::text::mutate_text(rng, &text)
        } else {
            crate::text::mutate_tsv(rng, &text)
        };
    }
    let gz = rng.gen_bool(0.6);
    let mut out = Vec::new();
    for (name, data) in files {
        if !rng.gen_bool(0.97) {
            continue;
        }
        let zip_it = gz || rng.gen_bool(0.1);
        let (name, data) = if zip_it {
            (
                format!("{prefix}{name}.gz"),
                mutate::gzip_maybe_damaged(rng, &data),
            )
        } else {
            (format!("{prefix}{name}"), data)
        };
        out.push(Entry::file(&name, data));
    }
    out
}

/// Names that must not leave the destination folder (the escapes go at most three
/// levels up, which the harness's scratch folders contain and check).
pub const HOSTILE_NAMES: [&str; 16] = [
    "../escape.txt",
    "../../escape.txt",
    "a/../../escape.txt",
    "./../escape.txt",
    "a/b/../../../escape.txt",
    "/tmp/crossomics-fuzz-escape/abs.txt",
    "//tmp/crossomics-fuzz-escape/abs2.txt",
    "..",
    ".",
    "",
    "a\\..\\..\\escape.txt",
    "C:\\escape.txt",
    "__MACOSX/._matrix.mtx",
    "._matrix.mtx",
    ".DS_Store",
    "sample/./matrix.mtx",
];

/// Extra entries that attack the unpacker.
pub fn hostile_entries(rng: &mut CaseRng, prefix: &str) -> Vec<Entry> {
    let mut out = Vec::new();
    for _ in 0..rng.gen_range(1..4) {
        let mut e = Entry::file(pick(rng, &HOSTILE_NAMES), b"escaped\n".to_vec());
        match rng.gen_range(0..14) {
            0..=3 => {}
            4 => {
                e.kind = Kind::Symlink;
                e.name = format!(
                    "{prefix}{}",
                    pick(rng, &["matrix.mtx", "link", "barcodes.tsv"])
                );
                e.link = pick(
                    rng,
                    &[
                        "/etc/passwd",
                        "../../escape.txt",
                        "/dev/zero",
                        "..",
                        "/tmp/crossomics-fuzz-escape",
                    ],
                )
                .to_string();
                e.data.clear();
            }
            5 => {
                e.kind = Kind::Hardlink;
                e.name = format!("{prefix}hard");
                e.link =
                    pick(rng, &["/etc/passwd", "../escape.txt", "sample/matrix.mtx"]).to_string();
                e.data.clear();
            }
            6 => {
                e.kind = pick(rng, &[Kind::CharDev, Kind::BlockDev, Kind::Fifo]);
                e.name = format!(
                    "{prefix}{}",
                    pick(rng, &["matrix.mtx", "dev", "barcodes.tsv.gz"])
                );
                e.data.clear();
            }
            7 => {
                // a long name, via GNU long-name header or ustar prefix
                let long = format!("{prefix}{}/matrix.mtx", "d".repeat(rng.gen_range(90..400)));
                if rng.r#gen() {
                    let mut l = Entry::file("", long.clone().into_bytes());
                    l.kind = Kind::GnuLongName;
                    l.data.push(0);
                    if rng.gen_bool(0.2) {
                        l.declared = Some(pick(rng, &[1 << 20, 1 << 33, u64::MAX >> 2, 70_000]));
                    }
                    out.push(l);
                }
                e.name = long;
            }
            8 => {
                let mut p = Entry::file("pax", Vec::new());
                p.kind = if rng.gen_bool(0.8) {
                    Kind::Pax
                } else {
                    Kind::PaxGlobal
                };
                let path = pick(
                    rng,
                    &[
                        "../pax-escape.txt",
                        "ok.txt",
                        "/tmp/crossomics-fuzz-escape/pax.txt",
                    ],
                );
                let rec = format!("path={path}\n");
                let len = rec.len() + 3;
                let mut data = format!("{len} {rec}");
                if rng.gen_bool(0.3) {
                    data = pick(
                        rng,
                        &[
                            "99999999999 path=x\n",
                            "5 x\n",
                            "0 \n",
                            "18446744073709551616 path=a\n",
                            "12 size=-1\n",
                            "20 size=99999999999\n",
                        ],
                    )
                    .to_string();
                }
                p.data = data.into_bytes();
                if rng.gen_bool(0.2) {
                    p.declared = Some(pick(rng, &[1 << 21, 1 << 34, 3]));
                }
                out.push(p);
            }
            9 => {
                e.kind = Kind::Dir;
                e.name = pick(
                    rng,
                    &["../escape-dir", "sample", "/tmp/crossomics-fuzz-escape/dir"],
                )
                .to_string();
                e.data.clear();
            }
            // declared size that lies
            10 | 11 => {
                e.name = format!(
                    "{prefix}{}",
                    pick(rng, &["matrix.mtx", "features.tsv", "x.bin"])
                );
                e.declared = Some(pick(
                    rng,
                    &[
                        0,
                        1,
                        511,
                        513,
                        1 << 20,
                        1 << 31,
                        1 << 40,
                        (1 << 33) + 5,
                        u64::MAX >> 4,
                    ],
                ));
            }
            // a nested gzip bomb-ish entry
            12 => {
                e.name = format!("{prefix}matrix.mtx.gz");
                let inner = vec![b'%'; rng.gen_range(1..(2 << 20))];
                let gz = mutate::gzip(&inner);
                e.data = if rng.r#gen() { mutate::gzip(&gz) } else { gz };
            }
            // many small entries
            _ => {
                for i in 0..rng.gen_range(50..130) {
                    out.push(Entry::file(
                        &format!("{prefix}many/{i}.txt"),
                        vec![b'x'; i % 7],
                    ));
                }
            }
        }
        out.push(e);
    }
    out
}
