//! Reading one modality of an AnnData file (or `.h5mu` group): `X` or a layer as CSR,
//! checked; the obs and var tables; dense `obsm` embeddings; pairing two files.

use std::collections::HashSet;
use std::path::Path;

use anndata::backend::{AttributeOp, DataContainer, DatasetOp, GroupOp};
use anndata::data::DynArray;
use anndata_hdf5::{H5, H5Group};
use crossomics_limits::{Limit, Limits, excerpt_str};
use nalgebra_sparse::CsrMatrix;
use ndarray::Array2;

use super::ReadOptions;
use super::arrays::{compressed_to_csr, indices_usize, numbers_f32};
use super::frame::read_frame;
use super::open::{
    Loc, dataset_len, guard, list_group, list_or_none, open, open_container, root_group,
    string_attr,
};
use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::pair::{PairingConfig, PairingReport, SingleModality, join};

/// Reads one modality from an `.h5ad`: `X` (or `layer`) as counts, `obs_names` as
/// barcodes, `var_names` as features, obs columns as cell metadata.
pub fn read(path: &Path, layer: Option<&str>) -> Result<SingleModality<String>> {
    read_with(path, &ReadOptions::layer(layer))
}

/// [`read`] with all options.
pub fn read_with(path: &Path, opts: &ReadOptions) -> Result<SingleModality<String>> {
    guard(path, || {
        let file = open(path, &opts.limits)?;
        let root = root_group(&file, path)?;
        read_modality(&root, &Loc::new(path, ""), opts)
    })
}

/// A text column of an `.h5ad`'s `var` table (e.g. `gene_ids`, the Ensembl ids beside
/// the symbols of 10x-derived files), in `var_names` order; `None` when there is no such
/// column.
pub fn read_var_column(path: &Path, column: &str, limits: &Limits) -> Result<Option<Vec<String>>> {
    guard(path, || {
        let file = open(path, limits)?;
        let root = root_group(&file, path)?;
        let var = read_frame(&root, &Loc::new(path, ""), "var", limits)?;
        Ok(var
            .columns
            .into_iter()
            .find(|(name, _)| name == column)
            .map(|(_, values)| values))
    })
}

/// A dense `obsm` entry (an embedding) as `f32`, cells x dimensions.
pub fn read_obsm(path: &Path, key: &str) -> Result<Array2<f32>> {
    guard(path, || {
        let file = open(path, &Limits::default())?;
        let root = root_group(&file, path)?;
        let loc = Loc::new(path, "");
        let elem = format!("obsm/{key}");
        let obsm = root
            .open_group("obsm")
            .map_err(|_| loc.err("obsm", "no `obsm` group"))?;
        loc.require_member(&obsm, key, &elem, "entry", "obsm")?;
        let ds = obsm
            .open_dataset(key)
            .map_err(|_| loc.err(&elem, "not a dense array (sparse or data frame)"))?;
        let shape = ds.shape();
        if shape.ndim() != 2 {
            return Err(loc.err(&elem, format!("has {} dimensions, not 2", shape.ndim())));
        }
        let (rows, cols) = (shape[0], shape[1]);
        let limits = Limits::default();
        loc.check(&limits, Limit::Cells, rows, &elem, "its row count")?;
        loc.check_dense(&limits, rows, cols, &elem, "its values")?;
        let arr = ds
            .read_dyn_array()
            .map_err(|e| loc.err(&elem, format!("cannot be read: {e:#}")))?;
        let values = numbers_f32(arr).map_err(|r| loc.err(&elem, r))?;
        if let Some(i) = values.iter().position(|v| !v.is_finite()) {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                what: format!("/{elem}"),
                row: i / cols.max(1),
                col: i % cols.max(1),
                value: values[i],
            });
        }
        Array2::from_shape_vec((rows, cols), values)
            .map_err(|e| loc.err(&elem, format!("shape: {e}")))
    })
}

