//! Cell metadata tables from CSV, TSV or Parquet (polars), joined to a dataset's cells by
//! barcode; dense matrices as `.npy` and named sets of them as `.npz` (ndarray-npy).
//! Every writer here writes a temporary file beside the target and renames it, so a
//! reader never sees half a file and a failed write leaves nothing behind.

use std::collections::HashMap;
use std::path::Path;

use ndarray::{Array2, ArrayView2};
use polars::prelude::*;

use crossomics_limits::{Limit, Limits};

use crate::cells::CellTable;
use crate::error::{DataError, Result};

/// A table by its extension: `.csv` (comma), `.tsv` / `.txt` (tab), both with a header
/// line, or `.parquet`.
pub fn read_table(path: &Path) -> Result<DataFrame> {
    let bad = |reason: String| DataError::invalid(path.display().to_string(), reason);
    if !path.is_file() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let frame = match ext.as_deref() {
        Some("csv" | "tsv" | "txt") => {
            let separator = if ext.as_deref() == Some("csv") {
                b','
            } else {
                b'\t'
            };
            CsvReadOptions::default()
                .with_has_header(true)
                .with_parse_options(CsvParseOptions::default().with_separator(separator))
                .try_into_reader_with_file_path(Some(path.to_path_buf()))
                .and_then(SerReader::finish)
                .map_err(|e| bad(format!("not a readable table: {e}")))?
        }
        Some("parquet") => {
            let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
            ParquetReader::new(file)
                .finish()
                .map_err(|e| bad(format!("not a readable Parquet file: {e}")))?
        }
        _ => return Err(bad("expected a .csv, .tsv, .txt or .parquet table".into())),
    };
    if frame.height() == 0 || frame.width() == 0 {
        return Err(DataError::Empty {
            what: path.display().to_string(),
            reason: format!("{} rows x {} columns", frame.height(), frame.width()),
        });
    }
    Ok(frame)
}

/// What [`join_cell_metadata`] matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinReport {
    pub cells: usize,
    pub matched: usize,
    pub columns: Vec<String>,
}

