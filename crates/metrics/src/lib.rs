//! Evaluation metrics for paired single-cell multi-omics, on `ndarray` inputs (no tch).
//!
//! Conventions: matrices are `ArrayView2<f32>` with cells in rows (embeddings, predictions);
//! labels are `&[usize]` codes; accumulation is in f64 and results are f64. Every metric
//! validates its inputs and returns [`MetricError`] instead of panicking; degenerate inputs
//! either get the documented value (e.g. ARI of two single-cluster labelings is 1) or a
//! [`MetricError::Degenerate`]. Each function's doc states its maths and the reference
//! implementation (scikit-learn, scipy, scib, harmony) it matches; `README.md` has the table.
//!
//! Modules:
//! - [`clustering`]: ARI, NMI, AMI, k-means; Leiden/Louvain re-exported from [`community`].
//! - [`community`]: kNN graph connectivities, Louvain, Leiden, resolution search.
//! - [`knn`]: exact and approximate neighbours, kNN label transfer (accuracy, macro F1).
//! - [`silhouette`]: silhouette, cell-type ASW and batch ASW (scib).
//! - [`integration`]: graph connectivity (scib), iLISI/cLISI (harmony + scib scaling).
//! - [`alignment`]: FOSCTTM, top-k matching accuracy.
//! - [`prediction`]: Pearson/Spearman/RMSE/MAE for RNA, AUROC/AUPRC for ATAC.
//! - [`stats`]: the paired t-test over seeds (scipy's `ttest_rel`).

pub mod alignment;
pub mod clustering;
pub mod community;
pub mod error;
pub mod integration;
pub mod knn;
pub mod prediction;
pub mod silhouette;
pub mod stats;
mod util;

pub use error::MetricError;