/// Parses the features of an ATAC modality as peaks (`chr1-100-200`, `chr1:100-200`, ...).
pub fn parse_peaks(m: SingleModality<String>) -> Result<SingleModality<Peak>> {
    let features = m
        .features
        .iter()
        .enumerate()
        .map(|(i, f)| {
            Peak::parse(f).map_err(|reason| {
                DataError::invalid(format!("{}: var_names[{i}]", m.source.display()), reason)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(SingleModality {
        source: m.source,
        matrix: m.matrix,
        cells: m.cells,
        features,
    })
}

/// Pairs an RNA `.h5ad` and an ATAC `.h5ad` of the same cells by barcode.
pub fn read_pair(
    name: &str,
    rna: &Path,
    atac: &Path,
    opts: &ReadOptions,
    pairing: &PairingConfig,
) -> Result<(PairedDataset, PairingReport)> {
    let rna = read_with(rna, opts)?;
    let atac = parse_peaks(read_with(atac, opts)?)?;
    join(name, rna, atac, pairing)
}

pub(super) fn read_modality(
    g: &H5Group,
    loc: &Loc<'_>,
    opts: &ReadOptions,
) -> Result<SingleModality<String>> {
    let (elem, container) = match &opts.layer {
        None => {
            if !g.exists("X").unwrap_or(false) {
                let layers = list_group(g, "layers");
                return Err(loc.err(
                    "X",
                    format!(
                        "missing: the file has no `X` matrix (layers: {})",
                        list_or_none(&layers)
                    ),
                ));
            }
            ("X".to_string(), open_container(g, "X", loc)?)
        }
        Some(layer) => {
            let layers = list_group(g, "layers");
            if !layers.iter().any(|l| l == layer) {
                return Err(loc.err(
                    &format!("layers/{layer}"),
                    format!("no such layer; the file has: {}", list_or_none(&layers)),
                ));
            }
            let group = g
                .open_group("layers")
                .map_err(|e| loc.err("layers", format!("{e:#}")))?;
            let elem = format!("layers/{layer}");
            let c = open_container(
                &group,
                layer,
                &Loc::new(loc.path, &format!("{}layers/", loc.prefix)),
            )?;
            (elem, c)
        }
    };
    let matrix = read_matrix(&container, loc, &elem, &opts.limits)?;
    let obs = read_frame(g, loc, "obs", &opts.limits)?;
    let var = read_frame(g, loc, "var", &opts.limits)?;

    let (n_obs, n_vars) = (matrix.nrows(), matrix.ncols());
    if n_obs == 0 || n_vars == 0 {
        return Err(DataError::Empty {
            what: loc.at(&elem),
            reason: format!("{n_obs} cells x {n_vars} features"),
        });
    }
    for (what, got, expected, by) in [
        ("obs_names", obs.index.len(), n_obs, "rows"),
        ("var_names", var.index.len(), n_vars, "columns"),
    ] {
        if got != expected {
            return Err(DataError::ShapeMismatch {
                path: loc.path.to_path_buf(),
                what: loc.elem(what),
                got,
                expected,
                expected_by: format!("{} ({by})", loc.elem(&elem)),
            });
        }
    }
    let mut seen = HashSet::with_capacity(n_obs);
    for (i, b) in obs.index.iter().enumerate() {
        if !seen.insert(b.as_str()) {
            let first = obs.index.iter().position(|x| x == b).unwrap_or(0);
            return Err(loc.err(
                "obs",
                format!(
                    "barcode `{}` occurs twice (cells {} and {}); obs_names must be unique",
                    excerpt_str(b, 60),
                    first + 1,
                    i + 1
                ),
            ));
        }
    }
    check_values(&matrix, loc, &elem, opts, &obs.index, &var.index, g)?;

    let mut cells = CellTable::new(obs.index);
    for (name, values) in obs.columns {
        cells = cells.with_inferred_column(&name, values)?;
    }
    Ok(SingleModality {
        source: loc.path.to_path_buf(),
        matrix,
        cells,
        features: var.index,
    })
}

/// Finite everywhere; with `require_counts`, non-negative integers.
fn check_values(
    m: &CsrMatrix<f32>,
    loc: &Loc<'_>,
    elem: &str,
    opts: &ReadOptions,
    barcodes: &[String],
    features: &[String],
    g: &H5Group,
) -> Result<()> {
    for (row, col, &value) in m.triplet_iter() {
        if !value.is_finite() {
            return Err(DataError::NonFinite {
                path: loc.path.to_path_buf(),
                what: loc.elem(elem),
                row,
                col,
                value,
            });
        }
        if opts.require_counts && (value < 0.0 || value.fract() != 0.0) {
            let hint = if elem == "X" && list_group(g, "layers").iter().any(|l| l == "counts") {
                "; X looks normalized: read layer `counts` instead"
            } else {
                ""
            };
            return Err(loc.err(
                elem,
                format!(
                    "entry at row {row} (cell `{}`), column {col} (feature `{}`) is {value}, not a non-negative integer count{hint}",
                    excerpt_str(&barcodes[row], 60),
                    excerpt_str(&features[col], 60)
                ),
            ));
        }
    }
    Ok(())
}

/// A matrix group's encoding: its `encoding-type` (`csr_matrix`, `csc_matrix`), or for
/// anndata 0.5 / 0.6 its `h5sparse_format` (`csr`, `csc`) as the same name.
pub(super) fn matrix_encoding(group: &H5Group) -> Option<String> {
    string_attr(group, "encoding-type")
        .or_else(|| string_attr(group, "h5sparse_format").map(|f| format!("{f}_matrix")))
}

/// A dense array or a CSR/CSC group as CSR f32 without explicit zeros.
pub(super) fn read_matrix(
    c: &DataContainer<H5>,
    loc: &Loc<'_>,
    elem: &str,
    limits: &Limits,
) -> Result<CsrMatrix<f32>> {
    match c {
        DataContainer::Dataset(ds) => {
            let shape = ds.shape();
            if shape.ndim() != 2 {
                return Err(loc.err(
                    elem,
                    format!(
                        "a dense matrix must have 2 dimensions, this has {}",
                        shape.ndim()
                    ),
                ));
            }
            let (rows, cols) = (shape[0], shape[1]);
            loc.check(limits, Limit::Cells, rows, elem, "its row count")?;
            loc.check(limits, Limit::Features, cols, elem, "its column count")?;
            loc.check_dense(limits, rows, cols, elem, "its values (a dense matrix)")?;
            let arr = ds
                .read_dyn_array()
                .map_err(|e| loc.err(elem, format!("cannot be read: {e:#}")))?;
            let values = numbers_f32(arr).map_err(|r| loc.err(elem, r))?;
            if values.len() != rows * cols {
                return Err(loc.err(elem, "the data do not fill the shape"));
            }
            let mut offsets = Vec::with_capacity(rows + 1);
            let mut indices = Vec::new();
            let mut data = Vec::new();
            offsets.push(0);
            for r in 0..rows {
                for (c, &v) in values[r * cols..(r + 1) * cols].iter().enumerate() {
                    if v != 0.0 {
                        indices.push(c);
                        data.push(v);
                    }
                }
                offsets.push(indices.len());
            }
            CsrMatrix::try_from_csr_data(rows, cols, offsets, indices, data)
                .map_err(|e| loc.err(elem, format!("{e}")))
        }
        DataContainer::Group(group) => {
            let encoding = matrix_encoding(group).ok_or_else(|| {
                loc.err(elem, "a group without `encoding-type`: not a sparse matrix")
            })?;
            let is_csr = match encoding.as_str() {
                "csr_matrix" => true,
                "csc_matrix" => false,
                other => {
                    return Err(loc.err(
                        elem,
                        format!("encoding `{other}` is not a matrix (expected csr_matrix, csc_matrix or a dense array)"),
                    ));
                }
            };
            let shape: Vec<u64> = group
                .get_attr("shape")
                .or_else(|_| group.get_attr("h5sparse_shape"))
                .map_err(|e| loc.err(elem, format!("no `shape` attribute: {e:#}")))?;
            if shape.len() != 2 {
                return Err(loc.err(elem, format!("shape {shape:?} is not 2-D")));
            }
            let nrows = usize::try_from(shape[0]).unwrap_or(usize::MAX);
            let ncols = usize::try_from(shape[1]).unwrap_or(usize::MAX);
            loc.check(
                limits,
                Limit::Cells,
                nrows,
                elem,
                "the rows its `shape` claims",
            )?;
            loc.check(
                limits,
                Limit::Features,
                ncols,
                elem,
                "the columns its `shape` claims",
            )?;
            let major = if is_csr { nrows } else { ncols };
            let part = |name: &str| -> Result<DynArray> {
                let ds = group.open_dataset(name).map_err(|_| {
                    loc.err(elem, format!("missing `{name}`: not a complete {encoding}"))
                })?;
                let at = format!("{elem}/{name}");
                let len = dataset_len(&ds);
                if name == "indptr" {
                    if len != major.saturating_add(1) {
                        return Err(loc.err(
                            &at,
                            format!(
                                "{len} entries, but the {major} {} of its shape need {}",
                                if is_csr { "rows" } else { "columns" },
                                major.saturating_add(1)
                            ),
                        ));
                    }
                } else {
                    loc.check(limits, Limit::Nonzeros, len, &at, "its stored entries")?;
                }
                ds.read_dyn_array().map_err(|e| {
                    loc.err(&format!("{elem}/{name}"), format!("cannot be read: {e:#}"))
                })
            };
            let data =
                numbers_f32(part("data")?).map_err(|r| loc.err(&format!("{elem}/data"), r))?;
            let indices = indices_usize(part("indices")?)
                .map_err(|r| loc.err(&format!("{elem}/indices"), r))?;
            let indptr = indices_usize(part("indptr")?)
                .map_err(|r| loc.err(&format!("{elem}/indptr"), r))?;
            compressed_to_csr(is_csr, nrows, ncols, indptr, indices, data)
                .map_err(|r| loc.err(elem, r))
        }
        DataContainer::Null => Err(loc.err(elem, "empty element")),
    }
}