/// Adds the columns of `table` (from `source`, for messages) to the cells, matching the
/// table's `key` column to the barcodes. Cells without a row get missing values (counted
/// in the report); a table with no matching barcode, a repeated barcode, or a column the
/// cells already have is an error.
pub fn join_cell_metadata(
    cells: &CellTable,
    table: &DataFrame,
    key: &str,
    source: &str,
) -> Result<(CellTable, JoinReport)> {
    let bad = |reason: String| DataError::invalid(source.to_string(), reason);
    let keys = table
        .column(key)
        .map_err(|_| {
            bad(format!(
                "no column `{key}` to match barcodes with (columns: {})",
                table
                    .get_column_names()
                    .iter()
                    .map(|n| n.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })?
        .cast(&DataType::String)
        .map_err(|e| bad(e.to_string()))?;
    let keys = keys.str().map_err(|e| bad(e.to_string()))?;
    let mut row_of: HashMap<&str, IdxSize> = HashMap::with_capacity(keys.len());
    for (i, k) in keys.iter().enumerate() {
        let Some(k) = k else {
            return Err(bad(format!("row {} has no `{key}`", i + 1)));
        };
        if row_of.insert(k, i as IdxSize).is_some() {
            return Err(bad(format!("barcode `{k}` occurs twice in `{key}`")));
        }
    }
    let rows: Vec<Option<IdxSize>> = cells
        .barcodes()
        .iter()
        .map(|b| row_of.get(b.as_str()).copied())
        .collect();
    let matched = rows.iter().filter(|r| r.is_some()).count();
    if matched == 0 {
        let sample: Vec<&str> = cells
            .barcodes()
            .iter()
            .take(3)
            .map(String::as_str)
            .collect();
        return Err(bad(format!(
            "none of its `{key}` values is a barcode of the data (e.g. {sample:?})"
        )));
    }
    let idx = IdxCa::from_iter_options("rows".into(), rows.into_iter());
    let mut out = cells.clone();
    let mut columns = Vec::new();
    for column in table.columns() {
        let name = column.name().as_str();
        if name == key {
            continue;
        }
        if cells.has_column(name) {
            return Err(bad(format!("column `{name}` is already in the cell table")));
        }
        let taken = column.take(&idx).map_err(|e| bad(e.to_string()))?;
        out = out.with_series(taken)?;
        columns.push(name.to_string());
    }
    let report = JoinReport {
        cells: cells.len(),
        matched,
        columns,
    };
    Ok((out, report))
}

/// The shape an `.npy` header claims (`None` when the bytes are no `.npy` header; the
/// reader then says why). Read from at most the header's own bytes, capped at 64 KiB.
fn npy_claimed_shape(mut r: impl std::io::Read) -> Option<(Vec<u64>, u64)> {
    use std::io::Read;
    let mut magic = [0u8; 10];
    r.read_exact(&mut magic).ok()?;
    if &magic[..6] != b"\x93NUMPY" {
        return None;
    }
    let (len, prefix) = match magic[6] {
        1 => (u64::from(u16::from_le_bytes([magic[8], magic[9]])), 10),
        2 | 3 => {
            let mut rest = [0u8; 2];
            r.read_exact(&mut rest).ok()?;
            (
                u64::from(u32::from_le_bytes([magic[8], magic[9], rest[0], rest[1]])),
                12,
            )
        }
        _ => return None,
    };
    let mut header = Vec::new();
    r.take(len.min(64 << 10)).read_to_end(&mut header).ok()?;
    let text = String::from_utf8_lossy(&header);
    let after = &text[text.find("'shape'")?..];
    let inner = &after[after.find('(')? + 1..after.find(')')?];
    let dims = inner
        .split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<u64>().ok())
        .collect::<Option<Vec<u64>>>()?;
    Some((dims, prefix + len))
}

/// `Ok` when the array an `.npy` header (from `r`) claims fits `limits.max_dense_values`
/// and, where `available` is known, the bytes after the header hold it (4 bytes a value).
fn check_npy_claim(
    r: impl std::io::Read,
    available: Option<u64>,
    limits: &Limits,
    source: &str,
) -> Result<()> {
    let Some((dims, header_bytes)) = npy_claimed_shape(r) else {
        return Ok(());
    };
    let values = dims
        .iter()
        .fold(1u128, |a, &d| a.saturating_mul(u128::from(d)));
    limits.check(
        Limit::DenseValues,
        values,
        source,
        "the values its header claims",
    )?;
    if let Some(total) = available
        && values.saturating_mul(4) > u128::from(total.saturating_sub(header_bytes))
    {
        return Err(DataError::invalid(
            source,
            format!(
                "the header claims {values} values but the file holds {} bytes after it (truncated?)",
                total.saturating_sub(header_bytes)
            ),
        ));
    }
    Ok(())
}

/// A 2-D f32 `.npy` array (e.g. an embedding or a dense prediction); every value finite.
/// The shape its header claims is checked against `limits` and the file's size before
/// anything is allocated for it.
pub fn read_npy(path: &Path, limits: &Limits) -> Result<Array2<f32>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let size = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    check_npy_claim(file, Some(size), limits, &path.display().to_string())?;
    let a: Array2<f32> = ndarray_npy::read_npy(path).map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!("not a 2-D float32 .npy array: {e}"),
        )
    })?;
    if let Some(((row, col), value)) = a.indexed_iter().find(|(_, v)| !v.is_finite()) {
        return Err(DataError::NonFinite {
            path: path.to_path_buf(),
            what: "the array".into(),
            row,
            col,
            value: *value,
        });
    }
    Ok(a)
}

/// Writes `frame` as `.csv` (comma), `.tsv` (tab) or `.parquet`, by the extension.
pub fn write_table(path: &Path, frame: &DataFrame) -> Result<()> {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let mut frame = frame.clone();
    let bad = |e: PolarsError| std::io::Error::other(format!("writing the table: {e}"));
    match ext.as_deref() {
        Some("csv" | "tsv") => {
            let separator = if ext.as_deref() == Some("csv") {
                b','
            } else {
                b'\t'
            };
            write_atomic(path, |file| {
                CsvWriter::new(file)
                    .include_header(true)
                    .with_separator(separator)
                    .finish(&mut frame)
                    .map_err(bad)
            })
        }
        Some("parquet") => write_atomic(path, |file| {
            ParquetWriter::new(file)
                .finish(&mut frame)
                .map(drop)
                .map_err(bad)
        }),
        _ => Err(DataError::invalid(
            path.display().to_string(),
            "a table is written as .csv, .tsv or .parquet",
        )),
    }
}

/// Writes a 2-D f32 array as `.npy`.
pub fn write_npy(path: &Path, array: ArrayView2<'_, f32>) -> Result<()> {
    write_atomic(path, |file| {
        ndarray_npy::WriteNpyExt::write_npy(&array, file).map_err(std::io::Error::other)
    })
}

