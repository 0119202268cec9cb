//! The serde structs of the `[dataset]` and `[preprocessing]` config sections.
//! Unknown keys are errors, so a typo in a TOML file names the key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dataset::PairedDataset;
use crate::error::Result;

/// Where the paired data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// A dataset compiled into crossomics (`bmmc_multiome_starter`).
    Bundled { name: String },
    /// A folder in the plain layout (MatrixMarket + tsv, see `docs/datasets.md`).
    Plain { path: PathBuf },
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self::Bundled {
            name: "bmmc_multiome_starter".into(),
        }
    }
}

impl DatasetConfig {
    /// Reads the dataset. Relative paths are taken from `base` (the config file's folder).
    pub fn load(&self, base: &std::path::Path) -> Result<PairedDataset> {
        match self {
            Self::Bundled { name } => crate::sample::load(name),
            Self::Plain { path } => crate::plain::read_dir(&base.join(path)),
        }
    }
}

/// Preprocessing applied before training (the quickstart set; each step in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessConfig {
    /// Cell QC: keep cells with at least this many genes detected ...
    pub min_genes: usize,
    /// ... at most this many ...
    pub max_genes: Option<usize>,
    /// ... and at least this many peaks open.
    pub min_peaks: usize,
    /// Keep genes detected in at least this many cells.
    pub rna_min_cells: usize,
    /// Keep peaks open in at least this many cells ...
    pub atac_min_cells: usize,
    /// ... and in at most this fraction of cells.
    pub atac_max_fraction: f64,
    /// Size-factor target of RNA normalization; the median library size when absent.
    pub rna_target_sum: Option<f64>,
    /// Components of the RNA PCA (the SAILERX alignment target).
    pub rna_pca_components: usize,
}

impl Default for PreprocessConfig {
    fn default() -> Self {
        Self {
            min_genes: 0,
            max_genes: None,
            min_peaks: 0,
            rna_min_cells: 3,
            atac_min_cells: 3,
            atac_max_fraction: 1.0,
            rna_target_sum: None,
            rna_pca_components: 50,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_errors_that_name_the_key() {
        let err = toml::from_str::<PreprocessConfig>("rna_min_cell = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("rna_min_cell"), "{err}");
        let err = toml::from_str::<DatasetConfig>("format = \"plain\"\npth = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pth"), "{err}");
        let d: DatasetConfig = toml::from_str("format = \"plain\"\npath = \"x\"").unwrap();
        assert_eq!(d, DatasetConfig::Plain { path: "x".into() });
    }
}
