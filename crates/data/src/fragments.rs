//! 10x Genomics ATAC fragments files (`fragments.tsv.gz`) counted into peaks per cell.
//!
//! A fragments file lists one ATAC fragment a line, `chrom start end barcode count`
//! (0-based, `end` exclusive, tab-separated; `count` is how many read pairs were
//! collapsed into the fragment), sorted by chromosome and start, BGZF-compressed with a
//! tabix index (`fragments.tsv.gz.tbi`) beside it; 10x writes `#` header lines first.
//!
//! [`count`] turns one into a cells x peaks matrix the way Cell Ranger ARC builds its
//! peak-barcode matrix: a fragment contributes its two Tn5 cut sites, `start` and
//! `end - 1`, and each cut site counts 1 for every peak `[start, end)` containing it (a
//! short fragment inside one peak adds 2 to it). The duplicate count is ignored (a line is
//! one fragment), barcodes outside the given list are skipped, and chromosome names are
//! unified ([`crate::genome::unify_chrom`]) so that `chr1` fragments meet `1-…` peaks.
//!
//! The file is read as one stream whatever its size: memory grows with the distinct
//! (cell, peak) entries (at most about twice [`Limits::max_nonzeros`] entries of 8 bytes
//! are held before the matrix is built), never with the number of fragments. BGZF is read
//! with `noodles-bgzf`, plain gzip with flate2, and uncompressed files as they are. When
//! a tabix index sits beside the file it is read with `noodles-tabix` and checked against
//! the data (same columns, the same chromosomes in the same order, the same record count
//! per chromosome where the index records it); an index that does not match or does not
//! parse is an error, a missing one is fine. The index is not used to seek: a genome-wide
//! peak set needs every chromosome, and one sequential pass counts each line exactly once
//! whatever the index says.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, Limit, LimitError, Limits, excerpt, excerpt_str};
use nalgebra_sparse::CsrMatrix;
use noodles_csi::BinningIndex;
use noodles_csi::binning_index::ReferenceSequence as _;
use noodles_csi::binning_index::index::header::Format;

use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};
use crate::h5ad;
use crate::pair::SingleModality;
use crate::tenx;

/// Reads the peaks of a BED file (BED3 or more columns, plain or gzip): `chrom start end`,
/// 0-based and end-exclusive, chromosome names unified. Empty lines and `#`, `track` and
/// `browser` lines are skipped. Errors name the file and the line.
pub fn read_bed(path: &Path, limits: &Limits) -> Result<Vec<Peak>> {
    let mut lines = Lines::open(path, limits)?;
    let mut peaks = Vec::new();
    while let Some((lineno, line)) = lines.next_line()? {
        let text = trim_line(line);
        if is_bed_header(text) {
            continue;
        }
        let err = |reason: String| DataError::Parse {
            path: path.to_path_buf(),
            line: lineno,
            reason: format!("`{}`: {reason}", excerpt(text, 80)),
        };
        let fields: Vec<&[u8]> = text
            .split(|b| b.is_ascii_whitespace())
            .filter(|f| !f.is_empty())
            .take(3)
            .collect();
        let [chrom, start, end] = fields[..] else {
            return Err(err(format!(
                "{} columns; a BED line needs chrom, start, end",
                fields.len()
            )));
        };
        let chrom = std::str::from_utf8(chrom)
            .map_err(|_| err("the chromosome is not text (UTF-8)".into()))?;
        let (start, end) = interval(start, end).map_err(err)?;
        peaks.push(Peak {
            chrom: unify_chrom(chrom),
            start,
            end,
        });
        limits.check(
            Limit::Features,
            peaks.len() as u128,
            &path.display().to_string(),
            "its peaks",
        )?;
    }
    if peaks.is_empty() {
        return Err(DataError::Empty {
            what: path.display().to_string(),
            reason: "no peaks (a BED file needs chrom, start, end lines)".into(),
        });
    }
    Ok(peaks)
}

/// Reads cell barcodes, one a line (a 10x `barcodes.tsv(.gz)`; the first column when a
/// line has tabs). A barcode listed twice is an error naming it and both lines.
pub fn read_barcodes(path: &Path, limits: &Limits) -> Result<Vec<String>> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let lines = crate::text::capped_lines(file, path, limits, Limit::Cells)?;
    let mut seen: HashMap<String, usize> = HashMap::with_capacity(lines.len());
    let mut barcodes = Vec::with_capacity(lines.len());
    for (i, line) in lines.into_iter().enumerate() {
        let barcode = line.split('\t').next().unwrap_or("").trim();
        if barcode.is_empty() {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: "empty barcode".into(),
            });
        }
        if let Some(first) = seen.insert(barcode.to_string(), i + 1) {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: format!(
                    "barcode `{}` is listed twice (first on line {first})",
                    excerpt_str(barcode, 60)
                ),
            });
        }
        barcodes.push(barcode.to_string());
    }
    if barcodes.is_empty() {
        return Err(DataError::Empty {
            what: path.display().to_string(),
            reason: "no barcodes".into(),
        });
    }
    Ok(barcodes)
}

