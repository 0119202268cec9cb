//! The fuzz targets: how each turns `(seed, case index)` into an input, and which
//! readers it runs on it.

use std::path::{Path, PathBuf};

use crossomics_data::DataError;
use crossomics_data::h5ad::{self, ReadOptions};
use crossomics_data::tenx;
use crossomics_limits::Limits;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::archives::{self, Entry, ZipLies};
use crate::mutate::{self, CaseRng, pick};
use crate::{Outcome, Scratch, normalize, text};

/// A reader (or a chain of readers) of untrusted input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `crossomics_data::mtx::read` on MatrixMarket bytes (plain or gzip)
    Mtx,
    /// `tenx::read_mtx_dir_parts` on a folder of matrix, features and barcodes
    TenxDir,
    /// `h5ad::read_with` and `h5ad::read_var_column`
    H5ad,
    /// `tenx::is_tenx_h5` and `tenx::read_h5_parts`
    TenxH5,
    /// the portal's unpacking of zip / tar / tar.gz uploads (`upload::classify` of one
    /// archive, `archive::unpack`), then the 10x folder reader on what came out
    Archive,
    /// the portal's sniffing and classification of 1-3 loose files
    Sniff,
}

impl Target {
    pub const ALL: [Target; 6] = [
        Target::Mtx,
        Target::TenxDir,
        Target::H5ad,
        Target::TenxH5,
        Target::Archive,
        Target::Sniff,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Target::Mtx => "mtx",
            Target::TenxDir => "tenx-dir",
            Target::H5ad => "h5ad",
            Target::TenxH5 => "tenx-h5",
            Target::Archive => "archive",
            Target::Sniff => "sniff",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }
}

/// The archive formats the portal unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Zip,
    Tar,
    TarGz,
}

/// One case's input: files (relative paths and bytes) and how to run the readers.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub files: Vec<(String, Vec<u8>)>,
    /// folders to create where a file is expected (`matrix.mtx/`)
    pub dirs: Vec<String>,
    /// what was planted that the readers must refuse
    pub planted: Vec<&'static str>,
    /// names the browser sent (sniff, archive)
    pub names: Vec<String>,
    /// also unpack directly in this format (archive)
    pub direct: Option<Format>,
    /// h5ad: read with `require_counts`, and from this layer
    pub require_counts: bool,
    pub layer: Option<String>,
    /// how the input was made
    pub note: String,
}

impl Input {
    pub fn describe(&self) -> String {
        format!(
            "{}\nfiles: {:?}\ndirs: {:?}\nplanted: {:?}\nnames: {:?}\ndirect unpack: {:?}\nrequire_counts: {}, layer: {:?}\n",
            self.note,
            self.files
                .iter()
                .map(|(n, b)| format!("{n} ({} bytes)", b.len()))
                .collect::<Vec<_>>(),
            self.dirs,
            self.planted,
            self.names,
            self.direct,
            self.require_counts,
            self.layer
        )
    }
}

/// The seed inputs of a target, generated in code from a fixed seed (the same in every
/// process, so that a case is a pure function of target, seed and index).
#[derive(Debug, Default)]
pub struct Corpus {
    pub mtx: Vec<String>,
    pub h5ad: Vec<Vec<u8>>,
    pub tenx_h5: Vec<Vec<u8>>,
    pub bomb: Vec<u8>,
}

impl Corpus {
    pub fn build(target: Target, scratch: &Scratch) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(0xC0FF_EE00 + target as u64);
        let dir = scratch.root.join("corpus");
        let _ = std::fs::create_dir_all(&dir);
        let mut c = Corpus {
            mtx: text::mtx_seeds(&mut rng),
            ..Corpus::default()
        };
        match target {
            Target::H5ad => c.h5ad = crate::h5::h5ad_seeds(&mut rng, &dir),
            Target::TenxH5 | Target::Sniff | Target::Archive => {
                c.tenx_h5 = crate::h5::tenx_h5_seeds(&mut rng, &dir)
            }
            _ => {}
        }
        if matches!(target, Target::Mtx | Target::TenxDir | Target::Sniff) {
            c.bomb = text::gzip_bomb();
        }
        let _ = std::fs::remove_dir_all(&dir);
        c
    }
}