/// Every array of an `.npz` archive (as written by `numpy.savez` or
/// `numpy.savez_compressed`), by name (without `.npy`), in archive order. Each must be a
/// 2-D float32 array with finite values. Each member's claimed shape is checked against
/// `limits` (and the archive's entry count against `max_archive_entries`) before it is
/// read.
pub fn read_npz(path: &Path, limits: &Limits) -> Result<Vec<(String, Array2<f32>)>> {
    let bad = |reason: String| DataError::invalid(path.display().to_string(), reason);
    {
        let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
        let mut zip =
            ::zip::ZipArchive::new(file).map_err(|e| bad(format!("not an .npz archive: {e}")))?;
        limits.check(
            Limit::ArchiveEntries,
            zip.len() as u128,
            &path.display().to_string(),
            "its entries",
        )?;
        for i in 0..zip.len() {
            let entry = zip
                .by_index(i)
                .map_err(|e| bad(format!("not an .npz archive: {e}")))?;
            let source = format!(
                "{} (`{}`)",
                path.display(),
                crossomics_limits::excerpt_str(entry.name(), 60)
            );
            check_npy_claim(entry, None, limits, &source)?;
        }
    }
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut npz =
        ndarray_npy::NpzReader::new(file).map_err(|e| bad(format!("not an .npz archive: {e}")))?;
    let names = npz
        .names()
        .map_err(|e| bad(format!("not an .npz archive: {e}")))?;
    if names.is_empty() {
        return Err(bad("the archive holds no array".into()));
    }
    let mut out = Vec::with_capacity(names.len());
    for name in names {
        let array: Array2<f32> = npz
            .by_name(&name)
            .map_err(|e| bad(format!("`{name}` is not a 2-D float32 array: {e}")))?;
        let key = name.strip_suffix(".npy").unwrap_or(&name).to_string();
        if let Some(((row, col), value)) = array.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                what: format!("array `{key}`"),
                row,
                col,
                value: *value,
            });
        }
        out.push((key, array));
    }
    Ok(out)
}

