//! 10x Genomics Cell Ranger ARC output: `filtered_feature_bc_matrix.h5`.
//!
//! One CSC matrix, features x barcodes, under `/matrix`:
//! `data`, `indices`, `indptr`, `shape` (`[n_features, n_barcodes]`), `barcodes`, and
//! `features/{id, name, feature_type, genome}` (fixed-length ASCII strings). A Multiome
//! run lists the genes (`feature_type` "Gene Expression") and then the peaks ("Peaks",
//! named `chr1:100-200`); other feature types (antibodies) are left out. No crate reads
//! this layout, so it is read with the HDF5 binding that `anndata-hdf5` builds on
//! (`hdf5-metno`). A CSC matrix of features x barcodes is, array for array, the CSR
//! matrix of barcodes x features, so no transposition is needed.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crossomics_limits::{Limit, Limits, excerpt_str};
use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};

use crate::dataset::{CellTable, PairedDataset, select_columns};
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::h5ad::{compressed_to_csr, guard};
use crate::pair::SingleModality;

/// The `feature_type` of genes.
pub const GENE_EXPRESSION: &str = "Gene Expression";
/// The `feature_type` of ATAC peaks.
pub const PEAKS: &str = "Peaks";

/// Reads a Cell Ranger ARC feature-barcode matrix (`filtered_feature_bc_matrix.h5`) into
/// a paired dataset: genes by their `name` (symbol), peaks parsed from their `id`, every
/// barcode a cell. Counts must be non-negative integers.
pub fn read_h5(path: &Path, limits: &Limits) -> Result<PairedDataset> {
    read_h5_parts(path, limits)?.into_paired()
}

/// Whether `path` is an HDF5 file laid out as a 10x feature-barcode matrix (a `/matrix`
/// group) rather than, say, an AnnData file. False for anything unreadable, and for a
/// file [`crate::hdf5_vet::vet`] refuses (whose reader then says why).
pub fn is_tenx_h5(path: &Path, limits: &Limits) -> bool {
    guard(path, || {
        crate::hdf5_vet::vet(path, limits)?;
        Ok(hdf5::File::open(path)
            .map(|f| f.group("matrix").is_ok())
            .unwrap_or(false))
    })
    .unwrap_or(false)
}

/// Reads a Cell Ranger feature-barcode matrix `.h5` that may hold one modality only
/// (Cell Ranger's gene expression output, or the ATAC peaks of an ARC run): the same
/// checks as [`read_h5`], without requiring both feature types.
pub fn read_h5_parts(path: &Path, limits: &Limits) -> Result<TenxParts> {
    guard(path, || read_inner(path, limits))
}

