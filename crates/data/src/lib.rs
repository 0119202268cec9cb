//! Paired single-cell multi-omics data for crossomics.
//!
//! Data flows one way through this crate: files ([`mtx`], [`plain`]) become a
//! [`PairedDataset`] (RNA and ATAC counts of the same cells as CSR matrices, with cell,
//! gene and peak tables), [`preprocess`] turns counts into model inputs, [`split`] makes
//! honest train/validation/test partitions and [`batches`] feeds minibatches to a trainer.
//! Nothing here depends on tch.

pub mod annotation;
pub mod batches;
pub mod cells;
pub mod config;
pub mod dataset;
pub mod error;
pub mod fitted;
pub mod fragments;
pub mod genome;
pub mod h5ad;
pub mod hdf5_vet;
pub mod hvg;
pub mod input;
pub mod loader;
pub mod mtx;
pub mod pair;
pub mod pca;
pub mod plain;
pub mod preprocess;
pub mod sample;
pub mod simulate;
pub mod split;
pub mod tables;
pub mod tenx;
pub mod text;
pub mod transfer;

pub use dataset::{CellTable, PairedDataset};
pub use error::DataError;
pub use genome::Peak;

/// Sparse count matrix, cells x features, compressed rows.
pub type Csr = nalgebra_sparse::CsrMatrix<f32>;
