//! Figures of crossomics runs, as PNG files: per-epoch loss curves and 2-D layouts of an
//! embedding coloured by a cell label (cell type, batch). The layout is UMAP
//! ([`umap::layout`]) on the kNN graph that `crossomics-metrics` builds. No tch.

pub mod figure;
pub mod umap;

pub use figure::{loss_curves, metric_bars, scatter};

/// Errors of layout and drawing; they name the file being written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("layout: {0}")]
    Layout(#[from] crossomics_metrics::MetricError),
    #[error("{path}: {reason}")]
    Draw {
        path: std::path::PathBuf,
        reason: String,
    },
    #[error("plot input: {0}")]
    Input(String),
}