/// Counts a fragments file into a cells x peaks matrix: row `i` is `barcodes[i]`, column
/// `j` is `peaks[j]` (see the module documentation for the convention). Peaks may overlap
/// and come in any order; the file need not be sorted.
///
/// Untrusted input: the file is streamed (BGZF, gzip or uncompressed, detected from the
/// content), inflating to at most `max_inflated_bytes`, no line buffered past
/// `max_line_bytes`, at most `max_nonzeros` distinct (cell, peak) entries. A malformed
/// line (not 4 or 5 tab-separated fields, a coordinate or count that is not a
/// non-negative integer, `end` not after `start`), a truncated or corrupt file, an index
/// beside it that does not match, a file without fragments or one none of whose
/// fragments belongs to a listed barcode is an error naming the file (and the line).
pub fn count(
    fragments: &Path,
    barcodes: &[String],
    peaks: &[Peak],
    limits: &Limits,
) -> Result<CsrMatrix<f32>> {
    let name = fragments.display().to_string();
    if barcodes.is_empty() || peaks.is_empty() {
        return Err(DataError::Empty {
            what: format!("counting {name}"),
            reason: format!("{} barcodes and {} peaks", barcodes.len(), peaks.len()),
        });
    }
    limits.check(
        Limit::Cells,
        barcodes.len() as u128,
        &name,
        "the barcodes to count",
    )?;
    limits.check(
        Limit::Features,
        peaks.len() as u128,
        &name,
        "the peaks to count",
    )?;
    let too_many = |what: &str, n: usize| {
        DataError::invalid(
            name.clone(),
            format!("{n} {what} is more than can be counted (2^32 - 1)"),
        )
    };
    let n_rows = u32::try_from(barcodes.len()).map_err(|_| too_many("barcodes", barcodes.len()))?;
    u32::try_from(peaks.len()).map_err(|_| too_many("peaks", peaks.len()))?;
    let mut rows: HashMap<&str, u32> = HashMap::with_capacity(barcodes.len());
    for (i, b) in barcodes.iter().enumerate() {
        if rows.insert(b.as_str(), i as u32).is_some() {
            return Err(DataError::invalid(
                format!("counting {name}"),
                format!("barcode `{}` is listed twice", excerpt_str(b, 60)),
            ));
        }
    }
    let peak_index = PeakIndex::new(peaks);
    let (mut stream, index) = open_fragments(fragments, limits)?;
    let mut tally = Tally::new(n_rows as usize, limits.max_nonzeros);
    let mut chroms = ChromCache::default();
    let mut check = index.map(IndexCheck::new);
    let (mut n_fragments, mut n_in_cells) = (0u64, 0u64);
    let mut first_barcode: Option<String> = None;

    while let Some((lineno, line)) = stream.next_line()? {
        let text = trim_line(line);
        if text.is_empty() || text[0] == b'#' {
            continue;
        }
        let err = |reason: String| DataError::Parse {
            path: fragments.to_path_buf(),
            line: lineno,
            reason: format!("`{}`: {reason}", excerpt(text, 80)),
        };
        let mut fields: [&[u8]; 5] = [&[]; 5];
        let mut n_fields = 0;
        for f in text.split(|&b| b == b'\t') {
            if n_fields < 5 {
                fields[n_fields] = f;
            }
            n_fields += 1;
        }
        if !(4..=5).contains(&n_fields) {
            return Err(err(format!(
                "{n_fields} tab-separated fields; a fragment line is chrom, start, end, barcode[, count]"
            )));
        }
        let [chrom, start, end, barcode, dups] = fields;
        if chrom.is_empty() {
            return Err(err("empty chromosome".into()));
        }
        let (start, end) = interval(start, end).map_err(err)?;
        if n_fields == 5 && parse_u64(dups).is_none() {
            return Err(err(format!(
                "the duplicate count `{}` is not a non-negative integer",
                excerpt(dups, 30)
            )));
        }
        let barcode = std::str::from_utf8(barcode)
            .ok()
            .filter(|b| !b.is_empty())
            .ok_or_else(|| err("the barcode is empty or not text (UTF-8)".into()))?;
        let chrom_id = chroms
            .resolve(chrom, &peak_index)
            .ok_or_else(|| err("the chromosome is not text (UTF-8)".into()))?;
        if let Some(check) = &mut check {
            check.record(chrom, &err)?;
        }
        n_fragments += 1;
        if first_barcode.is_none() {
            first_barcode = Some(barcode.to_string());
        }
        let Some(&row) = rows.get(barcode) else {
            continue;
        };
        n_in_cells += 1;
        let Some(chrom_id) = chrom_id else {
            continue;
        };
        let chrom_peaks = &peak_index.chroms[chrom_id];
        for cut in [start, end - 1] {
            let mut hits = Ok(());
            chrom_peaks.containing(cut, |col| {
                if hits.is_ok() {
                    hits = tally.add(row as usize, col);
                }
            });
            hits.map_err(|distinct| LimitError {
                file: format!("{name}, line {lineno}"),
                what: "the distinct (cell, peak) entries counted so far".into(),
                claimed: u128::from(distinct),
                limit: Limit::Nonzeros,
                max: limits.max_nonzeros,
            })?;
        }
    }

    if n_fragments == 0 {
        return Err(DataError::Empty {
            what: name,
            reason: "no fragment lines (a fragments file lists chrom, start, end, barcode, count)"
                .into(),
        });
    }
    if n_in_cells == 0 {
        return Err(DataError::invalid(
            name,
            format!(
                "none of its {n_fragments} fragments belongs to one of the {} barcodes to count: \
                 the file's barcodes look like `{}`, the list's like `{}`",
                barcodes.len(),
                excerpt_str(first_barcode.as_deref().unwrap_or(""), 40),
                excerpt_str(&barcodes[0], 40)
            ),
        ));
    }
    if let Some(check) = check {
        check.finish()?;
    }
    tally.into_csr(peaks.len(), limits, &name)
}