/// Writes named 2-D f32 arrays as a compressed `.npz` archive that `numpy.load` opens.
pub fn write_npz(path: &Path, arrays: &[(&str, ArrayView2<'_, f32>)]) -> Result<()> {
    let mut seen = std::collections::HashSet::new();
    for (name, _) in arrays {
        if name.is_empty() || name.contains('/') || !seen.insert(*name) {
            return Err(DataError::invalid(
                path.display().to_string(),
                format!("array name `{name}` is empty, has a `/` or occurs twice"),
            ));
        }
    }
    write_atomic(path, |file| {
        let mut npz = ndarray_npy::NpzWriter::new_compressed(file);
        for (name, array) in arrays {
            npz.add_array(*name, array).map_err(std::io::Error::other)?;
        }
        npz.finish().map(drop).map_err(std::io::Error::other)
    })
}

/// Runs `write` on a temporary file beside `path`, then renames it to `path`; on any
/// error the temporary file is removed and `path` is left as it was.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<std::fs::File>) -> std::io::Result<()>,
) -> Result<()> {
    crossomics_atomic::write_with(
        path,
        |tmp| {
            let file = std::fs::File::create(tmp)?;
            let mut out = std::io::BufWriter::new(file);
            write(&mut out)?;
            let file = out.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()
        },
        |e| e,
    )
    .map_err(|e| DataError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cells() -> CellTable {
        CellTable::new(vec!["a".into(), "b".into(), "c".into()])
            .with_column("batch", vec!["s1".into(), "s1".into(), "s2".into()])
            .unwrap()
    }

    #[test]
    fn csv_tsv_and_parquet_tables_join_by_barcode() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("meta.csv");
        std::fs::write(&csv, "barcode,cell_type,score\nc,T,0.5\na,B,1.5\nz,NK,2\n").unwrap();
        let tsv = dir.path().join("meta.tsv");
        std::fs::write(
            &tsv,
            "barcode\tcell_type\tscore\nc\tT\t0.5\na\tB\t1.5\nz\tNK\t2\n",
        )
        .unwrap();
        let mut frame = read_table(&csv).unwrap();
        assert_eq!(frame, read_table(&tsv).unwrap());
        let parquet = dir.path().join("meta.parquet");
        ParquetWriter::new(std::fs::File::create(&parquet).unwrap())
            .finish(&mut frame)
            .unwrap();
        assert_eq!(frame, read_table(&parquet).unwrap());

        let (joined, report) = join_cell_metadata(&cells(), &frame, "barcode", "meta.csv").unwrap();
        assert_eq!(
            report,
            JoinReport {
                cells: 3,
                matched: 2,
                columns: vec!["cell_type".into(), "score".into()]
            }
        );
        assert_eq!(joined.barcodes(), ["a", "b", "c"]);
        assert_eq!(
            joined.column("cell_type").unwrap(),
            ["B", "", "T"].map(String::from),
            "b has no row: missing"
        );
        let scores = joined.numeric_column("score").unwrap();
        assert_eq!((scores[0], scores[2]), (1.5, 0.5));
        assert!(scores[1].is_nan());
        assert_eq!(
            joined.column("batch").unwrap(),
            ["s1", "s1", "s2"].map(String::from)
        );
    }

    #[test]
    fn bad_tables_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let frame = |text: &str| read_table(&write("t.csv", text)).unwrap();
        let err = |f: &DataFrame| {
            join_cell_metadata(&cells(), f, "barcode", "t.csv")
                .unwrap_err()
                .to_string()
        };
        let e = err(&frame("cell,x\na,1\n"));
        assert!(
            e.contains("t.csv") && e.contains("no column `barcode`") && e.contains("cell, x"),
            "{e}"
        );
        let e = err(&frame("barcode,x\nq,1\nr,2\n"));
        assert!(e.contains("none of its `barcode` values"), "{e}");
        let e = err(&frame("barcode,x\na,1\na,2\n"));
        assert!(e.contains("`a` occurs twice"), "{e}");
        let e = err(&frame("barcode,batch\na,s9\n"));
        assert!(e.contains("`batch` is already in the cell table"), "{e}");
        let e = read_table(&write("t.xlsx", "x")).unwrap_err().to_string();
        assert!(e.contains("t.xlsx") && e.contains(".parquet"), "{e}");
        let e = read_table(&write("t.parquet", "not parquet"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("t.parquet") && e.contains("Parquet"), "{e}");
        let e = read_table(&write("e.csv", "barcode,x\n"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("e.csv") && e.contains("empty"), "{e}");
        assert!(read_table(&dir.path().join("none.csv")).is_err());
    }

    #[test]
    fn npy_matrices_read_back_and_bad_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.npy");
        let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.5]];
        ndarray_npy::write_npy(&path, &a).unwrap();
        assert_eq!(read_npy(&path, &Limits::default()).unwrap(), a);
        ndarray_npy::write_npy(&path, &ndarray::array![[1.0f32, f32::NAN]]).unwrap();
        let e = read_npy(&path, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("e.npy"), "{e}");
        ndarray_npy::write_npy(&path, &ndarray::array![1.0f64, 2.0]).unwrap();
        let e = read_npy(&path, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("e.npy") && e.contains("2-D float32"), "{e}");
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 3]).unwrap();
        assert!(read_npy(&path, &Limits::default()).is_err());
        // a header alone, claiming `shape`
        let header_only = |shape: &str| {
            let mut header =
                format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}")
                    .into_bytes();
            header.resize(118, b' ');
            header.push(b'\n');
            let mut file = b"\x93NUMPY\x01\x00".to_vec();
            file.extend_from_slice(&(header.len() as u16).to_le_bytes());
            file.extend_from_slice(&header);
            std::fs::write(&path, &file).unwrap();
            read_npy(&path, &Limits::default()).unwrap_err().to_string()
        };
        // 10^12 x 10^12 values: refused before allocating
        let e = header_only("(1000000000000, 1000000000000)");
        assert!(e.contains("e.npy") && e.contains("max_dense_values"), "{e}");
        // a claim the file does not hold
        let e = header_only("(1000, 1000)");
        assert!(e.contains("truncated"), "{e}");
    }

    #[test]
    fn npz_archives_read_back_and_bad_ones_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npz");
        let a = ndarray::array![[1.0f32, 2.0], [3.0, 4.5]];
        let b = ndarray::Array2::<f32>::zeros((3, 0));
        write_npz(&path, &[("embedding", a.view()), ("empty", b.view())]).unwrap();
        let back = read_npz(&path, &Limits::default()).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!((back[0].0.as_str(), &back[0].1), ("embedding", &a));
        assert_eq!((back[1].0.as_str(), back[1].1.dim()), ("empty", (3, 0)));
        // duplicate names are refused before anything is written
        let dup = dir.path().join("dup.npz");
        let e = write_npz(&dup, &[("x", a.view()), ("x", a.view())])
            .unwrap_err()
            .to_string();
        assert!(e.contains("dup.npz") && e.contains("occurs twice"), "{e}");
        assert!(!dup.exists());
        // NaN, a truncated archive, a file that is no archive
        write_npz(&path, &[("x", ndarray::array![[f32::NAN]].view())]).unwrap();
        let e = read_npz(&path, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("m.npz") && e.contains("`x`"), "{e}");
        write_npz(&path, &[("x", a.view())]).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_npz(&path, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("m.npz"), "{e}");
        std::fs::write(&path, "plain text").unwrap();
        let e = read_npz(&path, &Limits::default()).unwrap_err().to_string();
        assert!(
            e.contains("m.npz") && e.contains("not an .npz archive"),
            "{e}"
        );
        // no temporary file is left behind by any of it
        let left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".partial"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn a_table_with_an_unknown_extension_is_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.xlsx");
        let frame = df!("barcode" => ["a"]).unwrap();
        let e = write_table(&path, &frame).unwrap_err().to_string();
        assert!(e.contains("t.xlsx") && e.contains(".parquet"), "{e}");
        assert!(!path.exists());
    }
}
