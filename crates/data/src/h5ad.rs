//! AnnData `.h5ad` and MuData `.h5mu` files, read and written with the `anndata` crate
//! (scverse/anndata-rs) and its HDF5 backend `anndata-hdf5`.
//!
//! One modality per file (or per `/mod/<name>` group of an `.h5mu`): `X` (or a layer) as
//! CSR, CSC or dense of any integer or float type becomes a `CsrMatrix<f32>` (explicit
//! zeros dropped), `obs_names` the barcodes, the `obs` columns text columns of a
//! [`CellTable`] (categoricals as their category names), `var_names` the features.
//!
//! Reading uses anndata-rs's backend layer (groups, datasets, attributes) rather than
//! `AnnData::open`: an `.h5mu` modality is a group, not a file; the files of the NeurIPS
//! 2021 competition and many public ones were written by anndata < 0.8 (categories under
//! `obs/__categories`, no `encoding-type` on columns), which `AnnData::open` misreads; and
//! one obs column of an unusual encoding must not make a whole file unreadable (such a
//! column is skipped). Strings stored with fixed length (old h5py, Cell Ranger) are read
//! through the same HDF5 binding (`hdf5-metno`).
//!
//! Every generation of the format that Python anndata still reads is read
//! (`crates/data/tests/anndata_generations.rs`, on anndata's own archived files):
//!
//! - anndata 0.5 / 0.6 (scanpy's `pbmc68k_reduced`): `obs` and `var` are compound
//!   datasets, one record a row, the index first; a categorical column holds integer
//!   codes whose names are `uns/<column>_categories`; `X` is dense or a group with
//!   `h5sparse_format` (`csr` / `csc`) and `h5sparse_shape`. The records are read raw
//!   ([`crate::hdf5_vet::read_raw_1d`]: this binding reads compound types only into Rust
//!   types known when compiling);
//! - anndata 0.7: `obs` / `var` groups, codes with their categories in
//!   `<frame>/__categories/<column>`, `X` a group with `encoding-type` and `shape`, often
//!   LZF-compressed (h5py's `compression="lzf"`);
//! - anndata >= 0.8: `encoding-type` on everything, categorical groups (`codes`,
//!   `categories`), nullable integer / boolean / string arrays, string arrays.
//!
//! Writing goes through `AnnData::<H5>` to a temporary name beside the target, then a
//! rename, so a reader never sees half a file. Datasets are gzip-compressed: anndata-rs's
//! default (blosc-zstd) needs the `hdf5plugin` package to be read from Python.
//!
//! Every error names the file (and the element inside it); no input makes these readers
//! panic (a panic inside the HDF5 stack is caught and reported as an error).

use std::collections::HashSet;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use anndata::backend::{
    AttributeOp, Backend, Compression, DataContainer, DatasetOp, GroupOp, StoreOp, Value,
    WriteConfig, get_default_write_config, set_default_write_config,
};
use anndata::data::{CategoricalArray, DynArray};
use anndata::{AnnData, AnnDataOp, AxisArraysOp, Writable};
use anndata_hdf5::{H5, H5Group};
use crossomics_limits::{Limit, Limits, excerpt_str};
use nalgebra_sparse::{CooMatrix, CscMatrix, CsrMatrix};
use ndarray::{Array2, ArrayView2};

use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::pair::{PairingConfig, PairingReport, SingleModality, join};

/// What to read from a file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadOptions {
    /// What the file may claim (cells, features, entries, HDF5 objects) before it is
    /// refused; see [`crate::hdf5_vet`].
    pub limits: Limits,
    /// Read `layers/<name>` instead of `X` (e.g. `counts` where `X` is normalized).
    pub layer: Option<String>,
    /// Every entry must be a non-negative integer (raw counts); the error names the first
    /// entry that is not.
    pub require_counts: bool,
}

impl ReadOptions {
    pub fn layer(layer: Option<&str>) -> Self {
        Self {
            layer: layer.map(str::to_string),
            require_counts: false,
            limits: Limits::default(),
        }
    }

    pub fn counts(layer: Option<&str>) -> Self {
        Self {
            layer: layer.map(str::to_string),
            require_counts: true,
            limits: Limits::default(),
        }
    }
}

/// What an AnnData file (or `.h5mu` modality) holds, without reading the matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    pub n_obs: usize,
    pub n_vars: usize,
    /// Encoding and element type of `X` (`csr_matrix f32`, `array f64`, ...); `None` without `X`.
    pub x: Option<String>,
    pub layers: Vec<String>,
    /// obsm keys with their shapes
    pub obsm: Vec<(String, Vec<usize>)>,
    pub obs_columns: Vec<String>,
    pub var_columns: Vec<String>,
    pub uns: Vec<String>,
}

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

/// Reads modality `name` (`/mod/<name>`) of a MuData `.h5mu` file.
pub fn read_mod(path: &Path, name: &str, opts: &ReadOptions) -> Result<SingleModality<String>> {
    guard(path, || {
        let file = open(path, &opts.limits)?;
        let group = mod_group(&file, path, name)?;
        read_modality(&group, &Loc::new(path, &format!("mod/{name}/")), opts)
    })
}

/// The modality names of a MuData `.h5mu` file (`/mod/*`), in file order.
pub fn mods(path: &Path) -> Result<Vec<String>> {
    guard(path, || {
        let file = open(path, &Limits::default())?;
        let loc = Loc::new(path, "");
        let group = file
            .open_group("mod")
            .map_err(|_| loc.err("mod", "no `mod` group: not a MuData file"))?;
        group
            .list()
            .map_err(|e| loc.err("mod", format!("cannot list: {e:#}")))
    })
}