/// `start` and `end` of a BED or fragment line: non-negative integers, `end` after
/// `start`; the error is the reason, for the caller to place.
fn interval(start: &[u8], end: &[u8]) -> std::result::Result<(u64, u64), String> {
    let number = |what: &str, v: &[u8]| {
        parse_u64(v)
            .ok_or_else(|| format!("{what} `{}` is not a non-negative integer", excerpt(v, 30)))
    };
    let (start, end) = (number("start", start)?, number("end", end)?);
    if end <= start {
        return Err(format!("end {end} is not after start {start}"));
    }
    Ok((start, end))
}

/// Counts `fragments` into the peaks of the BED file `peaks` for the cells listed in
/// `barcodes` (a 10x `barcodes.tsv(.gz)`): one modality, ready to pair with RNA through
/// [`crate::pair::join`].
pub fn read_atac(
    fragments: &Path,
    barcodes: &Path,
    peaks: &Path,
    limits: &Limits,
) -> Result<SingleModality<Peak>> {
    count_atac(fragments, barcodes, read_bed(peaks, limits)?, limits)
}

/// [`read_atac`] into given `peaks` (a trained model's own, say) instead of a BED file.
pub fn count_atac(
    fragments: &Path,
    barcodes: &Path,
    peaks: Vec<Peak>,
    limits: &Limits,
) -> Result<SingleModality<Peak>> {
    let barcodes = read_barcodes(barcodes, limits)?;
    let matrix = count(fragments, &barcodes, &peaks, limits)?;
    Ok(SingleModality {
        source: fragments.to_path_buf(),
        matrix,
        cells: CellTable::new(barcodes),
        features: peaks,
    })
}

/// A paired dataset from RNA counts and a fragments file (`format = "fragments"` in a
/// config): the cells are the RNA file's barcodes, the ATAC counts are `fragments`
/// counted into `peaks` (a BED file), or, without `peaks`, into the peaks of the RNA file
/// itself when it is a 10x Multiome matrix that has them.
///
/// `rna` is a 10x feature-barcode matrix (`filtered_feature_bc_matrix.h5` or its folder;
/// the `Gene Expression` features are the RNA) or an `.h5ad` of raw counts.
pub fn read_paired(
    rna: &Path,
    fragments: &Path,
    peaks: Option<&Path>,
    limits: &Limits,
) -> Result<PairedDataset> {
    let (name, rna_counts, own_peaks) = if rna.is_dir() {
        tenx_rna(tenx::read_mtx_dir_parts(rna, limits)?)?
    } else if tenx::is_tenx_h5(rna, limits) {
        tenx_rna(tenx::read_h5_parts(rna, limits)?)?
    } else {
        let opts = h5ad::ReadOptions {
            limits: *limits,
            layer: None,
            require_counts: true,
        };
        let stem = rna
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| rna.display().to_string());
        (stem, h5ad::read_with(rna, &opts)?, None)
    };
    let peaks = match (peaks, own_peaks) {
        (Some(bed), _) => read_bed(bed, limits)?,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(DataError::invalid(
                rna.display().to_string(),
                format!(
                    "has no peaks to count {} into: `peaks` (a BED file) is required unless \
                     the RNA source is a 10x Multiome matrix with `Peaks` features",
                    fragments.display()
                ),
            ));
        }
    };
    let atac = count(fragments, rna_counts.cells.barcodes(), &peaks, limits)?;
    PairedDataset::new(
        name,
        rna_counts.matrix,
        atac,
        rna_counts.cells,
        rna_counts.features,
        peaks,
    )
}

/// The RNA of a 10x matrix and its own peaks, if it has them.
fn tenx_rna(parts: tenx::TenxParts) -> Result<(String, SingleModality<String>, Option<Vec<Peak>>)> {
    let Some(rna) = parts.rna else {
        return Err(DataError::invalid(
            parts.feature_types_source,
            format!(
                "no `{}` features to pair the fragments with; this matrix has: {}",
                tenx::GENE_EXPRESSION,
                parts.feature_types.join(", ")
            ),
        ));
    };
    Ok((parts.name, rna, parts.atac.map(|a| a.features)))
}

