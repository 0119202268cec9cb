//! What an AnnData file (or `.h5mu` modality) holds, without reading its matrices.

use std::path::Path;

use anndata::backend::{DataContainer, DatasetOp, GroupOp};
use anndata_hdf5::H5Group;
use crossomics_limits::Limits;

use super::frame::read_frame;
use super::h5mu::mod_group;
use super::open::{Loc, guard, list_group, open, open_container, root_group};
use super::read::matrix_encoding;
use crate::error::Result;

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
                let enc = matrix_encoding(&gr).unwrap_or_else(|| "group".into());
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