/// What an `.h5ad` holds (shapes, `X` encoding, layers, obsm, columns, uns keys).
pub fn inspect(path: &Path) -> Result<Summary> {
    guard(path, || {
        let file = open(path, &Limits::default())?;
        let root = root_group(&file, path)?;
        summarize(&root, &Loc::new(path, ""))
    })
}

/// [`inspect`] for modality `name` of an `.h5mu`.
pub fn inspect_mod(path: &Path, name: &str) -> Result<Summary> {
    guard(path, || {
        let file = open(path, &Limits::default())?;
        let group = mod_group(&file, path, name)?;
        summarize(&group, &Loc::new(path, &format!("mod/{name}/")))
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
        if !obsm.exists(key).unwrap_or(false) {
            let keys = obsm.list().unwrap_or_default();
            return Err(loc.err(
                &elem,
                format!("no such entry; obsm has: {}", list_or_none(&keys)),
            ));
        }
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
        limits.check(
            Limit::DenseValues,
            rows as u128 * cols as u128,
            &loc.at(&elem),
            "its values",
        )?;
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

/// Pairs two modalities of a MuData `.h5mu` (usually `rna` and `atac`) by barcode.
pub fn read_h5mu(
    name: &str,
    path: &Path,
    rna_mod: &str,
    atac_mod: &str,
    opts: &ReadOptions,
    pairing: &PairingConfig,
) -> Result<(PairedDataset, PairingReport)> {
    let rna = read_mod(path, rna_mod, opts)?;
    let atac = parse_peaks(read_mod(path, atac_mod, opts)?)?;
    join(name, rna, atac, pairing)
}

/// The matrix written as `X`.
#[derive(Debug, Clone, Copy)]
pub enum Matrix<'a> {
    Sparse(&'a CsrMatrix<f32>),
    Dense(ArrayView2<'a, f32>),
}

impl<'a> From<&'a CsrMatrix<f32>> for Matrix<'a> {
    fn from(m: &'a CsrMatrix<f32>) -> Self {
        Self::Sparse(m)
    }
}

impl<'a> From<ArrayView2<'a, f32>> for Matrix<'a> {
    fn from(m: ArrayView2<'a, f32>) -> Self {
        Self::Dense(m)
    }
}

impl<'a> From<&'a Array2<f32>> for Matrix<'a> {
    fn from(m: &'a Array2<f32>) -> Self {
        Self::Dense(m.view())
    }
}

impl Matrix<'_> {
    fn shape(&self) -> (usize, usize) {
        match self {
            Self::Sparse(m) => (m.nrows(), m.ncols()),
            Self::Dense(m) => m.dim(),
        }
    }
}

/// Writes an `.h5ad` that Python `anndata.read_h5ad` opens: `x` as `X` (CSR stays CSR,
/// dense stays dense; `None` for a file of embeddings only), the cell table as `obs`
/// (barcodes as `obs_names`, its columns as categoricals), `var_names`, and dense `obsm`
/// entries (embeddings). Written to a temporary name beside `path`, then renamed.
pub fn write(
    path: &Path,
    x: Option<Matrix<'_>>,
    cells: &CellTable,
    var_names: &[String],
    obsm: &[(&str, ArrayView2<'_, f32>)],
) -> Result<()> {
    check_for_write(path, x, cells, var_names, obsm)?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| DataError::invalid(path.display().to_string(), "not a file name"))?
        .to_string_lossy()
        .into_owned();
    let tmp = dir.join(format!(".{file_name}.{}.tmp", std::process::id()));
    let result = guard(path, || write_file(&tmp, path, x, cells, var_names, obsm))
        .and_then(|()| std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e)));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

// ---------------------------------------------------------------------------------------
// reading

/// A file and a place in it, for error messages (`data.h5mu:/mod/rna/X`).
struct Loc<'a> {
    path: &'a Path,
    prefix: String,
}

impl<'a> Loc<'a> {
    fn new(path: &'a Path, prefix: &str) -> Self {
        Self {
            path,
            prefix: prefix.to_string(),
        }
    }

    fn at(&self, elem: &str) -> String {
        format!("{}:/{}{}", self.path.display(), self.prefix, elem)
    }

    /// An error at `elem`; the reason is cut to one short, escaped excerpt, since it may
    /// quote the HDF5 library or the file.
    fn err(&self, elem: &str, reason: impl Into<String>) -> DataError {
        DataError::invalid(self.at(elem), crate::hdf5_vet::short(&reason.into()))
    }

    /// `claimed` checked against one of `limits`, naming `elem`.
    fn check(
        &self,
        limits: &Limits,
        limit: Limit,
        claimed: usize,
        elem: &str,
        what: &str,
    ) -> Result<()> {
        limits
            .check(limit, claimed as u128, &self.at(elem), what)
            .map_err(DataError::from)
    }

    fn elem(&self, elem: &str) -> String {
        format!("/{}{}", self.prefix, elem)
    }
}

/// Runs `f`, turning a panic anywhere below it into an error that names the file.
pub(crate) fn guard<T>(path: &Path, f: impl FnOnce() -> Result<T>) -> Result<T> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            Err(DataError::invalid(
                path.display().to_string(),
                format!("the HDF5 reader failed on this file: {msg}"),
            ))
        }
    }
}

/// Vets the file ([`crate::hdf5_vet::vet`]: nothing outside it is reached, no claim over
/// `limits`), then opens it.
fn open(path: &Path, limits: &Limits) -> Result<<H5 as Backend>::Store> {
    if !path.exists() {
        return Err(DataError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "file not found"),
        ));
    }
    if path.is_dir() {
        return Err(DataError::invalid(
            path.display().to_string(),
            "is a folder, not an HDF5 file",
        ));
    }
    crate::hdf5_vet::vet(path, limits)?;
    H5::open(path).map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!(
                "not a readable HDF5 file (truncated or another format?): {}",
                crate::hdf5_vet::short(&format!("{e:#}"))
            ),
        )
    })
}

