//! MatrixMarket coordinate files (plain or gzip), read as a stream.
//!
//! Written by hand rather than with `nalgebra_sparse::io`, because that reader needs the
//! whole file as one string (a 100-million-entry ATAC matrix is gigabytes of text) and
//! its errors carry no line numbers. The result is nalgebra-sparse's CSR type.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crossomics_limits::{CappedReader, Limit, LimitError, Limits, excerpt_str, read_line_capped};
use flate2::read::MultiGzDecoder;
use nalgebra_sparse::{CooMatrix, CsrMatrix};

use crate::error::{DataError, Result};

/// Reads a MatrixMarket file from disk; gzip is detected from the content, not the name.
pub fn read_path(path: &Path, limits: &Limits) -> Result<CsrMatrix<f32>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    read(file, path, limits)
}

/// Reads a MatrixMarket stream; `source` names it in errors.
///
/// Untrusted input: the size line's claims (rows, columns, entries) are checked against
/// `limits` before anything is allocated for them, memory grows only with the entries
/// actually read, a gzip stream inflates to at most `max_inflated_bytes`, and no line is
/// buffered past `max_line_bytes`.
pub fn read<R: Read>(reader: R, source: &Path, limits: &Limits) -> Result<CsrMatrix<f32>> {
    let mut reader = BufReader::new(reader);
    let is_gzip = {
        let head = reader.fill_buf().map_err(|e| DataError::io(source, e))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    let name = source.display().to_string();
    if is_gzip {
        let inflated = CappedReader::inflated(MultiGzDecoder::new(reader), limits, name);
        parse(BufReader::new(inflated), source, limits)
    } else {
        parse(reader, source, limits)
    }
}

/// The field types of a MatrixMarket header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Integer,
    Real,
    Pattern,
}