fn read_inner(path: &Path, limits: &Limits) -> Result<TenxParts> {
    let at = |elem: &str| format!("{}:/matrix/{elem}", path.display());
    let err = |elem: &str, reason: String| DataError::invalid(at(elem), reason);
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    crate::hdf5_vet::vet(path, limits)?;
    let file = hdf5::File::open(path).map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!(
                "not a readable HDF5 file (truncated or another format?): {}",
                crate::hdf5_vet::short(&e.to_string())
            ),
        )
    })?;
    let m = file.group("matrix").map_err(|_| {
        DataError::invalid(
            path.display().to_string(),
            "no `/matrix` group: not a Cell Ranger (>= 3, ARC) feature-barcode matrix",
        )
    })?;
    let dataset = |name: &str| {
        m.dataset(name)
            .map_err(|_| err(name, "missing".to_string()))
    };
    let sized = |name: &str, limit: Limit| -> Result<hdf5::Dataset> {
        let ds = dataset(name)?;
        limits
            .check(limit, ds.size() as u128, &at(name), "its length")
            .map_err(DataError::from)?;
        Ok(ds)
    };
    let shape_ds = dataset("shape")?;
    if shape_ds.size() != 2 {
        return Err(err("shape", format!("{} values, not two", shape_ds.size())));
    }
    let shape = shape_ds
        .read_raw::<i64>()
        .map_err(|e| err("shape", crate::hdf5_vet::short(&e.to_string())))?;
    let [n_features, n_barcodes] = shape[..] else {
        return Err(err("shape", format!("{shape:?} is not two numbers")));
    };
    let (n_features, n_barcodes) = (
        usize::try_from(n_features).map_err(|_| err("shape", format!("{shape:?}")))?,
        usize::try_from(n_barcodes).map_err(|_| err("shape", format!("{shape:?}")))?,
    );
    limits.check(
        Limit::Features,
        n_features as u128,
        &at("shape"),
        "the feature count",
    )?;
    limits.check(
        Limit::Cells,
        n_barcodes as u128,
        &at("shape"),
        "the barcode count",
    )?;
    let data = sized("data", Limit::Nonzeros)?
        .read_raw::<f32>()
        .map_err(|e| err("data", crate::hdf5_vet::short(&e.to_string())))?;
    let to_usize = |name: &str| -> Result<Vec<usize>> {
        let raw = sized(name, Limit::Nonzeros)?
            .read_raw::<i64>()
            .map_err(|e| err(name, crate::hdf5_vet::short(&e.to_string())))?;
        raw.iter()
            .enumerate()
            .map(|(i, &v)| usize::try_from(v).map_err(|_| err(name, format!("entry {i} is {v}"))))
            .collect()
    };
    let indices = to_usize("indices")?;
    // indptr has one entry per barcode, plus one
    limits.check(
        Limit::Cells,
        (sized("indptr", Limit::Nonzeros)?.size() as u128).saturating_sub(1),
        &at("indptr"),
        "its length",
    )?;
    let indptr = to_usize("indptr")?;
    let strings = |name: &str| -> Result<Vec<String>> {
        let limit = if name == "barcodes" {
            Limit::Cells
        } else {
            Limit::Features
        };
        let ds = sized(name, limit)?;
        read_strings(&ds)
            .map_err(|e| err(name, crate::hdf5_vet::short(&e.to_string())))?
            .ok_or_else(|| err(name, "does not hold strings".to_string()))
    };
    let barcodes = strings("barcodes")?;
    let ids = strings("features/id")?;
    let names = strings("features/name")?;
    let types = strings("features/feature_type")?;
    for (what, got, expected) in [
        ("barcodes", barcodes.len(), n_barcodes),
        ("features/id", ids.len(), n_features),
        ("features/name", names.len(), n_features),
        ("features/feature_type", types.len(), n_features),
    ] {
        if got != expected {
            return Err(err(
                what,
                format!("{got} entries, but shape {shape:?} needs {expected}"),
            ));
        }
    }
    if n_barcodes == 0 || n_features == 0 {
        return Err(DataError::Empty {
            what: at("shape"),
            reason: format!("{n_features} features x {n_barcodes} barcodes"),
        });
    }
    // CSC features x barcodes == CSR barcodes x features
    let counts = compressed_to_csr(true, n_barcodes, n_features, indptr, indices, data)
        .map_err(|r| err("data", r))?;
    let features = Features { ids, names, types };
    assemble(
        path,
        &dataset_name(path),
        counts,
        barcodes,
        features,
        &|elem, reason| err(elem, reason),
    )
}

/// The three columns of a feature table, one entry per matrix column.
struct Features {
    ids: Vec<String>,
    names: Vec<String>,
    types: Vec<String>,
}

/// The modalities of a 10x feature-barcode matrix, each present when the file has
/// features of its type.
#[derive(Debug, Clone)]
pub struct TenxParts {
    pub source: PathBuf,
    pub name: String,
    /// `Gene Expression` columns, named by symbol
    pub rna: Option<SingleModality<String>>,
    /// the genes' ids (Ensembl), one per RNA column
    pub gene_ids: Option<Vec<String>>,
    /// `Peaks` columns, parsed from their ids
    pub atac: Option<SingleModality<Peak>>,
    /// the feature types the file lists, in order of appearance
    pub feature_types: Vec<String>,
    /// where the feature types are (for messages): the `.h5` element or `features.tsv`
    pub feature_types_source: String,
}

impl TenxParts {
    /// Both modalities as a paired dataset; an error naming the file when one is absent.
    pub fn into_paired(self) -> Result<PairedDataset> {
        let (Some(rna), Some(atac)) = (self.rna, self.atac) else {
            return Err(DataError::invalid(
                self.feature_types_source,
                format!(
                    "a paired matrix needs both `{GENE_EXPRESSION}` and `{PEAKS}` features; this one has: {}",
                    self.feature_types.join(", ")
                ),
            ));
        };
        PairedDataset::new(
            self.name,
            rna.matrix,
            atac.matrix,
            rna.cells,
            rna.features,
            atac.features,
        )
    }
}

