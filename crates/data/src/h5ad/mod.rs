//! AnnData `.h5ad` and MuData `.h5mu` files, read and written with the `anndata` crate
//! (scverse/anndata-rs) and its HDF5 backend `anndata-hdf5`.
//!
//! One modality per file (or per `/mod/<name>` group of an `.h5mu`): `X` (or a layer) as
//! CSR, CSC or dense of any integer or float type becomes a `CsrMatrix<f32>` (explicit
//! zeros dropped), `obs_names` the barcodes, the `obs` columns text columns of a
//! [`CellTable`](crate::CellTable) (categoricals as their category names), `var_names` the features.
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

mod arrays;
mod frame;
mod h5mu;
mod inspect;
mod legacy;
mod open;
mod read;
mod write;

use crossomics_limits::Limits;

pub(crate) use arrays::compressed_to_csr;
pub use h5mu::{mods, read_h5mu, read_mod};
pub use inspect::{Summary, inspect, inspect_mod};
pub(crate) use open::guard;
pub use read::{parse_peaks, read, read_obsm, read_pair, read_var_column, read_with};
pub use write::{Matrix, write};

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
