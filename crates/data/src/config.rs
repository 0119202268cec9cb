//! The serde structs of the `[dataset]` and `[preprocessing]` config sections.
//! Unknown keys are errors, so a typo in a TOML file names the key.

use crossomics_limits::Limits;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::dataset::PairedDataset;
use crate::error::Result;
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
    /// Any paired file or folder of a format the input registry detects
    /// ([`crate::input::Registry::builtin`]).
    Auto { path: PathBuf },
    /// A 10x Genomics Cell Ranger ARC matrix folder (`filtered_feature_bc_matrix/`:
    /// `matrix.mtx.gz`, `features.tsv.gz`, `barcodes.tsv.gz`).
    TenxMtx { path: PathBuf },
    /// RNA counts plus a 10x ATAC fragments file (`fragments.tsv.gz`), counted into peaks
    /// per RNA cell barcode ([`crate::fragments::read_paired`]).
    Fragments {
        /// A 10x `filtered_feature_bc_matrix.h5` or folder (its `Gene Expression`
        /// features), or an `.h5ad` of raw counts; its barcodes are the cells.
        rna: PathBuf,
        /// The fragments file (BGZF with a tabix index beside it, gzip or plain text).
        fragments: PathBuf,
        /// A BED file of the peaks to count; by default the peaks of a 10x Multiome `rna`.
        #[serde(default)]
        peaks: Option<PathBuf>,
    },
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

fn read_options(
    layer: &Option<String>,
    require_counts: bool,
    limits: &Limits,
) -> h5ad::ReadOptions {
    h5ad::ReadOptions {
        layer: layer.clone(),
        require_counts,
        limits: *limits,
    }
}

