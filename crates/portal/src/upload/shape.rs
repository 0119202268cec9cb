//! The shapes of loose text files, read through the budget line by line: a MatrixMarket
//! matrix's size line, a table's lines and columns.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use crossomics_limits::{CappedReader, Limit, Limits, read_line_capped};

use crate::archive::{self, ArchiveError, Budget, Metered};

/// A loose text file's lines, read through the budget: a gzipped one inflated under
/// `max_inflated_bytes`, each line under `max_line_bytes` (never a whole line into memory).
struct Lines {
    reader: BufReader<Metered<Box<dyn Read>>>,
    buf: Vec<u8>,
    source: String,
    limits: Limits,
}

impl Lines {
    fn open(path: &Path, gzip: bool, budget: &Budget, source: &str) -> std::io::Result<Self> {
        let f = File::open(path)?;
        let inner: Box<dyn Read> = if gzip {
            Box::new(CappedReader::inflated(
                flate2::read::MultiGzDecoder::new(BufReader::new(f)),
                budget.limits(),
                source,
            ))
        } else {
            Box::new(f)
        };
        Ok(Self {
            reader: BufReader::with_capacity(64 << 10, budget.metered(inner, source)),
            buf: Vec::new(),
            source: source.to_string(),
            limits: *budget.limits(),
        })
    }

    /// The next line (without its line end), `None` at the end.
    fn next(&mut self) -> Result<Option<&[u8]>, ArchiveError> {
        let n = read_line_capped(&mut self.reader, &mut self.buf, &self.limits, &self.source)
            .map_err(|e| archive::read_error(e, &format!("{} is unreadable", self.source)))?;
        if n == 0 {
            return Ok(None);
        }
        let mut line = &self.buf[..];
        while let [rest @ .., b'\n' | b'\r'] = line {
            line = rest;
        }
        Ok(Some(line))
    }

    /// Reads to the end (a gzipped file is measured by what it inflates to); charges
    /// the budget with what was read.
    fn finish(mut self, budget: &mut Budget) -> Result<(), ArchiveError> {
        let mut sink = [0u8; 64 << 10];
        loop {
            match self.reader.read(&mut sink) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(archive::read_error(
                        e,
                        &format!("{} is unreadable", self.source),
                    ));
                }
            }
        }
        budget.charge(self.reader.get_ref().read_so_far(), &self.source)
    }
}

/// `rows x cols` from a MatrixMarket header (the first line that is not a comment),
/// checked against the limits (10x matrices are features x barcodes); a gzipped matrix
/// is then read to its end, so that what it inflates to is counted.
pub(super) fn mtx_shape(
    path: &Path,
    gzip: bool,
    budget: &mut Budget,
    source: &str,
) -> Result<(usize, usize), ArchiveError> {
    let mut lines = Lines::open(path, gzip, budget, source)?;
    let shape = loop {
        let Some(line) = lines.next()? else {
            return Err(ArchiveError::Malformed(format!(
                "{source}: MatrixMarket file has no size line"
            )));
        };
        let t = String::from_utf8_lossy(line);
        let t = t.trim();
        if t.is_empty() || t.starts_with('%') {
            continue;
        }
        let f: Vec<&str> = t.split_whitespace().collect();
        let num = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok());
        match (num(0), num(1)) {
            (Some(r), Some(c)) => break (r, c),
            _ => {
                return Err(ArchiveError::Malformed(format!(
                    "{source}: MatrixMarket size line `{}` is not `rows cols entries`",
                    crossomics_limits::excerpt_str(t, 80)
                )));
            }
        }
    };
    let limits = *budget.limits();
    limits.check(
        Limit::Features,
        u128::from(shape.0),
        source,
        "the size line's row count (features)",
    )?;
    limits.check(
        Limit::Cells,
        u128::from(shape.1),
        source,
        "the size line's column count (barcodes)",
    )?;
    if gzip {
        lines.finish(budget)?;
    } else {
        budget.charge(lines.reader.get_ref().read_so_far(), source)?;
    }
    Ok((shape.0 as usize, shape.1 as usize))
}

/// Lines (not counting trailing empty ones) and the tab-separated columns of the first;
/// counting stops past `max_lines` (the table cannot fit the matrix then).
pub(super) fn text_shape(
    path: &Path,
    gzip: bool,
    budget: &mut Budget,
    source: &str,
    max_lines: usize,
) -> Result<(usize, usize), ArchiveError> {
    let mut reader = Lines::open(path, gzip, budget, source)?;
    let (mut lines, mut blank_run, mut cols) = (0usize, 0usize, 0usize);
    while let Some(line) = reader.next()? {
        if line.iter().all(u8::is_ascii_whitespace) {
            blank_run += 1;
            continue;
        }
        if lines == 0 {
            cols = line.split(|&b| b == b'\t').count();
        }
        lines += 1 + blank_run;
        blank_run = 0;
        if lines > max_lines {
            return Ok((lines, cols));
        }
    }
    budget.charge(reader.reader.get_ref().read_so_far(), source)?;
    Ok((lines, cols))
}