fn parse<R: BufRead>(mut reader: R, source: &Path, limits: &Limits) -> Result<CsrMatrix<f32>> {
    let name = source.display().to_string();
    let err = |line: usize, reason: String| DataError::Parse {
        path: source.to_path_buf(),
        line,
        reason,
    };
    let mut buf = Vec::new();
    let mut lineno = 0usize;
    // the next line as text (None at the end); errors name the line
    let mut next_line = |buf: &mut Vec<u8>| -> Result<Option<(usize, String)>> {
        lineno += 1;
        let n = read_line_capped(&mut reader, buf, limits, &name).map_err(|e| {
            if let Some(limit) = LimitError::from_io(&e) {
                return DataError::Limit(limit.clone());
            }
            match e.kind() {
                std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                    err(lineno, format!("the file is corrupt or truncated ({e})"))
                }
                _ => DataError::io(source, e),
            }
        })?;
        if n == 0 {
            return Ok(None);
        }
        let text = std::str::from_utf8(buf)
            .map_err(|_| err(lineno, "is not text (UTF-8)".into()))?
            .to_string();
        Ok(Some((lineno, text)))
    };
    let header = match next_line(&mut buf)? {
        Some((_, line)) => line,
        None => {
            return Err(DataError::MatrixMarket {
                path: source.to_path_buf(),
                reason: "the file is empty".into(),
            });
        }
    };
    let fields: Vec<String> = header
        .split_whitespace()
        .map(str::to_ascii_lowercase)
        .collect();
    if fields.len() != 5 || fields[0] != "%%matrixmarket" || fields[1] != "matrix" {
        return Err(DataError::MatrixMarket {
            path: source.to_path_buf(),
            reason: format!(
                "first line `{}` is not a `%%MatrixMarket matrix ...` header",
                excerpt_str(header.trim_end(), 60)
            ),
        });
    }
    if fields[2] != "coordinate" {
        return Err(err(
            1,
            format!(
                "only the `coordinate` format is supported, not `{}`",
                excerpt_str(&fields[2], 30)
            ),
        ));
    }
    let field = match fields[3].as_str() {
        "integer" => Field::Integer,
        "real" => Field::Real,
        "pattern" => Field::Pattern,
        other => {
            return Err(err(
                1,
                format!(
                    "field type `{}` is not supported (integer, real, pattern)",
                    excerpt_str(other, 30)
                ),
            ));
        }
    };
    let symmetric = match fields[4].as_str() {
        "general" => false,
        "symmetric" => true,
        other => {
            return Err(err(
                1,
                format!(
                    "symmetry `{}` is not supported (general, symmetric)",
                    excerpt_str(other, 30)
                ),
            ));
        }
    };

    let mut size: Option<(usize, usize, usize)> = None;
    let mut coo: Option<CooMatrix<f32>> = None;
    let mut seen = 0usize;
    while let Some((lineno, line)) = next_line(&mut buf)? {
        let line = line.trim();
        if line.is_empty() || line.starts_with('%') {
            continue;
        }
        let mut parts = line.split_whitespace();
        let mut next_usize = |what: &str| -> Result<usize> {
            let token = parts
                .next()
                .ok_or_else(|| err(lineno, format!("missing {what}")))?;
            token.parse::<usize>().map_err(|_| {
                err(
                    lineno,
                    format!(
                        "{what} `{}` is not a non-negative integer",
                        excerpt_str(token, 30)
                    ),
                )
            })
        };
        match (&mut coo, size) {
            (None, _) => {
                let rows = next_usize("row count")?;
                let cols = next_usize("column count")?;
                let nnz = next_usize("entry count")?;
                if symmetric && rows != cols {
                    return Err(err(
                        lineno,
                        format!("a `symmetric` matrix must be square, this one is {rows} x {cols}"),
                    ));
                }
                // rows and columns are cells or features depending on the file's
                // orientation: each is held to the larger of the two limits here, and
                // the caller checks which is which
                let axis = if limits.max_cells >= limits.max_features {
                    Limit::Cells
                } else {
                    Limit::Features
                };
                limits.check(axis, rows as u128, &name, "the size line's row count")?;
                limits.check(axis, cols as u128, &name, "the size line's column count")?;
                let entries = if symmetric {
                    2 * nnz as u128
                } else {
                    nnz as u128
                };
                limits.check(
                    Limit::Nonzeros,
                    entries,
                    &name,
                    "the size line's entry count",
                )?;
                size = Some((rows, cols, nnz));
                coo = Some(CooMatrix::new(rows, cols));
            }
            (Some(coo), Some((rows, cols, nnz))) => {
                let row = next_usize("row index")?;
                let col = next_usize("column index")?;
                if row == 0 || row > rows || col == 0 || col > cols {
                    return Err(err(
                        lineno,
                        format!(
                            "entry ({row}, {col}) is outside the {rows} x {cols} matrix (indices are 1-based)"
                        ),
                    ));
                }
                let value = if field == Field::Pattern {
                    1.0
                } else {
                    let token = parts
                        .next()
                        .ok_or_else(|| err(lineno, "missing value".into()))?;
                    let shown = || excerpt_str(token, 30);
                    if field == Field::Integer {
                        token.parse::<i64>().map_err(|_| {
                            err(
                                lineno,
                                format!(
                                    "value `{}` is not an integer, but the header declares an `integer` matrix",
                                    shown()
                                ),
                            )
                        })? as f32
                    } else {
                        token.parse::<f32>().map_err(|_| {
                            err(lineno, format!("value `{}` is not a number", shown()))
                        })?
                    }
                };
                if parts.next().is_some() {
                    return Err(err(lineno, "more fields than row, column and value".into()));
                }
                if !value.is_finite() {
                    return Err(DataError::NonFinite {
                        path: source.to_path_buf(),
                        what: "matrix entry".into(),
                        row: row - 1,
                        col: col - 1,
                        value,
                    });
                }
                seen += 1;
                if seen > nnz {
                    return Err(err(
                        lineno,
                        format!("more entries than the {nnz} the size line announced"),
                    ));
                }
                coo.push(row - 1, col - 1, value);
                if symmetric && row != col {
                    coo.push(col - 1, row - 1, value);
                }
            }
            (Some(_), None) => unreachable!("size is set together with the matrix"),
        }
    }
    let (coo, (_, _, nnz)) = match (coo, size) {
        (Some(coo), Some(size)) => (coo, size),
        _ => {
            return Err(DataError::MatrixMarket {
                path: source.to_path_buf(),
                reason: "no size line (rows cols entries) after the header".into(),
            });
        }
    };
    if seen != nnz {
        return Err(DataError::MatrixMarket {
            path: source.to_path_buf(),
            reason: format!(
                "the size line announced {nnz} entries but the file has {seen} (truncated?)"
            ),
        });
    }
    Ok(CsrMatrix::from(&coo))
}

