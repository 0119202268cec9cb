//! Loose files of one dataset told apart by content and renamed as their readers expect:
//! a MatrixMarket matrix with its features and barcodes tables, or a fragments file with
//! its barcodes (and maybe its tabix index).

use super::shape::{mtx_shape, text_shape};
use super::sniff::{Sniffed, describe_head, looks_like_fragments, sniff};
use super::{Received, UploadError, read_failed};
use crate::Input;
use crate::archive::Budget;

/// Loose files of a 10x matrix folder: one MatrixMarket matrix (features x barcodes), a
/// table with one line per matrix row (features) and one with a line per column
/// (barcodes). They are renamed to the names 10x gives them. Every file is read through
/// the budget (gzipped ones counted by what they inflate to), lines one at a time.
pub(super) fn loose_files(received: &Received, budget: &mut Budget) -> Result<Input, UploadError> {
    let (parts, label) = (received.paths, |i: usize| received.label(i));
    let mut matrix = None;
    let mut texts = Vec::new();
    let mut index = None;
    for (i, p) in parts.iter().enumerate() {
        match sniff(p).map_err(read_failed)? {
            Sniffed::TabixIndex => index = Some(i),
            Sniffed::MatrixMarket { gzip } => {
                if matrix.is_some() {
                    return Err(UploadError::bad(
                        "two MatrixMarket matrices were uploaded; upload one dataset at a time",
                    ));
                }
                matrix = Some((i, gzip));
            }
            Sniffed::Text { gzip } => texts.push((i, gzip)),
            _ => {
                return Err(UploadError::unsupported(format!(
                    "{}: unsupported file type among several files ({}); several files must be a matrix.mtx with its features.tsv and barcodes.tsv",
                    label(i),
                    describe_head(p)
                )));
            }
        }
    }
    if matrix.is_none() {
        return fragment_files(received, &texts, index);
    }
    if let Some(i) = index {
        return Err(UploadError::bad(format!(
            "{}: a tabix index beside a MatrixMarket matrix; an index belongs to a fragments file",
            label(i)
        )));
    }
    // the matrix first: its shape bounds how far the tables are worth counting
    let matrix = match matrix {
        Some((i, gzip)) => {
            let shape = mtx_shape(&parts[i], gzip, budget, &label(i))
                .map_err(|e| UploadError::from_archive(e, None))?;
            Some((i, gzip, shape))
        }
        None => None,
    };
    let max_lines = matrix.map_or(usize::MAX, |(_, _, (r, c))| r.max(c));
    let mut tables = Vec::new();
    for (i, gzip) in texts {
        let shape = text_shape(&parts[i], gzip, budget, &label(i), max_lines)
            .map_err(|e| UploadError::from_archive(e, None))?;
        tables.push((i, gzip, shape));
    }
    let Some((mi, mgz, (rows, cols))) = matrix else {
        return Err(UploadError::bad(
            "several files but no MatrixMarket matrix (a file starting `%%MatrixMarket`) among them",
        ));
    };
    if tables.len() != 2 {
        return Err(UploadError::bad(format!(
            "a MatrixMarket matrix needs exactly two tables beside it (features and barcodes); {} were uploaded",
            tables.len()
        )));
    }
    // features: one line per row (10x matrices are features x barcodes); barcodes one
    // per column. A square matrix is told apart by columns: barcodes have one.
    let (a, b) = (tables[0], tables[1]);
    // (index, gzip, (lines, columns)) of tables `f` and `b` fit as features and barcodes
    let fits = |f: &(usize, bool, (usize, usize)), b: &(usize, bool, (usize, usize))| {
        f.2.0 == rows && b.2.0 == cols
    };
    let (features, barcodes) = match (fits(&a, &b), fits(&b, &a)) {
        // both ways only when the matrix is square
        (true, true) if a.2.1 >= b.2.1 => (a, b),
        (true, true) => (b, a),
        (true, false) => (a, b),
        (false, true) => (b, a),
        (false, false) => {
            return Err(UploadError::bad(format!(
                "the matrix {} is {rows} features x {cols} barcodes, but the tables have {} ({}) and {} ({}) lines",
                label(mi),
                a.2.0,
                label(a.0),
                b.2.0,
                label(b.0)
            )));
        }
    };
    let folder = received.input_folder()?;
    for (i, name) in [
        (mi, format!("matrix.mtx{}", gz(mgz))),
        (features.0, format!("features.tsv{}", gz(features.1))),
        (barcodes.0, format!("barcodes.tsv{}", gz(barcodes.1))),
    ] {
        received.move_to(i, &folder.join(name))?;
    }
    Ok(Input::MatrixMarketDir(folder))
}

/// Loose files of ATAC fragments: one fragments file (`chrom start end barcode [count]`
/// lines, gzipped or not), one barcodes table, and optionally its tabix index. Renamed to
/// `fragments.tsv[.gz]`, `barcodes.tsv[.gz]` and `fragments.tsv.gz.tbi`; their content is
/// read (under the job's limits) when the job counts them.
fn fragment_files(
    received: &Received,
    texts: &[(usize, bool)],
    index: Option<usize>,
) -> Result<Input, UploadError> {
    let (parts, label) = (received.paths, |i: usize| received.label(i));
    let mut fragments = Vec::new();
    let mut tables = Vec::new();
    for &(i, gzip) in texts {
        if looks_like_fragments(&parts[i], gzip).map_err(read_failed)? {
            fragments.push((i, gzip));
        } else {
            tables.push((i, gzip));
        }
    }
    match (fragments.as_slice(), tables.as_slice()) {
        ([(f, fgz)], [(b, bgz)]) => {
            let folder = received.input_folder()?;
            let fpath = folder.join(format!("fragments.tsv{}", gz(*fgz)));
            let bpath = folder.join(format!("barcodes.tsv{}", gz(*bgz)));
            received.move_to(*f, &fpath)?;
            received.move_to(*b, &bpath)?;
            if let Some(t) = index {
                if !fgz {
                    return Err(UploadError::bad(format!(
                        "{}: a tabix index beside an uncompressed fragments file {}",
                        label(t),
                        label(*f)
                    )));
                }
                received.move_to(t, &folder.join("fragments.tsv.gz.tbi"))?;
            }
            Ok(Input::Fragments {
                fragments: fpath,
                barcodes: bpath,
            })
        }
        ([], _) => Err(UploadError::bad(
            "several files but no MatrixMarket matrix (a file starting `%%MatrixMarket`) and no fragments file (`chrom start end barcode` lines) among them",
        )),
        ([_], t) => Err(UploadError::bad(format!(
            "a fragments file needs exactly one barcodes table beside it (one cell barcode a line); {} other tables were uploaded",
            t.len()
        ))),
        (many, _) => Err(UploadError::bad(format!(
            "{} fragments files were uploaded; upload one dataset at a time",
            many.len()
        ))),
    }
}

/// The suffix of a gzipped file's name.
fn gz(gzip: bool) -> &'static str {
    if gzip { ".gz" } else { "" }
}