fn root_group(file: &<H5 as Backend>::Store, path: &Path) -> Result<H5Group> {
    file.open_group("/").map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!("cannot open the root group: {e:#}"),
        )
    })
}

fn mod_group(file: &<H5 as Backend>::Store, path: &Path, name: &str) -> Result<H5Group> {
    let loc = Loc::new(path, "");
    let mods = file
        .open_group("mod")
        .map_err(|_| loc.err("mod", "no `mod` group: not a MuData file"))?;
    if !mods.exists(name).unwrap_or(false) {
        let names = mods.list().unwrap_or_default();
        return Err(loc.err(
            &format!("mod/{name}"),
            format!("no such modality; the file has: {}", list_or_none(&names)),
        ));
    }
    mods.open_group(name)
        .map_err(|e| loc.err(&format!("mod/{name}"), format!("not a group: {e:#}")))
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

fn read_modality(g: &H5Group, loc: &Loc<'_>, opts: &ReadOptions) -> Result<SingleModality<String>> {
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

fn list_group(g: &H5Group, name: &str) -> Vec<String> {
    g.open_group(name)
        .and_then(|l| l.list())
        .unwrap_or_default()
}

fn open_container(g: &H5Group, name: &str, loc: &Loc<'_>) -> Result<DataContainer<H5>> {
    DataContainer::open(g, name).map_err(|e| loc.err(name, format!("cannot be opened: {e:#}")))
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

/// A dense array or a CSR/CSC group as CSR f32 without explicit zeros.
fn read_matrix(
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
            limits.check(
                Limit::DenseValues,
                rows as u128 * cols as u128,
                &loc.at(elem),
                "its values (a dense matrix)",
            )?;
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
            let encoding = string_attr(group, "encoding-type")
                .or_else(|| string_attr(group, "h5sparse_format").map(|f| format!("{f}_matrix")))
                .ok_or_else(|| {
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

/// CSR (rows major) or CSC (columns major) arrays, checked, to CSR without explicit zeros.
pub(crate) fn compressed_to_csr(
    is_csr: bool,
    nrows: usize,
    ncols: usize,
    indptr: Vec<usize>,
    indices: Vec<usize>,
    data: Vec<f32>,
) -> std::result::Result<CsrMatrix<f32>, String> {
    let (major, minor, major_name, minor_name) = if is_csr {
        (nrows, ncols, "row", "column")
    } else {
        (ncols, nrows, "column", "row")
    };
    if indptr.len() != major + 1 {
        return Err(format!(
            "indptr has {} entries, but {major} {major_name}s need {}",
            indptr.len(),
            major + 1
        ));
    }
    if indices.len() != data.len() {
        return Err(format!(
            "{} indices but {} values",
            indices.len(),
            data.len()
        ));
    }
    if indptr[0] != 0 || indptr[major] != data.len() {
        return Err(format!(
            "indptr runs from {} to {}, but there are {} values",
            indptr[0],
            indptr[major],
            data.len()
        ));
    }
    if let Some(i) = indptr.windows(2).position(|w| w[1] < w[0]) {
        return Err(format!("indptr decreases at {major_name} {i}"));
    }
    if let Some(i) = indices.iter().position(|&j| j >= minor) {
        return Err(format!(
            "index {} at entry {i} is outside the {minor} {minor_name}s",
            indices[i]
        ));
    }
    // drop explicit zeros
    let (indptr, indices, data) = if data.contains(&0.0) {
        let mut p = Vec::with_capacity(indptr.len());
        let mut ix = Vec::with_capacity(indices.len());
        let mut dv = Vec::with_capacity(data.len());
        p.push(0);
        for w in indptr.windows(2) {
            for k in w[0]..w[1] {
                if data[k] != 0.0 {
                    ix.push(indices[k]);
                    dv.push(data[k]);
                }
            }
            p.push(ix.len());
        }
        (p, ix, dv)
    } else {
        (indptr, indices, data)
    };
    let sorted = indptr
        .windows(2)
        .all(|w| indices[w[0]..w[1]].windows(2).all(|p| p[0] < p[1]));
    if sorted {
        let m = if is_csr {
            CsrMatrix::try_from_csr_data(nrows, ncols, indptr, indices, data)
                .map_err(|e| e.to_string())?
        } else {
            let csc = CscMatrix::try_from_csc_data(nrows, ncols, indptr, indices, data)
                .map_err(|e| e.to_string())?;
            CsrMatrix::from(&csc)
        };
        return Ok(m);
    }
    // unsorted or duplicated indices: through COO, which sums duplicates
    let mut coo = CooMatrix::new(nrows, ncols);
    for (a, w) in indptr.windows(2).enumerate() {
        for k in w[0]..w[1] {
            let (r, c) = if is_csr {
                (a, indices[k])
            } else {
                (indices[k], a)
            };
            coo.push(r, c, data[k]);
        }
    }
    Ok(CsrMatrix::from(&coo))
}

/// Numbers of any integer, float or bool type as f32.
fn numbers_f32(arr: DynArray) -> std::result::Result<Vec<f32>, String> {
    macro_rules! cast {
        ($a:expr) => {
            $a.iter().map(|&v| v as f32).collect()
        };
    }
    Ok(match arr {
        DynArray::F32(a) => a.iter().copied().collect(),
        DynArray::F64(a) => cast!(a),
        DynArray::I8(a) => cast!(a),
        DynArray::I16(a) => cast!(a),
        DynArray::I32(a) => cast!(a),
        DynArray::I64(a) => cast!(a),
        DynArray::U8(a) => cast!(a),
        DynArray::U16(a) => cast!(a),
        DynArray::U32(a) => cast!(a),
        DynArray::U64(a) => cast!(a),
        DynArray::Bool(a) => a.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
        DynArray::String(_) => return Err("holds strings, not numbers".into()),
    })
}

/// Non-negative integers (sparse indices, pointers, categorical codes) as usize.
fn indices_usize(arr: DynArray) -> std::result::Result<Vec<usize>, String> {
    fn conv<T: Copy + TryInto<usize> + std::fmt::Display>(
        a: &ndarray::ArrayD<T>,
    ) -> std::result::Result<Vec<usize>, String> {
        a.iter()
            .enumerate()
            .map(|(i, &v)| {
                v.try_into()
                    .map_err(|_| format!("entry {i} is {v}, not a valid index"))
            })
            .collect()
    }
    match arr {
        DynArray::I8(a) => conv(&a),
        DynArray::I16(a) => conv(&a),
        DynArray::I32(a) => conv(&a),
        DynArray::I64(a) => conv(&a),
        DynArray::U8(a) => conv(&a),
        DynArray::U16(a) => conv(&a),
        DynArray::U32(a) => conv(&a),
        DynArray::U64(a) => conv(&a),
        other => Err(format!("holds {}, not integers", dyn_type_name(&other))),
    }
}

fn dyn_type_name(a: &DynArray) -> &'static str {
    match a {
        DynArray::F32(_) => "f32",
        DynArray::F64(_) => "f64",
        DynArray::Bool(_) => "bools",
        DynArray::String(_) => "strings",
        _ => "integers",
    }
}

/// An index and text columns of an `obs` or `var` data frame.
struct Frame {
    index: Vec<String>,
    columns: Vec<(String, Vec<String>)>,
}

/// The values a dataset's dataspace claims (all dimensions multiplied, saturating).
fn dataset_len(ds: &anndata_hdf5::H5Dataset) -> usize {
    let shape = ds.shape();
    (0..shape.ndim()).fold(1usize, |acc, i| acc.saturating_mul(shape[i]))
}

fn read_frame(g: &H5Group, loc: &Loc<'_>, name: &str, limits: &Limits) -> Result<Frame> {
    if !g.exists(name).unwrap_or(false) {
        return Err(loc.err(name, format!("missing: the file has no `{name}` group")));
    }
    // anndata < 0.7: a compound dataset
    if let Ok(ds) = hdf5::Group::dataset(g, name) {
        return read_legacy_frame(g, &ds, loc, name, limits);
    }
    let group = g.open_group(name).map_err(|_| {
        loc.err(
            name,
            "is neither a data frame group nor a table of records (anndata < 0.7)",
        )
    })?;
    let index_name = string_attr(&group, "_index").unwrap_or_else(|| "_index".into());
    let index_ds = group.open_dataset(&index_name).map_err(|_| {
        loc.err(
            name,
            format!("has no index dataset `{index_name}` (names of its rows)"),
        )
    })?;
    let index_elem = format!("{name}/{index_name}");
    let rows_limit = if name == "var" {
        Limit::Features
    } else {
        Limit::Cells
    };
    loc.check(
        limits,
        rows_limit,
        dataset_len(&index_ds),
        &index_elem,
        "its length",
    )?;
    let index = dataset_strings(&index_ds).map_err(|r| loc.err(&index_elem, r))?;
    let order: Vec<String> = match group.get_json_attr("column-order") {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => group
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| *n != index_name && n != "__categories")
            .collect(),
    };
    loc.check(limits, Limit::ObsColumns, order.len(), name, "its columns")?;
    let mut columns = Vec::new();
    for col in order {
        let elem = format!("{name}/{}", excerpt_str(&col, 60));
        let Some(values) =
            read_column(&group, &col, index.len(), limits).map_err(|r| loc.err(&elem, r))?
        else {
            continue;
        };
        if values.len() != index.len() {
            return Err(loc.err(
                &elem,
                format!("{} values for {} rows", values.len(), index.len()),
            ));
        }
        columns.push((col, values));
    }
    Ok(Frame { index, columns })
}

/// `obs` / `var` as anndata < 0.7 wrote them (`df_to_records_fixed_width`): one compound
/// dataset, a record a row, its first member the index (`index`); a categorical column
/// holds integer codes, its categories are `uns/<column>_categories` and apply, as in
/// anndata's `_clean_uns`, where every code is below their number (-1: missing). Members
/// of other types (arrays, nested records) are skipped like unknown column encodings.
fn read_legacy_frame(
    root: &H5Group,
    ds: &hdf5::Dataset,
    loc: &Loc<'_>,
    name: &str,
    limits: &Limits,
) -> Result<Frame> {
    use hdf5::datatype::ByteOrder;
    use hdf5::types::TypeDescriptor;
    let err = |r: String| loc.err(name, r);
    let shape = ds.shape();
    if shape.len() != 1 {
        return Err(err(format!(
            "a dataset of {} dimensions, not a table of records",
            shape.len()
        )));
    }
    let rows = shape[0];
    let rows_limit = if name == "var" {
        Limit::Features
    } else {
        Limit::Cells
    };
    loc.check(limits, rows_limit, rows, name, "its records")?;
    let dtype = ds
        .dtype()
        .map_err(|e| err(format!("cannot be inspected: {e}")))?;
    let Ok(TypeDescriptor::Compound(compound)) = dtype.to_descriptor() else {
        return Err(err(
            "is a dataset, not a data frame: anndata < 0.7 wrote a table of records (a compound dataset), anndata >= 0.7 a group".into(),
        ));
    };
    if !matches!(
        dtype.byte_order(),
        ByteOrder::LittleEndian | ByteOrder::None
    ) {
        return Err(err(
            "holds big-endian (or mixed-order) records, which this reader does not read".into(),
        ));
    }
    if compound.fields.is_empty() {
        return Err(err("its records have no members (no index)".into()));
    }
    loc.check(
        limits,
        Limit::ObsColumns,
        compound.fields.len() - 1,
        name,
        "its columns",
    )?;
    // member offsets in the file: the library reports them as in memory, where a
    // variable-length string takes 8 bytes less (see `extra_disk_bytes`)
    let mut by_offset: Vec<&hdf5::types::CompoundField> = compound.fields.iter().collect();
    by_offset.sort_by_key(|f| f.offset);
    let mut shift = 0usize;
    let mut placed = Vec::with_capacity(by_offset.len());
    for f in by_offset {
        let extra = crate::hdf5_vet::extra_disk_bytes(&Some(f.ty.clone()));
        placed.push((f.index, f, f.offset + shift, f.ty.size() + extra));
        shift += extra;
    }
    placed.sort_by_key(|p| p.0);
    let item = compound.size + shift;
    if placed.iter().any(|&(_, _, at, size)| at + size > item) || item == 0 {
        return Err(err("its records' members do not fit in a record".into()));
    }
    limits.check(
        Limit::DenseValues,
        rows as u128 * item as u128,
        &loc.at(name),
        "the bytes of its records",
    )?;
    let bytes = crate::hdf5_vet::read_raw_1d(loc.path, ds, rows, item).map_err(err)?;
    let mut heaps = crate::hdf5_vet::GlobalHeaps::new(loc.path, limits)
        .map_err(|e| DataError::io(loc.path, e))?;
    let mut columns = Vec::new();
    let mut index = None;
    for (k, &(_, field, at, size)) in placed.iter().enumerate() {
        let elem = format!("{name} (member `{}`)", excerpt_str(&field.name, 60));
        let column = legacy_column(&bytes, item, rows, at, size, &field.ty, &mut heaps)
            .map_err(|r| loc.err(&elem, r))?;
        if k == 0 {
            let Some((names, _)) = column else {
                return Err(loc.err(
                    &elem,
                    "the index (the first member) is of a type this reader does not read",
                ));
            };
            index = Some(names);
            continue;
        }
        let Some((mut values, codes)) = column else {
            continue;
        };
        if let Some(codes) = codes
            && let Some(categories) = legacy_categories(root, loc, &field.name, limits)?
            && codes.iter().all(|&c| c < categories.len() as i128)
        {
            values = codes
                .iter()
                .map(|&c| {
                    usize::try_from(c).map_or_else(|_| String::new(), |c| categories[c].clone())
                })
                .collect();
        }
        columns.push((field.name.clone(), values));
    }
    Ok(Frame {
        index: index.unwrap_or_default(),
        columns,
    })
}

/// `uns/<column>_categories` (anndata < 0.7), at most `max_cells` of them; `None` when
/// the file has none.
fn legacy_categories(
    root: &H5Group,
    loc: &Loc<'_>,
    column: &str,
    limits: &Limits,
) -> Result<Option<Vec<String>>> {
    let key = format!("{column}_categories");
    let Ok(uns) = root.open_group("uns") else {
        return Ok(None);
    };
    if !uns.exists(&key).unwrap_or(false) {
        return Ok(None);
    }
    let elem = format!("uns/{}", excerpt_str(&key, 60));
    let Ok(ds) = uns.open_dataset(&key) else {
        return Ok(None);
    };
    let len = dataset_len(&ds);
    if len as u64 > limits.max_cells {
        return Err(loc.err(
            &elem,
            format!(
                "{len} categories, over the limit of {} (max_cells)",
                limits.max_cells
            ),
        ));
    }
    dataset_strings(&ds)
        .map(Some)
        .map_err(|r| loc.err(&elem, r))
}

/// A column of anndata < 0.7 as text, and as integers where it holds integers
/// (categorical codes).
type LegacyColumn = (Vec<String>, Option<Vec<i128>>);

/// The values of one member (at byte `at`, `size` bytes in the file) of `rows` records of
/// `item` bytes, as text; integers also as numbers (categorical codes). `None` for a
/// type this reader does not read.
fn legacy_column(
    bytes: &[u8],
    item: usize,
    rows: usize,
    at: usize,
    size: usize,
    ty: &hdf5::types::TypeDescriptor,
    heaps: &mut crate::hdf5_vet::GlobalHeaps<'_>,
) -> std::result::Result<Option<LegacyColumn>, String> {
    use hdf5::types::TypeDescriptor as T;
    let values = (0..rows).map(|r| &bytes[r * item + at..r * item + at + size]);
    let int = |v: &[u8], signed: bool| -> i128 {
        let mut b = [0u8; 16];
        b[..v.len()].copy_from_slice(v);
        if signed && v.last().is_some_and(|&x| x & 0x80 != 0) {
            b[v.len()..].fill(0xff);
        }
        i128::from_le_bytes(b)
    };
    Ok(Some(match ty {
        T::Integer(_) | T::Unsigned(_) if size <= 8 => {
            let signed = matches!(ty, T::Integer(_));
            let codes: Vec<i128> = values.map(|v| int(v, signed)).collect();
            (codes.iter().map(|c| c.to_string()).collect(), Some(codes))
        }
        T::Float(_) if size == 4 => (
            values
                .map(|v| {
                    let x = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                    py_float(f64::from(x), x.to_string())
                })
                .collect(),
            None,
        ),
        T::Float(_) if size == 8 => (
            values
                .map(|v| {
                    let x = f64::from_le_bytes(v.try_into().unwrap_or_default());
                    py_float(x, x.to_string())
                })
                .collect(),
            None,
        ),
        T::Boolean => (
            values
                .map(|v| if v[0] != 0 { "True" } else { "False" }.to_string())
                .collect(),
            None,
        ),
        T::Enum(e) if size <= 8 => (
            values
                .map(|v| {
                    let x = int(v, e.signed);
                    e.members
                        .iter()
                        .find(|m| {
                            i128::from(m.value) == x || (e.signed && m.value as i64 as i128 == x)
                        })
                        .map_or_else(|| x.to_string(), |m| m.name.clone())
                })
                .collect(),
            None,
        ),
        T::FixedAscii(_) | T::FixedUnicode(_) => (
            values
                .map(|v| {
                    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                    String::from_utf8_lossy(&v[..end]).into_owned()
                })
                .collect(),
            None,
        ),
        T::VarLenUnicode | T::VarLenAscii => (
            values
                .map(|v| heaps.string(v))
                .collect::<std::result::Result<_, _>>()?,
            None,
        ),
        _ => return Ok(None),
    }))
}

/// One data-frame column as text; `None` for an encoding this reader does not know.
///
/// Every array is checked against its claimed length before it is read: `rows` values
/// (codes, values, mask), at most `limits.max_cells` categories.
fn read_column(
    frame: &H5Group,
    col: &str,
    rows: usize,
    limits: &Limits,
) -> std::result::Result<Option<Vec<String>>, String> {
    if !frame.exists(col).unwrap_or(false) {
        return Err("listed in column-order but missing".into());
    }
    let rows_of = |ds: &anndata_hdf5::H5Dataset, what: &str| {
        let len = dataset_len(ds);
        if len == rows {
            Ok(())
        } else {
            Err(format!("{what}{len} values for {rows} rows"))
        }
    };
    let categories_of = |ds: &anndata_hdf5::H5Dataset| {
        let len = dataset_len(ds);
        if len as u64 <= limits.max_cells {
            Ok(())
        } else {
            Err(format!(
                "{len} categories, over the limit of {} (max_cells)",
                limits.max_cells
            ))
        }
    };
    if let Ok(ds) = frame.open_dataset(col) {
        rows_of(&ds, "")?;
        // anndata < 0.8: codes here, categories in `__categories/<col>`
        if let Ok(cats) = frame
            .open_group("__categories")
            .and_then(|c| c.open_dataset(col))
        {
            categories_of(&cats)?;
            let codes = ds.read_dyn_array().map_err(|e| format!("{e:#}"))?;
            return categorical(codes, dataset_strings(&cats)?).map(Some);
        }
        return dataset_strings(&ds).map(Some);
    }
    let group = frame.open_group(col).map_err(|e| format!("{e:#}"))?;
    match string_attr(&group, "encoding-type").as_deref() {
        Some("categorical") => {
            let codes = group
                .open_dataset("codes")
                .map_err(|e| format!("codes: {e:#}"))?;
            rows_of(&codes, "codes: ")?;
            let codes = codes
                .read_dyn_array()
                .map_err(|e| format!("codes: {e:#}"))?;
            let cats = group
                .open_dataset("categories")
                .map_err(|e| format!("categories: {e:#}"))?;
            categories_of(&cats)?;
            categorical(codes, dataset_strings(&cats)?).map(Some)
        }
        Some("nullable-integer" | "nullable-boolean" | "nullable-string-array") => {
            let values = group
                .open_dataset("values")
                .map_err(|e| format!("values: {e:#}"))?;
            rows_of(&values, "values: ")?;
            let values = dataset_strings(&values)?;
            let mask = group
                .open_dataset("mask")
                .map_err(|e| format!("mask: {e:#}"))?;
            rows_of(&mask, "mask: ")?;
            let mask = mask.read_dyn_array().map_err(|e| format!("mask: {e:#}"))?;
            let DynArray::Bool(mask) = mask else {
                return Err("mask is not boolean".into());
            };
            if mask.len() != values.len() {
                return Err("mask and values differ in length".into());
            }
            Ok(Some(
                values
                    .into_iter()
                    .zip(mask.iter())
                    .map(|(v, &m)| if m { String::new() } else { v })
                    .collect(),
            ))
        }
        _ => Ok(None),
    }
}

/// Codes (-1 = missing, shown as an empty string) to category names.
fn categorical(
    codes: DynArray,
    categories: Vec<String>,
) -> std::result::Result<Vec<String>, String> {
    let codes: Vec<i64> = match codes {
        DynArray::I8(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I16(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I32(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I64(a) => a.iter().copied().collect(),
        DynArray::U8(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::U16(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::U32(a) => a.iter().map(|&v| v.into()).collect(),
        other => return Err(format!("categorical codes are {}", dyn_type_name(&other))),
    };
    codes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if c < 0 {
                Ok(String::new())
            } else {
                categories.get(c as usize).cloned().ok_or_else(|| {
                    format!(
                        "code {c} of row {i} is outside the {} categories",
                        categories.len()
                    )
                })
            }
        })
        .collect()
}

/// Any 1-D dataset as text: strings (variable or fixed length) as they are, numbers as
/// Python prints them (`1.0`, `nan`), booleans as `True` / `False`.
fn dataset_strings(ds: &anndata_hdf5::H5Dataset) -> std::result::Result<Vec<String>, String> {
    if let Some(strings) = crate::tenx::read_strings(ds).map_err(|e| e.to_string())? {
        return Ok(strings);
    }
    let arr = ds.read_dyn_array().map_err(|e| format!("{e:#}"))?;
    Ok(match arr {
        DynArray::String(a) => a.iter().cloned().collect(),
        DynArray::Bool(a) => a
            .iter()
            .map(|&b| if b { "True" } else { "False" }.to_string())
            .collect(),
        DynArray::F32(a) => a
            .iter()
            .map(|&v| py_float(v as f64, v.to_string()))
            .collect(),
        DynArray::F64(a) => a.iter().map(|&v| py_float(v, v.to_string())).collect(),
        DynArray::I8(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I16(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I32(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I64(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U8(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U16(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U32(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U64(a) => a.iter().map(|v| v.to_string()).collect(),
    })
}

/// `shortest` (the shortest text that reads back the same value) in Python's spelling.
fn py_float(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if !shortest.contains(['.', 'e', 'E']) && v.abs() < 1e16 {
        format!("{shortest}.0")
    } else {
        shortest
    }
}

/// A string attribute (variable or fixed length); `None` when absent or not a string.
fn string_attr(loc: &H5Group, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    crate::tenx::read_attr_string(&attr)
}

fn summarize(g: &H5Group, loc: &Loc<'_>) -> Result<Summary> {
    let obs = read_frame(g, loc, "obs", &Limits::default())?;
    let var = read_frame(g, loc, "var", &Limits::default())?;
    let x = if g.exists("X").unwrap_or(false) {
        Some(match open_container(g, "X", loc)? {
            DataContainer::Dataset(ds) => format!(
                "array {}",
                ds.dtype()
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| "?".into())
            ),
            DataContainer::Group(gr) => {
                let enc = string_attr(&gr, "encoding-type")
                    .or_else(|| string_attr(&gr, "h5sparse_format").map(|f| format!("{f}_matrix")))
                    .unwrap_or_else(|| "group".into());
                let ty = gr
                    .open_dataset("data")
                    .and_then(|d| d.dtype())
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| "?".into());
                format!("{enc} {ty}")
            }
            DataContainer::Null => "null".into(),
        })
    } else {
        None
    };
    let obsm = match g.open_group("obsm") {
        Ok(group) => group
            .list()
            .unwrap_or_default()
            .into_iter()
            .map(|k| {
                let shape = group
                    .open_dataset(&k)
                    .map(|d| d.shape().as_ref().to_vec())
                    .unwrap_or_default();
                (k, shape)
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    Ok(Summary {
        n_obs: obs.index.len(),
        n_vars: var.index.len(),
        x,
        layers: list_group(g, "layers"),
        obsm,
        obs_columns: obs.columns.into_iter().map(|(n, _)| n).collect(),
        var_columns: var.columns.into_iter().map(|(n, _)| n).collect(),
        uns: list_group(g, "uns"),
    })
}

// ---------------------------------------------------------------------------------------
// writing

fn check_for_write(
    path: &Path,
    x: Option<Matrix<'_>>,
    cells: &CellTable,
    var_names: &[String],
    obsm: &[(&str, ArrayView2<'_, f32>)],
) -> Result<()> {
    let what = |s: &str| format!("{} (writing {s})", path.display());
    if cells.is_empty() {
        return Err(DataError::Empty {
            what: what("obs"),
            reason: "no cells".into(),
        });
    }
    if let Some(x) = x {
        let (r, c) = x.shape();
        if (r, c) != (cells.len(), var_names.len()) {
            return Err(DataError::invalid(
                what("X"),
                format!(
                    "X is {r} x {c}, but there are {} cells and {} var_names",
                    cells.len(),
                    var_names.len()
                ),
            ));
        }
        let bad = match x {
            Matrix::Sparse(m) => m
                .triplet_iter()
                .find(|(_, _, v)| !v.is_finite())
                .map(|(r, c, v)| (r, c, *v)),
            Matrix::Dense(m) => m
                .indexed_iter()
                .find(|(_, v)| !v.is_finite())
                .map(|((r, c), v)| (r, c, *v)),
        };
        if let Some((row, col, value)) = bad {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                what: "X (writing)".into(),
                row,
                col,
                value,
            });
        }
    } else if !var_names.is_empty() {
        return Err(DataError::invalid(
            what("var"),
            "var_names without an X matrix",
        ));
    }
    let mut seen = HashSet::new();
    for b in cells.barcodes() {
        if !seen.insert(b.as_str()) {
            return Err(DataError::invalid(
                what("obs"),
                format!("barcode `{b}` occurs twice"),
            ));
        }
    }
    let column_texts: Vec<String> = cells
        .column_names()
        .flat_map(|n| cells.column(n).unwrap_or_default())
        .collect();
    let texts = cells
        .barcodes()
        .iter()
        .chain(var_names)
        .chain(&column_texts);
    for t in texts {
        if t.contains('\0') {
            return Err(DataError::invalid(
                what("text"),
                format!("`{}` contains a NUL character", t.escape_debug()),
            ));
        }
    }
    for name in cells.column_names() {
        if name.is_empty() || name.contains(['/', '\0']) || name == "_index" {
            return Err(DataError::invalid(
                what("obs"),
                format!("`{name}` is not a valid column name"),
            ));
        }
    }
    let mut keys = HashSet::new();
    for (key, emb) in obsm {
        if key.is_empty() || key.contains(['/', '\0']) || !keys.insert(*key) {
            return Err(DataError::invalid(
                what("obsm"),
                format!("`{key}` is not a valid (unique, no `/`) key"),
            ));
        }
        if emb.nrows() != cells.len() {
            return Err(DataError::invalid(
                what(&format!("obsm/{key}")),
                format!("{} rows for {} cells", emb.nrows(), cells.len()),
            ));
        }
        if let Some(((row, col), value)) = emb.indexed_iter().find(|(_, v)| !v.is_finite()) {
            return Err(DataError::NonFinite {
                path: path.to_path_buf(),
                what: format!("obsm/{key} (writing)"),
                row,
                col,
                value: *value,
            });
        }
    }
    Ok(())
}

/// Restores the thread's anndata write settings when dropped.
struct WriteSettings(WriteConfig);

impl Drop for WriteSettings {
    fn drop(&mut self) {
        set_default_write_config(self.0.clone());
    }
}

/// Opens the file just written by anndata again for writing. Rarely (seen with several
/// writers in one process) HDF5 still holds the closed file's lock for a moment and the
/// open fails with EAGAIN ("unable to lock file"); that one error is retried for up to a
/// second.
fn reopen_rw(path: &Path) -> std::result::Result<<H5 as Backend>::Store, String> {
    let mut attempt = 0;
    loop {
        match H5::open_rw(path).map_err(|e| format!("{e:#}")) {
            Err(e) if attempt < 50 && e.contains("unable to lock file") => {
                attempt += 1;
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
}

fn write_file(
    tmp: &Path,
    target: &Path,
    x: Option<Matrix<'_>>,
    cells: &CellTable,
    var_names: &[String],
    obsm: &[(&str, ArrayView2<'_, f32>)],
) -> Result<()> {
    let fail = |step: &str, e: &dyn std::fmt::Display| {
        DataError::invalid(
            target.display().to_string(),
            format!("writing {step} failed: {e:#}"),
        )
    };
    let _restore = WriteSettings(get_default_write_config());
    set_default_write_config(WriteConfig {
        compression: Some(Compression::Gzip(4)),
        block_size: None,
    });
    let adata = AnnData::<H5>::new(tmp).map_err(|e| fail("the file", &e))?;
    adata
        .set_n_obs(cells.len())
        .and_then(|()| adata.set_n_vars(var_names.len()))
        .map_err(|e| fail("the shape", &e))?;
    adata
        .set_obs_names(cells.barcodes().to_vec().into())
        .map_err(|e| fail("obs_names", &e))?;
    adata
        .set_var_names(var_names.to_vec().into())
        .map_err(|e| fail("var_names", &e))?;
    match x {
        Some(Matrix::Sparse(m)) => adata.set_x(m.clone()),
        Some(Matrix::Dense(m)) => adata.set_x(m.to_owned()),
        None => Ok(()),
    }
    .map_err(|e| fail("X", &e))?;
    for (key, emb) in obsm {
        adata
            .obsm()
            .add(key, emb.to_owned())
            .map_err(|e| fail(&format!("obsm/{key}"), &e))?;
    }
    adata.close().map_err(|e| fail("the file", &e))?;

    // obs columns through the backend: numbers as number arrays, everything else
    // (text, booleans) as categoricals, as Python anndata stores labels
    let names: Vec<&str> = cells.column_names().collect();
    if !names.is_empty() {
        let file = reopen_rw(tmp).map_err(|e| fail("obs", &e))?;
        let mut obs = file.open_group("obs").map_err(|e| fail("obs", &e))?;
        for name in &names {
            let written = match cells.numeric_column(name) {
                Some(numbers) => ndarray::Array1::from_vec(numbers).write(&obs, name),
                None => {
                    let values = cells.column(name).unwrap_or_default();
                    let cat: CategoricalArray = values.iter().map(|v| Some(v.as_str())).collect();
                    cat.write(&obs, name)
                }
            };
            written.map_err(|e| fail(&format!("obs/{name}"), &e))?;
        }
        let order: Vec<Value> = names.iter().map(|n| Value::from(*n)).collect();
        obs.new_json_attr("column-order", &Value::Array(order))
            .map_err(|e| fail("obs column-order", &e))?;
        drop(obs);
        file.close().map_err(|e| fail("the file", &e))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn triplets(m: &CsrMatrix<f32>) -> Vec<(usize, usize, f32)> {
        m.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect()
    }

    #[test]
    fn csc_unsorted_duplicates_and_zeros_become_canonical_csr() {
        // 2 x 3, CSC: column 0 = {row 1: 2}, column 1 = {}, column 2 = {row 0: 1, row 1: 0}
        let m = compressed_to_csr(
            false,
            2,
            3,
            vec![0, 1, 1, 3],
            vec![1, 0, 1],
            vec![2.0, 1.0, 0.0],
        )
        .unwrap();
        assert_eq!(triplets(&m), vec![(0, 2, 1.0), (1, 0, 2.0)]);
        // CSR with unsorted and duplicated column indices: duplicates add up
        let m =
            compressed_to_csr(true, 1, 3, vec![0, 3], vec![2, 0, 2], vec![1.0, 4.0, 2.0]).unwrap();
        assert_eq!(triplets(&m), vec![(0, 0, 4.0), (0, 2, 3.0)]);
    }

    #[test]
    fn inconsistent_arrays_are_errors() {
        let e = compressed_to_csr(true, 2, 2, vec![0, 1], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr has 2 entries"), "{e}");
        let e = compressed_to_csr(true, 1, 2, vec![0, 2], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr runs from 0 to 2"), "{e}");
        let e = compressed_to_csr(true, 2, 2, vec![0, 2, 1], vec![0], vec![1.0]).unwrap_err();
        assert!(e.contains("indptr"), "{e}");
        let e = compressed_to_csr(false, 2, 1, vec![0, 1], vec![5], vec![1.0]).unwrap_err();
        assert!(e.contains("outside the 2 rows"), "{e}");
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        assert_eq!(py_float(1.0, 1.0f64.to_string()), "1.0");
        assert_eq!(py_float(2.5, 2.5f64.to_string()), "2.5");
        assert_eq!(py_float(f64::NAN, String::new()), "nan");
        assert_eq!(py_float(f64::NEG_INFINITY, String::new()), "-inf");
        assert_eq!(py_float(0.1f32 as f64, 0.1f32.to_string()), "0.1");
    }
}
