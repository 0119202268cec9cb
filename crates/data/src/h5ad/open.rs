//! Opening an HDF5 file safely (vetted first, a panic below caught) and naming the places
//! inside it that errors point at.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use anndata::backend::{Backend, DataContainer, DatasetOp, GroupOp};
use anndata_hdf5::{H5, H5Group};
use crossomics_limits::{Limit, Limits};

use crate::error::{DataError, Result};

/// A file and a place in it, for error messages (`data.h5mu:/mod/rna/X`).
pub(super) struct Loc<'a> {
    pub(super) path: &'a Path,
    pub(super) prefix: String,
}

impl<'a> Loc<'a> {
    pub(super) fn new(path: &'a Path, prefix: &str) -> Self {
        Self {
            path,
            prefix: prefix.to_string(),
        }
    }

    pub(super) fn at(&self, elem: &str) -> String {
        format!("{}:/{}{}", self.path.display(), self.prefix, elem)
    }

    /// An error at `elem`; the reason is cut to one short, escaped excerpt, since it may
    /// quote the HDF5 library or the file.
    pub(super) fn err(&self, elem: &str, reason: impl Into<String>) -> DataError {
        DataError::invalid(self.at(elem), crate::hdf5_vet::short(&reason.into()))
    }

    /// `claimed` checked against one of `limits`, naming `elem`.
    pub(super) fn check(
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

    /// `rows x width` values (or bytes) checked against `max_dense_values`, naming `elem`.
    pub(super) fn check_dense(
        &self,
        limits: &Limits,
        rows: usize,
        width: usize,
        elem: &str,
        what: &str,
    ) -> Result<()> {
        limits
            .check(
                Limit::DenseValues,
                rows as u128 * width as u128,
                &self.at(elem),
                what,
            )
            .map_err(DataError::from)
    }

    /// `Ok` when `group` has a member `name`, else an error at `elem` that lists the
    /// members: `no such {what}; {holder} has: a, b`.
    pub(super) fn require_member(
        &self,
        group: &H5Group,
        name: &str,
        elem: &str,
        what: &str,
        holder: &str,
    ) -> Result<()> {
        if group.exists(name).unwrap_or(false) {
            return Ok(());
        }
        let names = group.list().unwrap_or_default();
        Err(self.err(
            elem,
            format!("no such {what}; {holder} has: {}", list_or_none(&names)),
        ))
    }

    pub(super) fn elem(&self, elem: &str) -> String {
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
pub(super) fn open(path: &Path, limits: &Limits) -> Result<<H5 as Backend>::Store> {
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

pub(super) fn root_group(file: &<H5 as Backend>::Store, path: &Path) -> Result<H5Group> {
    file.open_group("/").map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!("cannot open the root group: {e:#}"),
        )
    })
}

pub(super) fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

pub(super) fn list_group(g: &H5Group, name: &str) -> Vec<String> {
    g.open_group(name)
        .and_then(|l| l.list())
        .unwrap_or_default()
}

pub(super) fn open_container(g: &H5Group, name: &str, loc: &Loc<'_>) -> Result<DataContainer<H5>> {
    DataContainer::open(g, name).map_err(|e| loc.err(name, format!("cannot be opened: {e:#}")))
}

/// A string attribute (variable or fixed length); `None` when absent or not a string.
pub(super) fn string_attr(loc: &H5Group, name: &str) -> Option<String> {
    let attr = loc.attr(name).ok()?;
    crate::tenx::read_attr_string(&attr)
}

/// The values a dataset's dataspace claims (all dimensions multiplied, saturating).
pub(super) fn dataset_len(ds: &anndata_hdf5::H5Dataset) -> usize {
    let shape = ds.shape();
    (0..shape.ndim()).fold(1usize, |acc, i| acc.saturating_mul(shape[i]))
}