// ---------------------------------------------------------------------------------------
// peaks

/// The peaks of every chromosome, for the question "which peaks contain position x".
struct PeakIndex {
    by_name: HashMap<String, usize>,
    chroms: Vec<ChromPeaks>,
}

/// One chromosome's peaks sorted by start; `max_end[i]` is the largest end among the
/// first `i + 1`, so a backward scan from the last peak starting at or before `x` stops
/// as soon as no earlier peak can reach `x` (one step for disjoint peaks).
#[derive(Default)]
struct ChromPeaks {
    starts: Vec<u64>,
    ends: Vec<u64>,
    cols: Vec<u32>,
    max_end: Vec<u64>,
}

impl PeakIndex {
    fn new(peaks: &[Peak]) -> Self {
        let mut by_name: HashMap<String, usize> = HashMap::new();
        let mut lists: Vec<Vec<(u64, u64, u32)>> = Vec::new();
        for (col, p) in peaks.iter().enumerate() {
            let next = lists.len();
            let id = *by_name.entry(unify_chrom(&p.chrom)).or_insert(next);
            if id == next {
                lists.push(Vec::new());
            }
            lists[id].push((p.start, p.end, col as u32));
        }
        let chroms = lists
            .into_iter()
            .map(|mut list| {
                list.sort_unstable();
                let mut c = ChromPeaks::default();
                let mut max_end = 0;
                for (s, e, col) in list {
                    max_end = max_end.max(e);
                    c.starts.push(s);
                    c.ends.push(e);
                    c.cols.push(col);
                    c.max_end.push(max_end);
                }
                c
            })
            .collect();
        Self { by_name, chroms }
    }
}

impl ChromPeaks {
    /// Calls `f` with the column of every peak `[start, end)` that contains `x`.
    fn containing(&self, x: u64, mut f: impl FnMut(u32)) {
        let mut i = self.starts.partition_point(|&s| s <= x);
        while i > 0 {
            i -= 1;
            if self.max_end[i] <= x {
                break;
            }
            if self.ends[i] > x {
                f(self.cols[i]);
            }
        }
    }
}

/// Raw chromosome names of the file resolved to peak chromosomes, remembered (the file
/// repeats one name for millions of lines; a bounded number of names is cached).
#[derive(Default)]
struct ChromCache {
    last: Vec<u8>,
    last_id: Option<usize>,
    cache: HashMap<Vec<u8>, Option<usize>>,
}

impl ChromCache {
    const MAX_CACHED: usize = 100_000;

    /// `None` when the name is not UTF-8; `Some(None)` when no peak is on it.
    fn resolve(&mut self, raw: &[u8], peaks: &PeakIndex) -> Option<Option<usize>> {
        if raw == self.last.as_slice() && !raw.is_empty() {
            return Some(self.last_id);
        }
        let id = match self.cache.get(raw) {
            Some(&id) => id,
            None => {
                let text = std::str::from_utf8(raw).ok()?;
                let id = peaks.by_name.get(&unify_chrom(text)).copied();
                if self.cache.len() < Self::MAX_CACHED {
                    self.cache.insert(raw.to_vec(), id);
                }
                id
            }
        };
        self.last.clear();
        self.last.extend_from_slice(raw);
        self.last_id = id;
        Some(id)
    }
}

// ---------------------------------------------------------------------------------------
// counts

/// Counts per (row, column), held per row as `(column, count)` pairs: a hit on the row's
/// last column adds to it, any other is appended, and a row is sorted and merged whenever
/// it has doubled since it last was, so a row holds at most about twice its distinct
/// entries. `distinct` (the entries as of each row's last merge) is checked against the
/// limit at every merge and exactly at the end.
struct Tally {
    rows: Vec<Vec<(u32, u32)>>,
    merged: Vec<usize>,
    distinct: u64,
    max: u64,
}

impl Tally {
    fn new(n_rows: usize, max: u64) -> Self {
        Self {
            rows: vec![Vec::new(); n_rows],
            merged: vec![0; n_rows],
            distinct: 0,
            max,
        }
    }

    /// Adds 1 at (row, col); `Err(distinct)` once the distinct entries exceed the limit.
    fn add(&mut self, row: usize, col: u32) -> std::result::Result<(), u64> {
        let entries = &mut self.rows[row];
        if let Some(last) = entries.last_mut()
            && last.0 == col
        {
            last.1 = last.1.saturating_add(1);
            return Ok(());
        }
        entries.push((col, 1));
        if entries.len() >= 2 * self.merged[row].max(8) {
            merge(entries);
            self.distinct += (entries.len() - self.merged[row]) as u64;
            self.merged[row] = entries.len();
            if self.distinct > self.max {
                return Err(self.distinct);
            }
        }
        Ok(())
    }

