//! Counting fragments into a cells x peaks matrix: each fragment's two cut sites looked up
//! in per-chromosome peak indexes, tallied per cell under the entry limit.

use std::collections::HashMap;
use std::path::Path;

use crossomics_limits::{Limit, LimitError, Limits, excerpt, excerpt_str};
use nalgebra_sparse::CsrMatrix;

use super::stream::open_fragments;
use super::tabix::IndexCheck;
use super::text::{interval, parse_u64, trim_line};
use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};

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
}
