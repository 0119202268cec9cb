//! Line-oriented text files (TSV feature and barcode lists, cell tables) read under the
//! input [`Limits`]: gzip detected from the content and inflated through a cap, no line
//! buffered past `max_line_bytes`, at most as many lines as the caller's limit allows.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use crossomics_limits::{CappedReader, Limit, LimitError, Limits, read_line_capped};

use crate::error::{DataError, Result};

/// Every line of `reader` (gzip or plain), without its line ending; at most
/// `limits.get(count)` lines (`count` says what a line is: a cell, a feature). Trailing
/// empty lines are dropped. Errors name `source` and the line.
pub fn capped_lines(
    reader: impl Read,
    source: &Path,
    limits: &Limits,
    count: Limit,
) -> Result<Vec<String>> {
    let name = source.display().to_string();
    let mut reader = BufReader::new(reader);
    let gzip = reader
        .fill_buf()
        .map_err(|e| DataError::io(source, e))?
        .starts_with(&[0x1f, 0x8b]);
    let mut reader: Box<dyn BufRead> = if gzip {
        Box::new(BufReader::new(CappedReader::inflated(
            flate2::read::MultiGzDecoder::new(reader),
            limits,
            name.clone(),
        )))
    } else {
        Box::new(reader)
    };
    let mut lines = Vec::new();
    let mut buf = Vec::new();
    loop {
        let n = read_line_capped(&mut reader, &mut buf, limits, &name).map_err(|e| {
            match LimitError::from_io(&e) {
                Some(l) => DataError::Limit(l.clone()),
                None => {
                    DataError::invalid(name.clone(), format!("unreadable (truncated gzip?): {e}"))
                }
            }
        })?;
        if n == 0 {
            break;
        }
        let line = std::str::from_utf8(&buf).map_err(|_| DataError::Parse {
            path: source.to_path_buf(),
            line: lines.len() + 1,
            reason: "is not text (UTF-8)".into(),
        })?;
        lines.push(line.trim_end_matches(['\n', '\r']).to_string());
        limits.check(count, lines.len() as u128, &name, "its lines")?;
    }
    while lines.last().is_some_and(|l| l.trim().is_empty()) {
        lines.pop();
    }
    Ok(lines)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gz(bytes: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn reads_plain_and_gzip_alike_without_line_endings() {
        let text = b"a\tx\r\nb\n\n\n";
        for bytes in [text.to_vec(), gz(text)] {
            let lines = capped_lines(
                bytes.as_slice(),
                Path::new("f.tsv"),
                &Limits::default(),
                Limit::Cells,
            )
            .unwrap();
            assert_eq!(lines, ["a\tx", "b"]);
        }
    }

    #[test]
    fn every_limit_is_an_error_naming_the_file() {
        let few = Limits {
            max_cells: 2,
            max_line_bytes: 10,
            max_inflated_bytes: 100,
            ..Limits::default()
        };
        let cases: [(Vec<u8>, Limit); 3] = [
            (b"a\nb\nc\n".to_vec(), Limit::Cells),
            (b"a very long line indeed\n".to_vec(), Limit::LineBytes),
            (gz(&[b'\n'; 10_000]), Limit::InflatedBytes),
        ];
        for (bytes, limit) in cases {
            let e = capped_lines(bytes.as_slice(), Path::new("cells.tsv"), &few, Limit::Cells)
                .unwrap_err();
            match &e {
                DataError::Limit(l) => assert_eq!(l.limit, limit),
                other => panic!("{other}"),
            }
            assert!(e.to_string().contains("cells.tsv"), "{e}");
        }
    }
}