/// Checks a barcodes x features count matrix and splits it into its modalities: the
/// `Gene Expression` columns (named by symbol) and the `Peaks` columns (parsed from
/// their ids). `err(element, reason)` names the offending part of the source.
fn assemble(
    path: &Path,
    name: &str,
    counts: nalgebra_sparse::CsrMatrix<f32>,
    barcodes: Vec<String>,
    features: Features,
    err: &dyn Fn(&str, String) -> DataError,
) -> Result<TenxParts> {
    let Features { ids, names, types } = features;
    let n_features = ids.len();
    let mut seen = HashSet::with_capacity(barcodes.len());
    for (i, b) in barcodes.iter().enumerate() {
        if !seen.insert(b.as_str()) {
            return Err(err(
                "barcodes",
                format!(
                    "barcode `{}` occurs twice (the second time at {i})",
                    excerpt_str(b, 60)
                ),
            ));
        }
    }
    for (row, col, &value) in counts.triplet_iter() {
        if !value.is_finite() {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                what: "the counts".into(),
                row,
                col,
                value,
            });
        }
        if value < 0.0 || value.fract() != 0.0 {
            return Err(err(
                "data",
                format!(
                    "barcode `{}`, feature `{}` has {value}, not a non-negative integer count",
                    excerpt_str(&barcodes[row], 60),
                    excerpt_str(&ids[col], 60)
                ),
            ));
        }
    }
    let of_type = |t: &str| -> Vec<usize> { (0..n_features).filter(|&i| types[i] == t).collect() };
    let gene_cols = of_type(GENE_EXPRESSION);
    let peak_cols = of_type(PEAKS);
    let mut present: Vec<String> = Vec::new();
    for t in &types {
        if !present.contains(t) {
            present.push(t.clone());
        }
    }
    if gene_cols.is_empty() && peak_cols.is_empty() {
        return Err(err(
            "features/feature_type",
            format!(
                "no `{GENE_EXPRESSION}` or `{PEAKS}` features; this matrix has: {}",
                present.join(", ")
            ),
        ));
    }
    let peaks = peak_cols
        .iter()
        .map(|&i| Peak::parse(&ids[i]).map_err(|reason| err(&format!("features/id[{i}]"), reason)))
        .collect::<Result<Vec<_>>>()?;
    let cells = CellTable::new(barcodes);
    let rna = (!gene_cols.is_empty()).then(|| SingleModality {
        source: path.to_path_buf(),
        matrix: select_columns(&counts, &gene_cols),
        cells: cells.clone(),
        features: gene_cols.iter().map(|&i| names[i].clone()).collect(),
    });
    let gene_ids =
        (!gene_cols.is_empty()).then(|| gene_cols.iter().map(|&i| ids[i].clone()).collect());
    let atac = (!peak_cols.is_empty()).then(|| SingleModality {
        source: path.to_path_buf(),
        matrix: select_columns(&counts, &peak_cols),
        cells,
        features: peaks,
    });
    Ok(TenxParts {
        source: path.to_path_buf(),
        name: name.to_string(),
        rna,
        gene_ids,
        atac,
        feature_types: present,
        feature_types_source: match err("features/feature_type", String::new()) {
            DataError::Invalid { what, .. } => what,
            other => other.to_string(),
        },
    })
}

/// Reads a Cell Ranger ARC feature-barcode matrix folder
/// (`filtered_feature_bc_matrix/`): `matrix.mtx.gz` (features x barcodes, MatrixMarket),
/// `features.tsv.gz` (id, name, feature_type[, chrom, start, end]) and `barcodes.tsv.gz`,
/// each also accepted uncompressed. The same checks and split as [`read_h5`].
pub fn read_mtx_dir(dir: &Path, limits: &Limits) -> Result<PairedDataset> {
    read_mtx_dir_parts(dir, limits)?.into_paired()
}

