//! Writing an `.h5ad` that Python anndata reads: checked input, written through
//! `AnnData::<H5>` to a temporary name and renamed into place.

use std::collections::HashSet;
use std::path::Path;

use anndata::backend::{
    AttributeOp, Backend, Compression, GroupOp, StoreOp, Value, WriteConfig,
    get_default_write_config, set_default_write_config,
};
use anndata::data::CategoricalArray;
use anndata::{AnnData, AnnDataOp, AxisArraysOp, Writable};
use anndata_hdf5::H5;
use nalgebra_sparse::CsrMatrix;
use ndarray::{Array2, ArrayView2};

use super::open::guard;
use crate::dataset::CellTable;
use crate::error::{DataError, Result};

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
    crossomics_atomic::write_with(
        path,
        |tmp| guard(path, || write_file(tmp, path, x, cells, var_names, obsm)),
        |e| DataError::io(path, e),
    )
}

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
