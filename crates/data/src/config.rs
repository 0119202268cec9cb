//! The serde structs of the `[dataset]` and `[preprocessing]` config sections.
//! Unknown keys are errors, so a typo in a TOML file names the key.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dataset::PairedDataset;
use crate::error::Result;
#[cfg(feature = "h5ad")]
use crate::h5ad;
use crate::pair::PairingConfig;

/// Where the paired data comes from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "format", rename_all = "snake_case", deny_unknown_fields)]
pub enum DatasetConfig {
    /// A dataset compiled into crossomics (`bmmc_multiome_starter`).
    Bundled { name: String },
    /// A folder in the plain layout (MatrixMarket + tsv, see `docs/datasets.md`).
    Plain { path: PathBuf },
    /// Two AnnData files of the same cells, one per modality, paired by barcode.
    H5ad {
        rna: PathBuf,
        atac: PathBuf,
        /// Read `layers/<layer>` instead of `X` (e.g. `counts` where `X` is normalized).
        #[serde(default)]
        layer: Option<String>,
        /// Entries must be non-negative integers (the models expect raw counts).
        #[serde(default = "yes")]
        require_counts: bool,
        /// Barcode suffixes/prefixes to strip before pairing (e.g. `["_rna", "_atac"]`).
        #[serde(default)]
        pairing: PairingConfig,
    },
    /// A MuData file with one AnnData per modality under `/mod/<name>`.
    H5mu {
        path: PathBuf,
        #[serde(default = "rna_mod")]
        rna_mod: String,
        #[serde(default = "atac_mod")]
        atac_mod: String,
        #[serde(default)]
        layer: Option<String>,
        #[serde(default = "yes")]
        require_counts: bool,
        #[serde(default)]
        pairing: PairingConfig,
    },
    /// A 10x Genomics Cell Ranger ARC `filtered_feature_bc_matrix.h5`.
    TenxH5 { path: PathBuf },
}

fn yes() -> bool {
    true
}

fn rna_mod() -> String {
    "rna".into()
}

fn atac_mod() -> String {
    "atac".into()
}

impl Default for DatasetConfig {
    fn default() -> Self {
        Self::Bundled {
            name: "bmmc_multiome_starter".into(),
        }
    }
}

#[cfg(feature = "h5ad")]
fn file_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl DatasetConfig {
    /// Reads the dataset. Relative paths are taken from `base` (the config file's folder).
    pub fn load(&self, base: &std::path::Path) -> Result<PairedDataset> {
        match self {
            Self::Bundled { name } => crate::sample::load(name),
            Self::Plain { path } => crate::plain::read_dir(&base.join(path)),
            Self::H5ad { .. } | Self::H5mu { .. } | Self::TenxH5 { .. } => self.load_hdf5(base),
        }
    }
}

impl DatasetConfig {
    #[cfg(feature = "h5ad")]
    fn load_hdf5(&self, base: &std::path::Path) -> Result<PairedDataset> {
        match self {
            Self::H5ad {
                rna,
                atac,
                layer,
                require_counts,
                pairing,
            } => {
                let rna = base.join(rna);
                let opts = h5ad::ReadOptions {
                    layer: layer.clone(),
                    require_counts: *require_counts,
                };
                let name = file_stem(&rna);
                Ok(h5ad::read_pair(&name, &rna, &base.join(atac), &opts, pairing)?.0)
            }
            Self::H5mu {
                path,
                rna_mod,
                atac_mod,
                layer,
                require_counts,
                pairing,
            } => {
                let path = base.join(path);
                let opts = h5ad::ReadOptions {
                    layer: layer.clone(),
                    require_counts: *require_counts,
                };
                let name = file_stem(&path);
                Ok(h5ad::read_h5mu(&name, &path, rna_mod, atac_mod, &opts, pairing)?.0)
            }
            Self::TenxH5 { path } => crate::tenx::read_h5(&base.join(path)),
            _ => unreachable!("only HDF5 formats are routed here"),
        }
    }

    #[cfg(not(feature = "h5ad"))]
    fn load_hdf5(&self, _base: &std::path::Path) -> Result<PairedDataset> {
        Err(crate::error::DataError::invalid(
            "dataset format",
            "h5ad / h5mu / 10x .h5 support is not compiled in: build with `--features h5ad` \
             (needs CMake >= 3.26, see scripts/setup-cmake.sh)",
        ))
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