    fn into_csr(mut self, n_cols: usize, limits: &Limits, name: &str) -> Result<CsrMatrix<f32>> {
        let mut total = 0u64;
        for entries in &mut self.rows {
            merge(entries);
            total += entries.len() as u64;
        }
        limits.check(
            Limit::Nonzeros,
            u128::from(total),
            name,
            "the distinct (cell, peak) entries counted",
        )?;
        let mut offsets = Vec::with_capacity(self.rows.len() + 1);
        let mut indices = Vec::with_capacity(total as usize);
        let mut values = Vec::with_capacity(total as usize);
        offsets.push(0);
        for entries in self.rows {
            for (col, n) in entries {
                indices.push(col as usize);
                values.push(n as f32);
            }
            offsets.push(indices.len());
        }
        let n_rows = offsets.len() - 1;
        CsrMatrix::try_from_csr_data(n_rows, n_cols, offsets, indices, values).map_err(|e| {
            DataError::invalid(name.to_string(), format!("building the count matrix: {e}"))
        })
    }
}

/// Sorts `(column, count)` pairs by column and adds up repeated columns.
fn merge(entries: &mut Vec<(u32, u32)>) {
    entries.sort_unstable_by_key(|e| e.0);
    entries.dedup_by(|next, kept| {
        if next.0 == kept.0 {
            kept.1 = kept.1.saturating_add(next.1);
            true
        } else {
            false
        }
    });
}

// ---------------------------------------------------------------------------------------
// reading

/// The 28-byte empty block that ends every complete BGZF file (SAM/BAM spec, 4.1.2).
const BGZF_EOF: [u8; 28] = [
    0x1f, 0x8b, 0x08, 0x04, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0x06, 0x00, 0x42, 0x43, 0x02, 0x00,
    0x1b, 0x00, 0x03, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Bgzf,
    Gzip,
    None,
}

/// Lines of a text file under the limits, numbered from 1.
struct Lines {
    reader: Box<dyn BufRead>,
    path: PathBuf,
    name: String,
    limits: Limits,
    buf: Vec<u8>,
    lineno: usize,
}

impl Lines {
    /// Opens `path` as plain text or gzip (BGZF included), whatever its name says.
    fn open(path: &Path, limits: &Limits) -> Result<Self> {
        let (file, compression) = open_detect(path)?;
        let reader = match compression {
            Compression::None => Box::new(BufReader::new(file)) as Box<dyn BufRead>,
            _ => inflating(flate2::read::MultiGzDecoder::new(file), path, limits),
        };
        Ok(Self::new(reader, path, limits))
    }

    fn new(reader: Box<dyn BufRead>, path: &Path, limits: &Limits) -> Self {
        Self {
            reader,
            path: path.to_path_buf(),
            name: path.display().to_string(),
            limits: *limits,
            buf: Vec::new(),
            lineno: 0,
        }
    }

    /// The next line (numbered from 1) with its ending, `None` at the end of the file.
    fn next_line(&mut self) -> Result<Option<(usize, &[u8])>> {
        self.lineno += 1;
        let n = crossomics_limits::read_line_capped(
            &mut self.reader,
            &mut self.buf,
            &self.limits,
            &self.name,
        )
        .map_err(|e| read_error(&self.path, self.lineno, e))?;
        Ok((n > 0).then_some((self.lineno, self.buf.as_slice())))
    }
}

/// A decompressor behind the inflated-bytes cap, buffered for line reading.
fn inflating(inner: impl Read + 'static, path: &Path, limits: &Limits) -> Box<dyn BufRead> {
    Box::new(BufReader::new(CappedReader::inflated(
        inner,
        limits,
        path.display().to_string(),
    )))
}

/// A read error as a [`DataError`]: a limit as itself, corrupt data naming the line.
fn read_error(path: &Path, line: usize, e: io::Error) -> DataError {
    if let Some(limit) = LimitError::from_io(&e) {
        return DataError::Limit(limit.clone());
    }
    match e.kind() {
        io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidInput => {
            DataError::Parse {
                path: path.to_path_buf(),
                line,
                reason: format!(
                    "the file is corrupt or truncated ({})",
                    excerpt_str(&e.to_string(), 120)
                ),
            }
        }
        _ => DataError::io(path, e),
    }
}

