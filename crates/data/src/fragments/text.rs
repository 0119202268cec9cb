//! The text of BED, barcode and fragment lines: BED peaks and barcode lists read whole,
//! and the small parsers of a line (its ending, headers, coordinates, integers).

use std::collections::HashMap;
use std::fs::File;
use std::path::Path;

use crossomics_limits::{Limit, Limits, excerpt, excerpt_str};

use super::stream::Lines;
use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};

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

/// `start` and `end` of a BED or fragment line: non-negative integers, `end` after
/// `start`; the error is the reason, for the caller to place.
pub(super) fn interval(start: &[u8], end: &[u8]) -> std::result::Result<(u64, u64), String> {
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

/// A line without its ending (`\n`, `\r\n`).
pub(super) fn trim_line(line: &[u8]) -> &[u8] {
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
pub(super) fn parse_u64(s: &[u8]) -> Option<u64> {
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

    #[test]
    fn small_parsers() {
        assert_eq!(parse_u64(b"0"), Some(0));
        assert_eq!(parse_u64(b"18446744073709551615"), Some(u64::MAX));
        for bad in ["", "-1", "+1", "1.0", "1e3", "18446744073709551616", " 1"] {
            assert_eq!(parse_u64(bad.as_bytes()), None, "{bad:?}");
        }
        for header in ["# x", "track name=x", "browser position chr1", "", "  "] {
            assert!(is_bed_header(header.as_bytes()), "{header:?}");
        }
        assert!(!is_bed_header(b"tracker\t1\t2"));
        assert!(!is_bed_header(b"chr1\t1\t2"));
    }
}