/// Writes a CSR matrix as MatrixMarket `real general` (for predictions and exports).
pub fn write<W: std::io::Write>(matrix: &CsrMatrix<f32>, mut out: W) -> std::io::Result<()> {
    writeln!(out, "%%MatrixMarket matrix coordinate real general")?;
    writeln!(
        out,
        "{} {} {}",
        matrix.nrows(),
        matrix.ncols(),
        matrix.nnz()
    )?;
    for (row, col, value) in matrix.triplet_iter() {
        writeln!(out, "{} {} {}", row + 1, col + 1, value)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn parse_str(text: &str) -> Result<CsrMatrix<f32>> {
        read(text.as_bytes(), Path::new("test.mtx"), &Limits::default())
    }

    #[test]
    fn reads_integer_matrix_and_sums_duplicates() {
        let m = parse_str(
            "%%MatrixMarket matrix coordinate integer general\n% c\n2 3 3\n1 2 4\n2 3 1\n2 3 2\n",
        )
        .unwrap();
        assert_eq!((m.nrows(), m.ncols()), (2, 3));
        let dense: Vec<(usize, usize, f32)> =
            m.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect();
        assert_eq!(dense, vec![(0, 1, 4.0), (1, 2, 3.0)]);
    }

    #[test]
    fn reads_gzip_by_content() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(b"%%MatrixMarket matrix coordinate pattern general\n2 2 1\n2 1\n")
            .unwrap();
        let bytes = gz.finish().unwrap();
        let m = read(bytes.as_slice(), Path::new("x.mtx"), &Limits::default()).unwrap();
        assert_eq!(
            m.triplet_iter()
                .map(|(r, c, v)| (r, c, *v))
                .collect::<Vec<_>>(),
            vec![(1, 0, 1.0)]
        );
    }

    #[test]
    fn round_trips_through_write() {
        let m = parse_str("%%MatrixMarket matrix coordinate real general\n3 2 2\n1 1 0.5\n3 2 2\n")
            .unwrap();
        let mut buf = Vec::new();
        write(&m, &mut buf).unwrap();
        assert_eq!(parse_str(std::str::from_utf8(&buf).unwrap()).unwrap(), m);
    }

    #[test]
    fn errors_name_the_file_and_problem() {
        let cases = [
            ("", "empty"),
            ("hello\n", "header"),
            (
                "%%MatrixMarket matrix array real general\n2 2\n",
                "coordinate",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 1\n",
                "truncated",
            ),
            (
                "%%MatrixMarket matrix coordinate integer general\n2 2 1\n3 1 1\n",
                "outside",
            ),
            (
                "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 nan\n",
                "not a finite",
            ),
            (
                "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 x\n",
                "not a number",
            ),
            (
                "%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 1\n1 2 1\n",
                "more entries",
            ),
        ];
        for (text, needle) in cases {
            let msg = parse_str(text).unwrap_err().to_string();
            assert!(
                msg.contains("test.mtx") && msg.contains(needle),
                "{text:?}: {msg}"
            );
        }
    }

    #[test]
    fn claimed_sizes_over_the_limits_are_refused_before_allocating() {
        let limit_of = |text: &str, limits: &Limits| match read(
            text.as_bytes(),
            Path::new("claims.mtx"),
            limits,
        ) {
            Err(DataError::Limit(l)) => Some((l.limit, l.to_string())),
            _ => None,
        };
        let d = Limits::default();
        // 10^12 rows would be an 8 TB row-offset array
        let (limit, msg) = limit_of(
            "%%MatrixMarket matrix coordinate integer general\n1000000000000 5 1\n1 1 1\n",
            &d,
        )
        .unwrap();
        assert_eq!(limit, Limit::Cells);
        assert!(
            msg.contains("claims.mtx") && msg.contains("row count"),
            "{msg}"
        );
        let (limit, _) = limit_of(
            "%%MatrixMarket matrix coordinate integer general\n5 5 999999999999\n",
            &d,
        )
        .unwrap();
        assert_eq!(limit, Limit::Nonzeros);
        // a symmetric file stores up to twice its entries
        let small = Limits {
            max_nonzeros: 3,
            ..d
        };
        let (limit, _) = limit_of(
            "%%MatrixMarket matrix coordinate real symmetric\n5 5 2\n1 2 1\n2 3 1\n",
            &small,
        )
        .unwrap();
        assert_eq!(limit, Limit::Nonzeros);
    }

    #[test]
    fn integer_matrices_hold_integers_only() {
        let e = parse_str("%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 2.5\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 3") && e.contains("2.5") && e.contains("integer"),
            "{e}"
        );
        // the same value is fine in a real matrix
        assert!(
            parse_str("%%MatrixMarket matrix coordinate real general\n2 2 1\n1 1 2.5\n").is_ok()
        );
        let e = parse_str("%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 3 4\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("more fields"), "{e}");
        let e = parse_str("%%MatrixMarket matrix coordinate pattern symmetric\n2 3 1\n1 3\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("square"), "{e}");
    }

    #[test]
    fn lines_and_inflation_are_capped() {
        let limits = Limits {
            max_line_bytes: 64,
            max_inflated_bytes: 4096,
            ..Limits::default()
        };
        let long = format!(
            "%%MatrixMarket matrix coordinate integer general\n2 2 1\n1 1 {}\n",
            "1".repeat(1000)
        );
        match read(long.as_bytes(), Path::new("long.mtx"), &limits) {
            Err(DataError::Limit(l)) => assert_eq!(l.limit, Limit::LineBytes),
            other => panic!("{other:?}"),
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(b"%%MatrixMarket matrix coordinate integer general\n2 2 1\n")
            .unwrap();
        gz.write_all(&vec![b'%'; 100_000]).unwrap();
        let bomb = gz.finish().unwrap();
        match read(bomb.as_slice(), Path::new("bomb.mtx.gz"), &limits) {
            Err(DataError::Limit(l)) => {
                assert!(
                    l.limit == Limit::InflatedBytes || l.limit == Limit::LineBytes,
                    "{l}"
                );
                assert!(l.to_string().contains("bomb.mtx.gz"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn truncated_gzip_is_an_error_not_a_panic() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut text =
            String::from("%%MatrixMarket matrix coordinate integer general\n100 100 1000\n");
        for i in 0..1000 {
            text.push_str(&format!("{} {} 1\n", i % 100 + 1, i / 10 + 1));
        }
        gz.write_all(text.as_bytes()).unwrap();
        let bytes = gz.finish().unwrap();
        let cut = &bytes[..bytes.len() / 2];
        let msg = read(cut, Path::new("cut.mtx.gz"), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cut.mtx.gz"), "{msg}");
    }
}