/// Opens `path` and tells BGZF from other gzip and from uncompressed text by its first
/// bytes. An empty file is an error; a BGZF file must end in the BGZF end-of-file block
/// (otherwise it was cut short, possibly at a block boundary no decoder would notice).
fn open_detect(path: &Path) -> Result<(File, Compression)> {
    let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let meta = file.metadata().map_err(|e| DataError::io(path, e))?;
    if meta.is_dir() {
        return Err(DataError::invalid(
            path.display().to_string(),
            "is a folder, not a file",
        ));
    }
    let len = meta.len();
    if len == 0 {
        return Err(DataError::Empty {
            what: path.display().to_string(),
            reason: "the file is empty".into(),
        });
    }
    let mut head = [0u8; 18];
    let n = read_up_to(&mut file, &mut head).map_err(|e| DataError::io(path, e))?;
    let head = &head[..n];
    let compression = if head.len() == 18
        && head[..4] == [0x1f, 0x8b, 0x08, 0x04]
        && head[10..16] == [0x06, 0x00, b'B', b'C', 0x02, 0x00]
    {
        Compression::Bgzf
    } else if head.starts_with(&[0x1f, 0x8b]) {
        Compression::Gzip
    } else {
        Compression::None
    };
    if compression == Compression::Bgzf {
        let mut tail = [0u8; 28];
        let complete = len >= 28
            && file.seek(SeekFrom::End(-28)).is_ok()
            && read_up_to(&mut file, &mut tail).is_ok_and(|n| n == 28)
            && tail == BGZF_EOF;
        if !complete {
            return Err(DataError::invalid(
                path.display().to_string(),
                "truncated BGZF file: it does not end in the BGZF end-of-file block \
                 (an interrupted download or copy?)",
            ));
        }
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DataError::io(path, e))?;
    Ok((file, compression))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// The lines of a fragments file and the tabix index beside it, read and checked.
fn open_fragments(path: &Path, limits: &Limits) -> Result<(Lines, Option<TabixIndex>)> {
    let (file, compression) = open_detect(path)?;
    let tbi = tbi_path(path);
    let index = if tbi.is_file() {
        if compression != Compression::Bgzf {
            return Err(DataError::invalid(
                tbi.display().to_string(),
                format!(
                    "a tabix index beside {}, which is not BGZF-compressed: the index belongs \
                     to another file (remove it, or recompress with `bgzip` and reindex)",
                    path.display()
                ),
            ));
        }
        let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
        Some(TabixIndex::read(&tbi, file_len, limits)?)
    } else {
        None
    };
    let reader = match compression {
        Compression::Bgzf => inflating(noodles_bgzf::io::Reader::new(file), path, limits),
        Compression::Gzip => inflating(flate2::read::MultiGzDecoder::new(file), path, limits),
        Compression::None => Box::new(BufReader::new(file)) as Box<dyn BufRead>,
    };
    Ok((Lines::new(reader, path, limits), index))
}

/// `fragments.tsv.gz` -> `fragments.tsv.gz.tbi`
fn tbi_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tbi");
    PathBuf::from(s)
}

// ---------------------------------------------------------------------------------------
// the tabix index

/// What the checks need of a tabix index: its chromosomes in order and, where the index
/// records it, each one's record count.
struct TabixIndex {
    path: PathBuf,
    names: Vec<Vec<u8>>,
    records: Vec<Option<u64>>,
}

/// Bins of one reference in a tabix index (depth 5: ids 0..=37449) plus its metadata
/// pseudo-bin 37450.
const MAX_TABIX_BINS: i32 = 37451;

impl TabixIndex {
    /// Reads `tbi` under the limits: its layout is walked first (every count checked
    /// against the bytes that follow it, so that no claim allocates), then it is parsed
    /// with noodles-tabix and its header, and its offsets against the data file's
    /// `file_len`, are checked.
    fn read(tbi: &Path, file_len: u64, limits: &Limits) -> Result<Self> {
        let corrupt = |reason: String| {
            DataError::invalid(
                tbi.display().to_string(),
                format!("not a valid tabix index: {reason}"),
            )
        };
        let file = File::open(tbi).map_err(|e| DataError::io(tbi, e))?;
        let mut walker = CappedReader::inflated(
            noodles_bgzf::io::Reader::new(BufReader::new(file)),
            limits,
            tbi.display().to_string(),
        );
        walk_tbi(&mut walker, tbi, limits).map_err(|e| match LimitError::from_io(&e) {
            Some(l) => DataError::Limit(l.clone()),
            None => corrupt(excerpt_str(&e.to_string(), 160)),
        })?;
        let index = File::open(tbi)
            .map(noodles_tabix::io::Reader::new)
            .and_then(|mut r| r.read_index())
            .map_err(|e| corrupt(excerpt_str(&e.to_string(), 160)))?;
        let mismatch = |reason: String| {
            DataError::invalid(
                tbi.display().to_string(),
                format!("does not match the fragments file beside it: {reason}"),
            )
        };
        let header = index.header().ok_or_else(|| corrupt("no header".into()))?;
        let columns = (
            header.reference_sequence_name_index(),
            header.start_position_index(),
            header.end_position_index(),
        );
        if matches!(header.format(), Format::Sam | Format::Vcf) || columns != (0, 1, Some(2)) {
            return Err(mismatch(format!(
                "it indexes a {:?} file (chromosome, start, end in columns {}, {}, {}), \
                 not fragments (columns 1, 2, 3; `tabix -p bed`)",
                header.format(),
                columns.0 + 1,
                columns.1 + 1,
                columns
                    .2
                    .map_or("none".to_string(), |c| (c + 1).to_string()),
            )));
        }
        let names: Vec<Vec<u8>> = header
            .reference_sequence_names()
            .iter()
            .map(|n| n.to_vec())
            .collect();
        if names.len() != index.reference_sequences().len() {
            return Err(corrupt(format!(
                "{} chromosome names but {} indexed chromosomes",
                names.len(),
                index.reference_sequences().len()
            )));
        }
        let mut records = Vec::with_capacity(names.len());
        for (name, reference) in names.iter().zip(index.reference_sequences()) {
            let beyond = reference
                .bins()
                .values()
                .flat_map(|bin| bin.chunks())
                .flat_map(|c| [c.start(), c.end()])
                .chain(reference.index().iter().copied())
                .map(|v| v.compressed())
                .find(|&offset| offset > file_len);
            if let Some(offset) = beyond {
                return Err(mismatch(format!(
                    "it points at byte {offset} for `{}`, but the file has {file_len} bytes",
                    excerpt(name, 40)
                )));
            }
            records.push(reference.metadata().map(|m| m.mapped_record_count()));
        }
        Ok(Self {
            path: tbi.to_path_buf(),
            names,
            records,
        })
    }
}

