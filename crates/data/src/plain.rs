//! The plain layout: `rna_counts.mtx[.gz]`, `atac_counts.mtx[.gz]` (cells x features),
//! `genes.tsv`, `peaks.tsv` (one feature a line, in column order) and `cells.tsv`
//! (header, then barcode and labels, in row order). See `data/README.md` and `docs/datasets.md`.

use std::io::Read;
use std::path::{Path, PathBuf};

use crossomics_limits::{Limit, Limits, excerpt_str};

use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::mtx;

/// The files of the plain layout, each opened by name.
pub(crate) trait Files {
    fn open(&self, name: &str) -> Result<(PathBuf, Box<dyn Read + '_>)>;
}

struct Dir<'a>(&'a Path);

impl Files for Dir<'_> {
    fn open(&self, name: &str) -> Result<(PathBuf, Box<dyn Read + '_>)> {
        let candidates = [self.0.join(name), self.0.join(format!("{name}.gz"))];
        for path in &candidates {
            if path.exists() {
                let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
                return Ok((path.clone(), Box::new(file)));
            }
        }
        Err(DataError::io(
            &candidates[0],
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "file not found (also tried .gz)",
            ),
        ))
    }
}

/// Reads a dataset folder in the plain layout; the dataset is named after the folder.
pub fn read_dir(dir: &Path, limits: &Limits) -> Result<PairedDataset> {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());
    read_files(&name, &Dir(dir), limits)
}

pub(crate) fn read_files(name: &str, files: &dyn Files, limits: &Limits) -> Result<PairedDataset> {
    let (rna_path, r) = files.open("rna_counts.mtx")?;
    let rna = mtx::read(r, &rna_path, limits)?;
    let (atac_path, r) = files.open("atac_counts.mtx")?;
    let atac = mtx::read(r, &atac_path, limits)?;
    for (path, m) in [(&rna_path, &rna), (&atac_path, &atac)] {
        let name = path.display().to_string();
        limits.check(Limit::Cells, m.nrows() as u128, &name, "its rows (cells)")?;
        limits.check(
            Limit::Features,
            m.ncols() as u128,
            &name,
            "its columns (features)",
        )?;
    }
    let (genes_path, r) = files.open("genes.tsv")?;
    let genes = read_lines(r, &genes_path, limits)?;
    let (peaks_path, r) = files.open("peaks.tsv")?;
    let peaks = read_lines(r, &peaks_path, limits)?
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Peak::parse(p).map_err(|reason| DataError::Parse {
                path: peaks_path.clone(),
                line: i + 1,
                reason,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let (cells_path, r) = files.open("cells.tsv")?;
    let cells = read_cell_table(r, &cells_path, limits)?;

    let checks = [
        (
            &cells_path,
            "the cell table",
            cells.len(),
            rna.nrows(),
            &rna_path,
            "rows",
        ),
        (
            &atac_path,
            "the ATAC matrix rows",
            atac.nrows(),
            rna.nrows(),
            &rna_path,
            "rows",
        ),
        (
            &genes_path,
            "the gene list",
            genes.len(),
            rna.ncols(),
            &rna_path,
            "columns",
        ),
        (
            &peaks_path,
            "the peak list",
            peaks.len(),
            atac.ncols(),
            &atac_path,
            "columns",
        ),
    ];
    for (path, what, got, expected, by, axis) in checks {
        if got != expected {
            return Err(DataError::ShapeMismatch {
                path: path.clone(),
                what: what.into(),
                got,
                expected,
                expected_by: format!("{} ({axis})", by.display()),
            });
        }
    }
    PairedDataset::new(name, rna, atac, cells, genes, peaks)
}

/// One entry a line (the first tab-separated field), blank lines are an error.
fn read_lines(reader: impl Read, path: &Path, limits: &Limits) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let lines = crate::text::capped_lines(reader, path, limits, Limit::Features)?;
    for (i, line) in lines.into_iter().enumerate() {
        let first = line.split('\t').next().unwrap_or("").trim();
        if first.is_empty() {
            return Err(DataError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                reason: "empty line".into(),
            });
        }
        out.push(first.to_string());
    }
    Ok(out)
}

