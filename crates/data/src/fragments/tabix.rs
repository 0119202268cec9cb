//! The tabix index beside a fragments file: its structure walked under the limits, parsed
//! with noodles-tabix, and checked against the data as the data streams past.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use crossomics_limits::{CappedReader, Limit, LimitError, Limits, excerpt, excerpt_str};
use noodles_csi::BinningIndex;
use noodles_csi::binning_index::ReferenceSequence as _;
use noodles_csi::binning_index::index::header::Format;

use crate::error::{DataError, Result};

/// What the checks need of a tabix index: its chromosomes in order and, where the index
/// records it, each one's record count.
pub(super) struct TabixIndex {
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
    pub(super) fn read(tbi: &Path, file_len: u64, limits: &Limits) -> Result<Self> {
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
pub(super) struct IndexCheck {
    index: TabixIndex,
    ids: HashMap<Vec<u8>, usize>,
    counts: Vec<u64>,
    current: Option<usize>,
}

impl IndexCheck {
    pub(super) fn new(index: TabixIndex) -> Self {
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

    pub(super) fn record(&mut self, chrom: &[u8], err: &dyn Fn(String) -> DataError) -> Result<()> {
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

    pub(super) fn finish(self) -> Result<()> {
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