/// Reads a whole (inflated) tabix index, checking its structure: every count is
/// non-negative and followed by the bytes it claims; bins per chromosome at most
/// [`MAX_TABIX_BINS`]; chromosomes at most `max_features`.
fn walk_tbi(r: &mut impl Read, tbi: &Path, limits: &Limits) -> io::Result<()> {
    let bad = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_string());
    // the end of the data inside a structure is named; other errors (a corrupt BGZF
    // block, the inflated-bytes limit) pass through as they are
    let ended = |e: io::Error, what: &str| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            bad(what)
        } else {
            e
        }
    };
    const TRUNCATED: &str = "truncated (the file ends inside it)";
    let word = |r: &mut dyn Read| -> io::Result<i32> {
        let mut b = [0u8; 4];
        r.read_exact(&mut b).map_err(|e| ended(e, TRUNCATED))?;
        Ok(i32::from_le_bytes(b))
    };
    let skip = |r: &mut dyn Read, n: u64| -> io::Result<()> {
        let got = io::copy(&mut r.take(n), &mut io::sink())?;
        if got == n {
            Ok(())
        } else {
            Err(bad(TRUNCATED))
        }
    };
    let mut magic = [0u8; 4];
    r.read_exact(&mut magic)
        .map_err(|e| ended(e, "shorter than a tabix header"))?;
    if &magic != b"TBI\x01" {
        return Err(bad("it does not start with the tabix magic `TBI\\1`"));
    }
    let n_ref = word(r)?;
    if n_ref < 0 {
        return Err(bad("negative chromosome count"));
    }
    limits
        .check(
            Limit::Features,
            n_ref as u128,
            &tbi.display().to_string(),
            "its chromosome count",
        )
        .map_err(LimitError::into_io)?;
    // format, col_seq, col_beg, col_end, meta, skip
    for _ in 0..6 {
        word(r)?;
    }
    let l_nm = word(r)?;
    if l_nm < 0 {
        return Err(bad("negative length of the chromosome names"));
    }
    skip(r, l_nm as u64)?;
    for _ in 0..n_ref {
        let n_bin = word(r)?;
        if !(0..=MAX_TABIX_BINS).contains(&n_bin) {
            return Err(bad(&format!("{n_bin} bins for one chromosome")));
        }
        for _ in 0..n_bin {
            word(r)?;
            let n_chunk = word(r)?;
            if n_chunk < 0 {
                return Err(bad("negative chunk count"));
            }
            skip(r, 16 * n_chunk as u64)?;
        }
        let n_intv = word(r)?;
        if n_intv < 0 {
            return Err(bad("negative linear index size"));
        }
        skip(r, 8 * n_intv as u64)?;
    }
    Ok(())
}

/// The data checked against the index while it streams past: every chromosome of the
/// file must be the index's next one (tabix lists them in file order) and, at the end,
/// each must have as many records as the index says.
struct IndexCheck {
    index: TabixIndex,
    ids: HashMap<Vec<u8>, usize>,
    counts: Vec<u64>,
    current: Option<usize>,
}

impl IndexCheck {
    fn new(index: TabixIndex) -> Self {
        let ids = index
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let counts = vec![0; index.names.len()];
        Self {
            index,
            ids,
            counts,
            current: None,
        }
    }

    fn mismatch(&self, reason: String) -> DataError {
        DataError::invalid(
            self.index.path.display().to_string(),
            format!(
                "does not match the fragments file beside it (stale, or made for another file; \
                 reindex with `tabix -p bed`): {reason}"
            ),
        )
    }

