//! MatrixMarket coordinate files (plain or gzip), read as a stream.
//!
//! Written by hand rather than with `nalgebra_sparse::io`, because that reader needs the
//! whole file as one string (a 100-million-entry ATAC matrix is gigabytes of text) and
//! its errors carry no line numbers. The result is nalgebra-sparse's CSR type.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use flate2::read::MultiGzDecoder;
use nalgebra_sparse::{CooMatrix, CsrMatrix};

use crate::error::{DataError, Result};

/// Reads a MatrixMarket file from disk; gzip is detected from the content, not the name.
pub fn read_path(path: &Path) -> Result<CsrMatrix<f32>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    read(file, path)
}

/// Reads a MatrixMarket stream; `source` names it in errors.
pub fn read<R: Read>(reader: R, source: &Path) -> Result<CsrMatrix<f32>> {
    let mut reader = BufReader::new(reader);
    let is_gzip = {
        let head = reader.fill_buf().map_err(|e| DataError::io(source, e))?;
        head.starts_with(&[0x1f, 0x8b])
    };
    if is_gzip {
        parse(BufReader::new(MultiGzDecoder::new(reader)), source)
    } else {
        parse(reader, source)
    }
}

fn parse<R: BufRead>(reader: R, source: &Path) -> Result<CsrMatrix<f32>> {
    let err = |line: usize, reason: String| DataError::Parse {
        path: source.to_path_buf(),
        line,
        reason,
    };
    let mut lines = reader.lines().enumerate();
    let header = match lines.next() {
        Some((_, line)) => line.map_err(|e| DataError::io(source, e))?,
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
            reason: format!("first line `{header}` is not a `%%MatrixMarket matrix ...` header"),
        });
    }
    if fields[2] != "coordinate" {
        return Err(err(
            1,
            format!(
                "only the `coordinate` format is supported, not `{}`",
                fields[2]
            ),
        ));
    }
    let pattern = match fields[3].as_str() {
        "integer" | "real" => false,
        "pattern" => true,
        other => {
            return Err(err(
                1,
                format!("field type `{other}` is not supported (integer, real, pattern)"),
            ));
        }
    };
    let symmetric = match fields[4].as_str() {
        "general" => false,
        "symmetric" => true,
        other => {
            return Err(err(
                1,
                format!("symmetry `{other}` is not supported (general, symmetric)"),
            ));
        }
    };

    let mut size: Option<(usize, usize, usize)> = None;
    let mut coo: Option<CooMatrix<f32>> = None;
    let mut seen = 0usize;
    for (index, line) in lines {
        let lineno = index + 1;
        let line = line.map_err(|e| match e.kind() {
            std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof => {
                err(lineno, format!("the file is corrupt or truncated ({e})"))
            }
            _ => DataError::io(source, e),
        })?;
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
                    format!("{what} `{token}` is not a non-negative integer"),
                )
            })
        };
        match (&mut coo, size) {
            (None, _) => {
                let rows = next_usize("row count")?;
                let cols = next_usize("column count")?;
                let nnz = next_usize("entry count")?;
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
                let value = if pattern {
                    1.0
                } else {
                    let token = parts
                        .next()
                        .ok_or_else(|| err(lineno, "missing value".into()))?;
                    token
                        .parse::<f32>()
                        .map_err(|_| err(lineno, format!("value `{token}` is not a number")))?
                };
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
        read(text.as_bytes(), Path::new("test.mtx"))
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
        let m = read(bytes.as_slice(), Path::new("x.mtx")).unwrap();
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
        let msg = read(cut, Path::new("cut.mtx.gz")).unwrap_err().to_string();
        assert!(msg.contains("cut.mtx.gz"), "{msg}");
    }
}