/// [`read_mtx_dir`] for a folder that may hold one modality only (see [`read_h5_parts`]).
pub fn read_mtx_dir_parts(dir: &Path, limits: &Limits) -> Result<TenxParts> {
    let file = |name: &str| -> Result<PathBuf> {
        let candidates = [dir.join(format!("{name}.gz")), dir.join(name)];
        candidates
            .iter()
            .find(|p| p.is_file())
            .cloned()
            .ok_or_else(|| {
                DataError::io(
                    &candidates[0],
                    std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "file not found (nor without .gz)",
                    ),
                )
            })
    };
    let matrix_path = file("matrix.mtx")?;
    let by_feature = crate::mtx::read_path(&matrix_path, limits)?;
    let mname = matrix_path.display().to_string();
    limits.check(
        Limit::Features,
        by_feature.nrows() as u128,
        &mname,
        "the row (feature) count",
    )?;
    limits.check(
        Limit::Cells,
        by_feature.ncols() as u128,
        &mname,
        "the column (barcode) count",
    )?;
    let features_path = file("features.tsv")?;
    let barcodes_path = file("barcodes.tsv")?;
    let feature_rows = text_lines(&features_path, limits, Limit::Features)?;
    let barcodes = text_lines(&barcodes_path, limits, Limit::Cells)?
        .into_iter()
        .map(|l| l.split('\t').next().unwrap_or("").trim().to_string())
        .collect::<Vec<_>>();
    let mut features = Features {
        ids: Vec::new(),
        names: Vec::new(),
        types: Vec::new(),
    };
    for (i, line) in feature_rows.iter().enumerate() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 3 {
            return Err(DataError::Parse {
                path: features_path.clone(),
                line: i + 1,
                reason: format!("{} columns; expected id, name, feature_type", f.len()),
            });
        }
        features.ids.push(f[0].to_string());
        features.names.push(f[1].to_string());
        features.types.push(f[2].to_string());
    }
    let (n_features, n_barcodes) = (by_feature.nrows(), by_feature.ncols());
    for (path, got, expected, what) in [
        (
            &features_path,
            features.ids.len(),
            n_features,
            "matrix rows (features)",
        ),
        (
            &barcodes_path,
            barcodes.len(),
            n_barcodes,
            "matrix columns (barcodes)",
        ),
    ] {
        if got != expected {
            return Err(DataError::invalid(
                path.display().to_string(),
                format!(
                    "{got} lines, but {} has {expected} {what}",
                    matrix_path.display()
                ),
            ));
        }
    }
    if n_barcodes == 0 || n_features == 0 {
        return Err(DataError::Empty {
            what: matrix_path.display().to_string(),
            reason: format!("{n_features} features x {n_barcodes} barcodes"),
        });
    }
    let counts = by_feature.transpose();
    // `pbmc/outs/filtered_feature_bc_matrix/` is named `pbmc`, as its .h5 sibling
    let name = dataset_name(&dir.with_extension("h5"));
    let err = |elem: &str, reason: String| {
        let file = match elem {
            "barcodes" => &barcodes_path,
            "data" => &matrix_path,
            _ => &features_path,
        };
        DataError::invalid(format!("{} ({elem})", file.display()), reason)
    };
    assemble(dir, &name, counts, barcodes, features, &err)
}

/// The lines of a text file under the limits ([`crate::text::capped_lines`]).
fn text_lines(path: &Path, limits: &Limits, count: Limit) -> Result<Vec<String>> {
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    crate::text::capped_lines(file, path, limits, count)
}

/// `pbmc10k/outs/filtered_feature_bc_matrix.h5` -> `pbmc10k`; `x.h5` -> `x`.
fn dataset_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if !stem.ends_with("feature_bc_matrix") {
        return stem;
    }
    path.ancestors()
        .skip(1)
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .find(|n| n != "outs")
        .unwrap_or(stem)
}

/// Strings of a dataset or attribute of any HDF5 string type (variable or fixed length,
/// ASCII or UTF-8), in storage order; `None` when it does not hold strings.
pub(crate) fn read_strings(c: &hdf5::Container) -> hdf5::Result<Option<Vec<String>>> {
    macro_rules! fixed {
        (@read $ty:ident, $cap:literal) => {
            c.read_raw::<$ty<$cap>>()?
                .iter()
                .map(|s| String::from_utf8_lossy(s.as_bytes()).into_owned())
                .collect()
        };
        ($ty:ident, $n:expr) => {{
            let n = $n;
            if n <= 32 {
                fixed!(@read $ty, 32)
            } else if n <= 256 {
                fixed!(@read $ty, 256)
            } else if n <= 4096 {
                fixed!(@read $ty, 4096)
            } else {
                return Err(format!("fixed-length strings of {n} bytes are not supported").into());
            }
        }};
    }
    let strings = match c.dtype()?.to_descriptor()? {
        TypeDescriptor::VarLenUnicode => c
            .read_raw::<VarLenUnicode>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        TypeDescriptor::VarLenAscii => c
            .read_raw::<VarLenAscii>()?
            .iter()
            .map(|s| s.as_str().to_string())
            .collect(),
        TypeDescriptor::FixedAscii(n) => fixed!(FixedAscii, n),
        TypeDescriptor::FixedUnicode(n) => fixed!(FixedUnicode, n),
        _ => return Ok(None),
    };
    Ok(Some(strings))
}

/// A string attribute (scalar or one-element array); `None` when it is not one.
pub(crate) fn read_attr_string(attr: &hdf5::Attribute) -> Option<String> {
    let strings = read_strings(attr).ok()??;
    match strings.len() {
        1 => strings.into_iter().next(),
        _ => None,
    }
}