/// The random source of case `index` of `seed` for `target`.
pub fn case_rng(target: Target, seed: u64, index: u64) -> CaseRng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((target as u64) << 56));
    rng.set_stream(index);
    rng
}

/// An MTX file's bytes: a seed mutated structurally and/or bytewise, maybe gzipped.
fn mtx_bytes(rng: &mut CaseRng, corpus: &Corpus, note: &mut String) -> Vec<u8> {
    let seed = pick(rng, &corpus.mtx);
    let mut bytes = match rng.gen_range(0..10) {
        0 => {
            note.push_str("valid seed; ");
            seed.into_bytes()
        }
        1..=6 => {
            note.push_str("token mutation; ");
            text::mutate_text(rng, &seed)
        }
        _ => {
            note.push_str("byte mutation; ");
            let mut b = seed.into_bytes();
            let donors: Vec<&[u8]> = corpus.mtx.iter().map(|s| s.as_bytes()).collect();
            let r = mutate::rounds(rng);
            mutate::mutate_bytes(rng, &mut b, &donors, r);
            b
        }
    };
    if rng.gen_bool(0.25) {
        note.push_str("gzip; ");
        bytes = mutate::gzip_maybe_damaged(rng, &bytes);
    }
    if !corpus.bomb.is_empty() && rng.gen_bool(0.003) {
        note.push_str("gzip bomb; ");
        bytes = corpus.bomb.clone();
    }
    bytes
}

/// The three files of a 10x folder (maybe mutated, gzipped, missing or doubled).
fn tenx_dir_files(rng: &mut CaseRng, corpus: &Corpus, input: &mut Input) {
    let genes = rng.gen_range(0..6);
    let peaks = rng.gen_range(0..6);
    let cells = rng.gen_range(0..9);
    let rows = genes + peaks;
    let field = pick(rng, &["integer", "integer", "real", "pattern"]);
    let mut mtx = text::mtx_seed(rng, rows, cells, field, false).into_bytes();
    if rng.gen_bool(0.4) {
        mtx = text::mutate_text(rng, &String::from_utf8_lossy(&mtx));
        input.note.push_str("matrix mutated; ");
    }
    if rng.gen_bool(0.01) && !corpus.bomb.is_empty() {
        mtx = corpus.bomb.clone();
        input.note.push_str("matrix is a gzip bomb; ");
    }
    let mut features = text::features_tsv(genes, peaks).into_bytes();
    if rng.gen_bool(0.35) {
        features = text::mutate_tsv(rng, &String::from_utf8_lossy(&features));
        input.note.push_str("features mutated; ");
    }
    let mut barcodes = text::barcodes_tsv(cells + usize::from(rng.gen_bool(0.03))).into_bytes();
    if rng.gen_bool(0.25) {
        barcodes = text::mutate_tsv(rng, &String::from_utf8_lossy(&barcodes));
        input.note.push_str("barcodes mutated; ");
    }
    for (name, mut data) in [
        ("matrix.mtx", mtx),
        ("features.tsv", features),
        ("barcodes.tsv", barcodes),
    ] {
        if rng.gen_bool(0.05) {
            let r = mutate::rounds(rng);
            mutate::mutate_bytes(rng, &mut data, &[], r);
        }
        match rng.gen_range(0..100) {
            0 => continue,
            1 => {
                input.dirs.push(name.to_string());
                continue;
            }
            2 => {
                // both the plain and the gzipped file
                input
                    .files
                    .push((format!("{name}.gz"), mutate::gzip(&data)));
                input.files.push((name.to_string(), data));
            }
            3..=40 => input
                .files
                .push((format!("{name}.gz"), mutate::gzip_maybe_damaged(rng, &data))),
            41..=45 => input.files.push((name.to_string(), mutate::gzip(&data))),
            _ => input.files.push((name.to_string(), data)),
        }
    }
}