/// A header line naming the columns (the first is the barcode), then one cell a line.
fn read_cell_table(reader: impl Read, path: &Path, limits: &Limits) -> Result<CellTable> {
    // the header line counts as one
    let mut lines = crate::text::capped_lines(reader, path, limits, Limit::Cells)?.into_iter();
    let parse_err = |line: usize, reason: String| DataError::Parse {
        path: path.to_path_buf(),
        line,
        reason,
    };
    let header = match lines.next() {
        Some(h) => h,
        None => return Err(parse_err(1, "no header line".into())),
    };
    let names: Vec<String> = header.split('\t').map(|s| s.trim().to_string()).collect();
    limits.check(
        Limit::ObsColumns,
        names.len() as u128,
        &path.display().to_string(),
        "the header's columns",
    )?;
    let mut barcodes = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); names.len().saturating_sub(1)];
    for (i, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split('\t').collect();
        if fields.len() != names.len() {
            return Err(parse_err(
                i + 2,
                format!(
                    "{} fields, but the header has {}",
                    fields.len(),
                    names.len()
                ),
            ));
        }
        if !seen.insert(fields[0].to_string()) {
            return Err(parse_err(
                i + 2,
                format!("barcode `{}` occurs twice", excerpt_str(fields[0], 60)),
            ));
        }
        barcodes.push(fields[0].to_string());
        for (col, value) in columns.iter_mut().zip(&fields[1..]) {
            col.push(value.to_string());
        }
    }
    let mut table = CellTable::new(barcodes);
    for (name, values) in names.iter().skip(1).zip(columns) {
        table = table.with_inferred_column(name, values)?;
    }
    Ok(table)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn write_dataset(dir: &Path, cells: &str, genes: &str) {
        fs::write(
            dir.join("rna_counts.mtx"),
            "%%MatrixMarket matrix coordinate integer general\n2 2 2\n1 1 3\n2 2 1\n",
        )
        .unwrap();
        fs::write(
            dir.join("atac_counts.mtx"),
            "%%MatrixMarket matrix coordinate integer general\n2 1 1\n1 1 1\n",
        )
        .unwrap();
        fs::write(dir.join("genes.tsv"), genes).unwrap();
        fs::write(dir.join("peaks.tsv"), "1_10_20\n").unwrap();
        fs::write(dir.join("cells.tsv"), cells).unwrap();
    }

    #[test]
    fn reads_a_small_folder() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), "barcode\ttype\nA\tT\nB\tB\n", "G1\nG2\n");
        let d = read_dir(dir.path(), &Limits::default()).unwrap();
        assert_eq!(d.n_cells(), 2);
        assert_eq!(d.genes, vec!["G1", "G2"]);
        assert_eq!(d.peaks[0].to_string(), "chr1:10-20");
        assert_eq!(d.cells.column("type").unwrap(), &["T", "B"]);
    }

    #[test]
    fn mismatches_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_dataset(dir.path(), "barcode\ttype\nA\tT\n", "G1\nG2\n");
        let msg = read_dir(dir.path(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cells.tsv") && msg.contains("1 entries"),
            "{msg}"
        );

        write_dataset(dir.path(), "barcode\ttype\nA\tT\nB\tB\n", "G1\n");
        let msg = read_dir(dir.path(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("genes.tsv"), "{msg}");

        write_dataset(dir.path(), "barcode\ttype\nA\tT\tX\nB\tB\n", "G1\nG2\n");
        let msg = read_dir(dir.path(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(msg.contains("cells.tsv, line 2"), "{msg}");

        write_dataset(dir.path(), "barcode\ttype\nA\tT\nA\tB\n", "G1\nG2\n");
        let msg = read_dir(dir.path(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("cells.tsv, line 3") && msg.contains("`A` occurs twice"),
            "{msg}"
        );

        fs::remove_file(dir.path().join("peaks.tsv")).unwrap();
        let msg = read_dir(dir.path(), &Limits::default())
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("peaks.tsv") && msg.contains("not found"),
            "{msg}"
        );
    }
}