    fn record(&mut self, chrom: &[u8], err: &dyn Fn(String) -> DataError) -> Result<()> {
        if let Some(i) = self.current
            && self.index.names[i] == chrom
        {
            self.counts[i] += 1;
            return Ok(());
        }
        let Some(&id) = self.ids.get(chrom) else {
            return Err(err(format!(
                "chromosome `{}` is not in the tabix index {}: {}",
                excerpt(chrom, 40),
                self.index.path.display(),
                "the index is stale or belongs to another file"
            )));
        };
        let expected = self.current.map_or(0, |i| i + 1);
        if id != expected {
            return Err(err(format!(
                "chromosome `{}` comes where the tabix index {} has {}: the file is not \
                 sorted as indexed (stale index?)",
                excerpt(chrom, 40),
                self.index.path.display(),
                self.index.names.get(expected).map_or(
                    "no more chromosomes".to_string(),
                    |n| format!("`{}`", excerpt(n, 40))
                )
            )));
        }
        self.current = Some(id);
        self.counts[id] += 1;
        Ok(())
    }

    fn finish(self) -> Result<()> {
        for (i, name) in self.index.names.iter().enumerate() {
            let got = self.counts[i];
            if got == 0 {
                return Err(self.mismatch(format!(
                    "it lists chromosome `{}`, which has no fragments in the file",
                    excerpt(name, 40)
                )));
            }
            if let Some(want) = self.index.records[i]
                && want != got
            {
                return Err(self.mismatch(format!(
                    "it counts {want} records on `{}`, the file has {got}",
                    excerpt(name, 40)
                )));
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// small parsers

/// A line without its ending (`\n`, `\r\n`).
fn trim_line(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Empty lines, comments and the UCSC `track` / `browser` lines of a BED file.
fn is_bed_header(line: &[u8]) -> bool {
    let line = line.trim_ascii_start();
    let keyword = |k: &[u8]| {
        line.strip_prefix(k)
            .is_some_and(|rest| rest.is_empty() || rest[0].is_ascii_whitespace())
    };
    line.is_empty() || line[0] == b'#' || keyword(b"track") || keyword(b"browser")
}

/// A decimal non-negative integer (digits only), `None` otherwise or on overflow.
fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    s.iter().try_fold(0u64, |acc, &b| {
        if b.is_ascii_digit() {
            acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(peaks: &[(u64, u64)]) -> ChromPeaks {
        let peaks: Vec<Peak> = peaks
            .iter()
            .map(|&(start, end)| Peak {
                chrom: "chr1".into(),
                start,
                end,
            })
            .collect();
        PeakIndex::new(&peaks).chroms.remove(0)
    }

    #[test]
    fn containing_finds_every_overlapping_peak_and_nothing_else() {
        // a long peak first, nested and disjoint ones after it
        let c = index(&[(0, 1000), (10, 20), (15, 30), (500, 501), (2000, 2100)]);
        let hits = |x| {
            let mut v = Vec::new();
            c.containing(x, |col| v.push(col));
            v.sort();
            v
        };
        assert_eq!(hits(0), [0]);
        assert_eq!(hits(15), [0, 1, 2]);
        assert_eq!(hits(20), [0, 2]);
        assert_eq!(hits(30), [0]);
        assert_eq!(hits(500), [0, 3]);
        assert_eq!(hits(999), [0]);
        assert_eq!(hits(1000), Vec::<u32>::new());
        assert_eq!(hits(2099), [4]);
        assert_eq!(hits(2100), Vec::<u32>::new());
    }

    #[test]
    fn the_tally_merges_repeats_and_enforces_its_limit() {
        let mut t = Tally::new(2, 100);
        for col in [3, 1, 3, 3, 2, 1, 1, 0, 9, 9, 4, 5, 6, 7, 8, 3, 2] {
            t.add(0, col).unwrap();
        }
        t.add(1, 7).unwrap();
        let m = t.into_csr(10, &Limits::default(), "x").unwrap();
        let got: Vec<(usize, usize, f32)> = m.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect();
        assert_eq!(
            got,
            [
                (0, 0, 1.0),
                (0, 1, 3.0),
                (0, 2, 2.0),
                (0, 3, 4.0),
                (0, 4, 1.0),
                (0, 5, 1.0),
                (0, 6, 1.0),
                (0, 7, 1.0),
                (0, 8, 1.0),
                (0, 9, 2.0),
                (1, 7, 1.0)
            ]
        );
        let mut t = Tally::new(1, 10);
        let over = (0..100).find_map(|col| t.add(0, col).err());
        assert!(over.is_some_and(|n| n > 10));
    }

    #[test]
    fn small_parsers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in [
            &b""[..],
            b"-1",
            b"+1",
            b"1.0",
            b"1e3",
            b"18446744073709551616",
            b" 1",
        ] {
            assert_eq!(parse_u64(bad), None, "{bad:?}");
        }
        for header in [
            &b"# x"[..],
            b"track name=x",
            b"browser position chr1",
            b"",
            b"  ",
        ] {
            assert!(is_bed_header(header));
        }
        assert!(!is_bed_header(b"tracker\t1\t2"));
        assert!(!is_bed_header(b"chr1\t1\t2"));
    }
}