/// An HDF5 file: a seed mutated bytewise, or a file generated structurally.
fn hdf5_file(
    rng: &mut CaseRng,
    seeds: &[Vec<u8>],
    scratch: &Scratch,
    h5ad: bool,
    input: &mut Input,
) -> Vec<u8> {
    if seeds.is_empty() || rng.gen_bool(0.3) {
        input.note.push_str("generated structurally; ");
        let path = scratch.case.join(if h5ad { "gen.h5ad" } else { "gen.h5" });
        let _ = std::fs::remove_file(&path);
        let planted = if h5ad {
            crate::h5::generate_h5ad(rng, &path)
        } else {
            crate::h5::generate_tenx_h5(rng, &path)
        };
        input.planted = planted.forbidden();
        let bytes = std::fs::read(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        if !bytes.is_empty() && rng.gen_bool(0.15) {
            input.note.push_str("then byte-mutated; ");
            let mut b = bytes;
            let r = mutate::rounds(rng);
            mutate::mutate_bytes(rng, &mut b, &[], r);
            return b;
        }
        return bytes;
    }
    let k = rng.gen_range(0..seeds.len());
    let mut b = seeds[k].clone();
    if rng.gen_bool(0.03) {
        input.note.push_str(&format!("valid seed {k}; "));
        return b;
    }
    input.note.push_str(&format!("byte mutation of seed {k}; "));
    let donors: Vec<&[u8]> = seeds.iter().map(|s| s.as_slice()).collect();
    let r = mutate::rounds(rng);
    mutate::mutate_bytes(rng, &mut b, &donors, r);
    b
}

/// A zip / tar / tar.gz of a 10x folder, maybe hostile, maybe lying, maybe damaged.
fn archive_bytes(rng: &mut CaseRng, corpus: &Corpus, input: &mut Input) -> (Vec<u8>, Format) {
    let prefix = pick(
        rng,
        &[
            "",
            "sample/",
            "pbmc/outs/filtered_feature_bc_matrix/",
            "a/b/c/d/e/f/g/h/i/",
        ],
    )
    .to_string();
    let mut entries: Vec<Entry> = Vec::new();
    if rng.gen_bool(0.3) {
        let mut d = Entry::file(prefix.trim_end_matches('/'), Vec::new());
        d.kind = archives::Kind::Dir;
        if !d.name.is_empty() {
            entries.push(d);
        }
    }
    entries.extend(archives::tenx_folder_entries(rng, &prefix));
    if rng.gen_bool(0.05) {
        entries.extend(archives::tenx_folder_entries(rng, "second/"));
        input.note.push_str("two folders; ");
    }
    if rng.gen_bool(0.05) && !corpus.tenx_h5.is_empty() {
        entries.push(Entry::file(
            &format!("{prefix}matrix.h5"),
            pick(rng, &corpus.tenx_h5),
        ));
        input.note.push_str("an h5 inside; ");
    }
    if rng.gen_bool(0.4) {
        let hostile = archives::hostile_entries(rng, &prefix);
        let at = rng.gen_range(0..=entries.len());
        entries.splice(at..at, hostile);
        input.note.push_str("hostile entries; ");
    }
    if rng.gen_bool(0.1) {
        for e in &mut entries {
            e.deflate = false;
        }
    }
    let format = pick(rng, &[Format::Zip, Format::Tar, Format::TarGz]);
    input.note.push_str(&format!("{format:?}; "));
    let mut bytes = match format {
        Format::Zip => {
            let mut lies = ZipLies::default();
            if rng.gen_bool(0.25) {
                input.note.push_str("zip lies; ");
                match rng.gen_range(0..6) {
                    0 => lies.count = Some(pick(rng, &[0, 1, 101, 0xffff, 2])),
                    1 => lies.cd_offset = Some(pick(rng, &[0, 1, 0xffff_ffff, 0x7fff_ffff, 30])),
                    2 => lies.cd_size = Some(pick(rng, &[0, 1, 0xffff_ffff, 46, 1 << 20])),
                    3 => lies.usize = Some(pick(rng, &[0, 1, 0xffff_ffff, 0x7fff_ffff, 1 << 30])),
                    4 => lies.comment = true,
                    _ => lies.bad_crc = true,
                }
            }
            archives::zip(&entries, lies)
        }
        Format::Tar | Format::TarGz => {
            let tar = archives::tar(&entries, rng.gen_bool(0.9));
            if format == Format::TarGz {
                let gz = mutate::gzip_maybe_damaged(rng, &tar);
                if rng.gen_bool(0.03) {
                    input.note.push_str("double gzip; ");
                    mutate::gzip(&gz)
                } else {
                    gz
                }
            } else {
                tar
            }
        }
    };
    if rng.gen_bool(0.2) {
        input.note.push_str("byte mutation; ");
        let r = mutate::rounds(rng);
        mutate::mutate_bytes(rng, &mut bytes, &[], r);
    }
    (bytes, format)
}

/// Names a browser may send.
const SENT_NAMES: [&str; 12] = [
    "matrix.mtx",
    "features.tsv.gz",
    "barcodes.tsv",
    "upload.zip",
    "data.h5ad",
    "../../etc/passwd",
    "C:\\Users\\me\\barcodes.tsv.gz",
    "",
    ".hidden",
    "a b c.h5",
    "évil\u{0}.tsv",
    "filtered_feature_bc_matrix.h5",
];

/// Generates the input of case `index`.
pub fn generate(
    target: Target,
    seed: u64,
    index: u64,
    corpus: &Corpus,
    scratch: &Scratch,
) -> Input {
    let mut rng = case_rng(target, seed, index);
    let rng = &mut rng;
    let mut input = Input::default();
    match target {
        Target::Mtx => {
            let mut note = String::new();
            let bytes = mtx_bytes(rng, corpus, &mut note);
            input.note = note;
            input.files.push(("matrix.mtx".into(), bytes));
        }
        Target::TenxDir => tenx_dir_files(rng, corpus, &mut input),
        Target::H5ad => {
            let _ = scratch.clear();
            let bytes = hdf5_file(rng, &corpus.h5ad, scratch, true, &mut input);
            input.require_counts = rng.gen_bool(0.5);
            if rng.gen_bool(0.1) {
                input.layer = Some("counts".into());
            }
            input.files.push(("input.h5ad".into(), bytes));
        }
        Target::TenxH5 => {
            let _ = scratch.clear();
            let bytes = hdf5_file(rng, &corpus.tenx_h5, scratch, false, &mut input);
            input.files.push(("input.h5".into(), bytes));
        }
        Target::Archive => {
            let (bytes, format) = archive_bytes(rng, corpus, &mut input);
            input
                .names
                .push(pick(rng, &["sample.zip", "sample.tar.gz", "x", "../x.tar"]).to_string());
            if rng.gen_bool(0.2) {
                input.direct = Some(pick(
                    rng,
                    &[format, format, Format::Zip, Format::Tar, Format::TarGz],
                ));
            }
            input.files.push(("upload".into(), bytes));
        }
        Target::Sniff => {
            let n = pick(rng, &[1usize, 2, 3, 3, 3]);
            // mostly the three files of a folder, in any order
            let mut folder = Input::default();
            tenx_dir_files(rng, corpus, &mut folder);
            input.note = folder.note.clone();
            let mut pool: Vec<Vec<u8>> = folder.files.into_iter().map(|(_, b)| b).collect();
            for k in 0..n {
                let bytes = match rng.gen_range(0..20) {
                    0 if !corpus.tenx_h5.is_empty() => pick(rng, &corpus.tenx_h5),
                    1 => archive_bytes(rng, corpus, &mut input).0,
                    2 => (0..rng.gen_range(0..600)).map(|_| rng.r#gen()).collect(),
                    3 => Vec::new(),
                    4 => b"%%MatrixMarket matrix coordinate integer general\n".to_vec(),
                    5 if !corpus.bomb.is_empty() && rng.gen_bool(0.2) => corpus.bomb.clone(),
                    _ if !pool.is_empty() => {
                        let i = rng.gen_range(0..pool.len());
                        pool.remove(i)
                    }
                    _ => mutate::word(rng, 40).into_bytes(),
                };
                input.files.push((format!("part{k}"), bytes));
                input.names.push(if rng.gen_bool(0.7) {
                    pick(
                        rng,
                        &["matrix.mtx.gz", "features.tsv.gz", "barcodes.tsv.gz"],
                    )
                    .to_string()
                } else {
                    pick(rng, &SENT_NAMES).to_string()
                });
            }
        }
    }
    input.note = format!(
        "{} case {index} (seed {seed}): {}",
        target.name(),
        input.note
    );
    input
}

// ---------------------------------------------------------------------------------------
// running the readers

pub(crate) fn write_files(dir: &Path, input: &Input) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut paths = Vec::new();
    for (name, bytes) in &input.files {
        let p = dir.join(name);
        std::fs::write(&p, bytes)?;
        paths.push(p);
    }
    for d in &input.dirs {
        std::fs::create_dir_all(dir.join(d))?;
    }
    Ok(paths)
}

/// The kind of a data error: its variant and the shape of its message, without the
/// scratch paths.
pub fn data_kind(e: &DataError, scratch: &Scratch) -> String {
    let root = scratch.case.display().to_string();
    let strip = |s: &str| {
        s.replace(&root, "")
            .replace("/dir/", "")
            .replace("/parts/", "")
    };
    match e {
        DataError::Io { source, .. } => format!("Io: {:?}", source.kind()),
        DataError::MatrixMarket { reason, .. } => format!("MatrixMarket: {}", normalize(reason)),
        DataError::Parse { reason, .. } => format!("Parse: {}", normalize(reason)),
        DataError::ShapeMismatch { what, .. } => {
            format!("ShapeMismatch: {}", normalize(&strip(what)))
        }
        DataError::NonFinite { .. } => "NonFinite".into(),
        DataError::Empty { .. } => "Empty".into(),
        DataError::Invalid { what, reason } => {
            let elem = strip(what);
            let elem = elem.trim_start_matches('/');
            format!(
                "Invalid[{}]: {}",
                normalize(elem),
                normalize(&strip(reason))
            )
        }
        DataError::Limit(l) => format!("Limit: {}", l.limit),
    }
}

/// Runs the readers of `target` on `input`.
pub fn execute(target: Target, input: &Input, scratch: &Scratch, limits: &Limits) -> Outcome {
    if target != Target::Mtx
        && let Err(e) = scratch.clear()
    {
        return Outcome::Failed(format!("harness: cannot clear the scratch folder: {e}"));
    }
    match target {
        Target::Mtx => {
            let bytes = &input.files[0].1;
            match crossomics_data::mtx::read(bytes.as_slice(), Path::new("matrix.mtx"), limits) {
                Ok(m) => {
                    if m.nnz() as u64 > limits.max_nonzeros.saturating_mul(2) {
                        Outcome::Failed(format!("accepted {} entries, over the limit", m.nnz()))
                    } else {
                        Outcome::Ok
                    }
                }
                Err(e) => Outcome::Refused(data_kind(&e, scratch)),
            }
        }
        Target::TenxDir => {
            let dir = scratch.case.join("dir");
            if let Err(e) = write_files(&dir, input) {
                return Outcome::Failed(format!("harness: {e}"));
            }
            match tenx::read_mtx_dir_parts(&dir, limits) {
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Refused(data_kind(&e, scratch)),
            }
        }
        Target::H5ad => {
            let paths = match write_files(&scratch.case, input) {
                Ok(p) => p,
                Err(e) => return Outcome::Failed(format!("harness: {e}")),
            };
            let path = &paths[0];
            let opts = ReadOptions {
                limits: *limits,
                layer: input.layer.clone(),
                require_counts: input.require_counts,
            };
            let main = h5ad::read_with(path, &opts);
            let _ = h5ad::read_var_column(path, "gene_ids", limits);
            match main {
                Ok(_) if !input.planted.is_empty() => Outcome::Failed(format!(
                    "h5ad::read_with accepted a file holding: {:?} (vetting bypassed)",
                    input.planted
                )),
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Refused(data_kind(&e, scratch)),
            }
        }
        Target::TenxH5 => {
            let paths = match write_files(&scratch.case, input) {
                Ok(p) => p,
                Err(e) => return Outcome::Failed(format!("harness: {e}")),
            };
            let path = &paths[0];
            let is = tenx::is_tenx_h5(path, limits);
            match tenx::read_h5_parts(path, limits) {
                Ok(_) if !input.planted.is_empty() => Outcome::Failed(format!(
                    "tenx::read_h5_parts accepted a file holding: {:?} (vetting bypassed)",
                    input.planted
                )),
                Ok(_) if !is => Outcome::Failed(
                    "read_h5_parts read a file that is_tenx_h5 says is no 10x matrix".into(),
                ),
                Ok(_) => Outcome::Ok,
                Err(e) => Outcome::Refused(data_kind(&e, scratch)),
            }
        }
        Target::Archive | Target::Sniff => crate::portal::execute(target, input, scratch, limits),
    }
}