fn file_stem(path: &std::path::Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

impl DatasetConfig {
    /// Reads the dataset under the input `limits`. Relative paths are taken from `base`
    /// (the config file's folder).
    pub fn load(&self, base: &std::path::Path, limits: &Limits) -> Result<PairedDataset> {
        match self {
            Self::Bundled { name } => crate::sample::load(name),
            Self::Plain { path } => crate::plain::read_dir(&base.join(path), limits),
            Self::TenxMtx { path } => crate::tenx::read_mtx_dir(&base.join(path), limits),
            Self::Auto { path } => {
                crate::input::Registry::builtin().read_paired(&base.join(path), limits)
            }
            Self::Fragments {
                rna,
                fragments,
                peaks,
            } => crate::fragments::read_paired(
                &base.join(rna),
                &base.join(fragments),
                peaks.as_ref().map(|p| base.join(p)).as_deref(),
                limits,
            ),
            Self::H5ad { .. } | Self::H5mu { .. } | Self::TenxH5 { .. } => {
                self.load_hdf5(base, limits)
            }
        }
    }
}

impl DatasetConfig {
    fn load_hdf5(&self, base: &std::path::Path, limits: &Limits) -> Result<PairedDataset> {
        match self {
            Self::H5ad {
                rna,
                atac,
                layer,
                require_counts,
                pairing,
            } => {
                let rna = base.join(rna);
                let opts = read_options(layer, *require_counts, limits);
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
                let opts = read_options(layer, *require_counts, limits);
                let name = file_stem(&path);
                Ok(h5ad::read_h5mu(&name, &path, rna_mod, atac_mod, &opts, pairing)?.0)
            }
            Self::TenxH5 { path } => crate::tenx::read_h5(&base.join(path), limits),
            _ => unreachable!("only HDF5 formats are routed here"),
        }
    }
}

/// Preprocessing: an ordered list of steps, fitted on the training data and replayed
/// unchanged on new data ([`crate::fitted::FittedPreprocessing`]).
///
/// ```toml
/// [[preprocessing.steps]]
/// step = "filter_genes"
/// min_cells = 3
/// [[preprocessing.steps]]
/// step = "rna_pca"
/// n_components = 50
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PreprocessConfig {
    pub steps: Vec<Step>,
    /// Fit every step on all cells, held-out ones included, instead of the training cells
    /// only (the default). Tables name such runs `[transductive]`.
    pub transductive: bool,
}

impl Default for PreprocessConfig {
    /// Gene and peak filters (>= 3 cells), size factors + log1p, a 50-component RNA PCA,
    /// binarized peaks: the SAILERX inputs.
    fn default() -> Self {
        Self {
            steps: vec![
                Step::FilterGenes {
                    min_cells: 3,
                    max_fraction: 1.0,
                },
                Step::FilterPeaks {
                    min_cells: 3,
                    max_fraction: 1.0,
                    autosomes_only: false,
                },
                Step::NormalizeRna { target_sum: None },
                Step::RnaPca { n_components: 50 },
                Step::BinarizeAtac,
            ],
            transductive: false,
        }
    }
}

impl PreprocessConfig {
    /// Components of the RNA PCA step, if there is one.
    pub fn rna_pca_components(&self) -> Option<usize> {
        self.steps.iter().find_map(|s| match s {
            Step::RnaPca { n_components } => Some(*n_components),
            _ => None,
        })
    }
}

fn one() -> f64 {
    1.0
}

fn span() -> f64 {
    0.3
}

fn tfidf_scale() -> f64 {
    1e4
}

/// One preprocessing step. Cell QC removes cells; filters and highly variable genes
/// remove features; the others transform values or add a reduced representation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case", deny_unknown_fields)]
pub enum Step {
    /// Keep cells with `min_genes..=max_genes` genes detected and `min_peaks..=max_peaks`
    /// peaks open (BABEL keeps 200-7000 genes).
    CellQc {
        #[serde(default)]
        min_genes: usize,
        #[serde(default)]
        max_genes: Option<usize>,
        #[serde(default)]
        min_peaks: usize,
        #[serde(default)]
        max_peaks: Option<usize>,
    },
    /// Keep genes detected in at least `min_cells` cells and at most `max_fraction` of them.
    FilterGenes {
        #[serde(default)]
        min_cells: usize,
        #[serde(default = "one")]
        max_fraction: f64,
    },
    /// Keep peaks open in `min_cells` cells and at most `max_fraction` of them; with
    /// `autosomes_only`, only peaks on chr1-22 (drops X, Y, M and unplaced contigs).
    FilterPeaks {
        #[serde(default)]
        min_cells: usize,
        #[serde(default = "one")]
        max_fraction: f64,
        #[serde(default)]
        autosomes_only: bool,
    },
    /// Highly variable genes, Seurat v3 flavour (on counts: put it before
    /// `normalize_rna`); per batch when `batch_column` is given.
    HighlyVariableGenes {
        n_top_genes: usize,
        #[serde(default = "span")]
        span: f64,
        #[serde(default)]
        batch_column: Option<String>,
    },
    /// Size factors to `target_sum` (the training median when absent), then log1p.
    NormalizeRna {
        #[serde(default)]
        target_sum: Option<f64>,
    },
    /// Clip RNA values into the `[lower, upper]` percentiles of the training values (BABEL:
    /// 0.5 and 99.5); the thresholds are fitted once.
    ClipRna { lower: f64, upper: f64 },
    /// PCA of the RNA values: the SAILERX alignment target and the RNA baseline.
    RnaPca { n_components: usize },
    /// Every non-zero peak count becomes 1.
    BinarizeAtac,
    /// TF-IDF of the peaks (Signac method 1) as the ATAC values, IDF fitted on training.
    TfidfAtac {
        #[serde(default = "tfidf_scale")]
        scale: f64,
    },
    /// LSI of the peaks: TF-IDF (fitted IDF, the form `tfidf`) then a truncated SVD
    /// without centering; the first component, which tracks depth, is dropped unless
    /// `drop_first = false`. The ATAC baseline and the ridge / kNN translators' input.
    AtacLsi {
        n_components: usize,
        #[serde(default)]
        tfidf: LsiTfidf,
        /// the Signac form's scale factor
        #[serde(default = "tfidf_scale")]
        scale: f64,
        #[serde(default = "yes")]
        drop_first: bool,
    },
}

/// The TF-IDF that an LSI decomposes (`n_i` the cell's total, `N` the fitted cells,
/// `c_j` the peak's count over them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LsiTfidf {
    /// muon's `atac.pp.tfidf` defaults (`log_tf`, `log_idf`):
    /// `log1p(x_ij / n_i) * log1p(N / c_j)`
    #[default]
    Muon,
    /// Signac's `RunTFIDF` method 1: `log1p(x_ij / n_i * N / c_j * scale)`
    Signac,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_are_errors_that_name_the_key() {
        let err = toml::from_str::<PreprocessConfig>("step = 3")
            .unwrap_err()
            .to_string();
        assert!(err.contains("step"), "{err}");
        let err =
            toml::from_str::<PreprocessConfig>("[[steps]]\nstep = \"filter_genes\"\nmin_cell = 3")
                .unwrap_err()
                .to_string();
        assert!(err.contains("min_cell"), "{err}");
        let err = toml::from_str::<PreprocessConfig>("[[steps]]\nstep = \"normalise_rna\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("normalise_rna"), "{err}");
        let p: PreprocessConfig = toml::from_str(
            "[[steps]]\nstep = \"filter_peaks\"\nmin_cells = 5\n[[steps]]\nstep = \"atac_lsi\"\nn_components = 20",
        )
        .unwrap();
        assert_eq!(
            p.steps,
            vec![
                Step::FilterPeaks {
                    min_cells: 5,
                    max_fraction: 1.0,
                    autosomes_only: false
                },
                Step::AtacLsi {
                    n_components: 20,
                    tfidf: LsiTfidf::Muon,
                    scale: 1e4,
                    drop_first: true
                }
            ]
        );
        let err = toml::from_str::<DatasetConfig>("format = \"plain\"\npth = \"x\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("pth"), "{err}");
        let d: DatasetConfig = toml::from_str("format = \"plain\"\npath = \"x\"").unwrap();
        assert_eq!(d, DatasetConfig::Plain { path: "x".into() });
    }
}
