//! Preprocessing fitted on a training dataset, saved with a run and reapplied unchanged
//! to new data (what a trained model needs to score an upload): the kept genes and
//! peaks, the size-factor target, and the RNA PCA's mean and loadings.

use std::collections::HashMap;
use std::path::Path;

use nalgebra_sparse::CsrMatrix;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

use crate::config::PreprocessConfig;
use crate::dataset::PairedDataset;
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::{pca, preprocess};

/// The fitted state of [`PreprocessConfig`]'s feature filters, normalization and PCA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedPreprocessing {
    pub genes: Vec<String>,
    /// Peaks as `chr:start-end`.
    pub peaks: Vec<String>,
    pub rna_target_sum: f64,
    pub pca_mean: Vec<f32>,
    /// components x genes, row-major
    pub pca_components: Vec<f32>,
    pub pca_n_components: usize,
}

/// How many of the fitted features a dataset has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Coverage {
    pub genes_found: usize,
    pub genes_total: usize,
    pub peaks_found: usize,
    pub peaks_total: usize,
}

/// A dataset in the fitted feature space, with its model inputs.
#[derive(Debug, Clone)]
pub struct Transformed {
    /// counts, columns in the fitted gene and peak order (missing features are all-zero)
    pub dataset: PairedDataset,
    /// size-factor normalized + log1p RNA
    pub rna_norm: CsrMatrix<f32>,
    pub rna_pca: Array2<f32>,
    /// binarized peaks
    pub atac: CsrMatrix<f32>,
    pub coverage: Coverage,
}

impl FittedPreprocessing {
    /// Fits the feature filters, the normalization target and the RNA PCA on `data`.
    pub fn fit(
        data: &PairedDataset,
        cfg: &PreprocessConfig,
        seed: u64,
    ) -> Result<(Self, Transformed)> {
        let genes = preprocess::feature_filter(&data.rna, cfg.rna_min_cells, 1.0);
        let peaks =
            preprocess::feature_filter(&data.atac, cfg.atac_min_cells, cfg.atac_max_fraction);
        if genes.is_empty() || peaks.is_empty() {
            return Err(DataError::Empty {
                what: format!("dataset `{}` after the feature filters", data.name),
                reason: format!(
                    "{} genes and {} peaks left; lower rna_min_cells / atac_min_cells",
                    genes.len(),
                    peaks.len()
                ),
            });
        }
        let subset = data.subset_features(&genes, &peaks);
        let target = match cfg.rna_target_sum {
            Some(t) => t,
            None => preprocess::median_library_size(&preprocess::library_sizes(&subset.rna))
                .ok_or_else(|| DataError::Empty {
                    what: "RNA counts".into(),
                    reason: "every cell has zero counts".into(),
                })?,
        };
        let rna_norm = preprocess::normalize_log1p(&subset.rna, Some(target))?;
        let k = cfg
            .rna_pca_components
            .min(subset.n_cells() - 1)
            .min(genes.len());
        let fit = pca::fit(preprocess::to_dense(&rna_norm).view(), k, seed)?;
        let fitted = Self {
            genes: subset.genes.clone(),
            peaks: subset.peaks.iter().map(Peak::to_string).collect(),
            rna_target_sum: target,
            pca_mean: fit.mean.to_vec(),
            pca_components: fit.components.iter().copied().collect(),
            pca_n_components: k,
        };
        let n_genes = fitted.genes.len();
        let n_peaks = fitted.peaks.len();
        let atac = preprocess::binarize(&subset.atac);
        Ok((
            fitted,
            Transformed {
                dataset: subset,
                rna_norm,
                rna_pca: fit.scores,
                atac,
                coverage: Coverage {
                    genes_found: n_genes,
                    genes_total: n_genes,
                    peaks_found: n_peaks,
                    peaks_total: n_peaks,
                },
            },
        ))
    }

    /// Puts `data` into the fitted feature space: genes matched by name (exactly, else
    /// case-insensitively), peaks by identical interval; missing features are zero.
    pub fn apply(&self, data: &PairedDataset) -> Result<Transformed> {
        let exact: HashMap<&str, usize> = data
            .genes
            .iter()
            .enumerate()
            .map(|(i, g)| (g.as_str(), i))
            .collect();
        let folded: HashMap<String, usize> = data
            .genes
            .iter()
            .enumerate()
            .map(|(i, g)| (g.to_ascii_uppercase(), i))
            .collect();
        let gene_map: Vec<Option<usize>> = self
            .genes
            .iter()
            .map(|g| {
                exact
                    .get(g.as_str())
                    .copied()
                    .or_else(|| folded.get(&g.to_ascii_uppercase()).copied())
            })
            .collect();
        let peaks: HashMap<String, usize> = data
            .peaks
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_string(), i))
            .collect();
        let peak_map: Vec<Option<usize>> =
            self.peaks.iter().map(|p| peaks.get(p).copied()).collect();
        let coverage = Coverage {
            genes_found: gene_map.iter().flatten().count(),
            genes_total: self.genes.len(),
            peaks_found: peak_map.iter().flatten().count(),
            peaks_total: self.peaks.len(),
        };
        let model_peaks = self
            .peaks
            .iter()
            .map(|p| Peak::parse(p).map_err(|e| DataError::invalid("fitted preprocessing", e)))
            .collect::<Result<Vec<_>>>()?;
        let aligned = PairedDataset::new(
            data.name.clone(),
            align_columns(&data.rna, &gene_map),
            align_columns(&data.atac, &peak_map),
            data.cells.clone(),
            self.genes.clone(),
            model_peaks,
        )?;
        let rna_norm = preprocess::normalize_log1p(&aligned.rna, Some(self.rna_target_sum))?;
        let mean = Array1::from(self.pca_mean.clone());
        let components = Array2::from_shape_vec(
            (self.pca_n_components, self.genes.len()),
            self.pca_components.clone(),
        )
        .map_err(|e| DataError::invalid("fitted preprocessing", e.to_string()))?;
        let rna_pca = (&preprocess::to_dense(&rna_norm) - &mean).dot(&components.t());
        let atac = preprocess::binarize(&aligned.atac);
        Ok(Transformed {
            dataset: aligned,
            rna_norm,
            rna_pca,
            atac,
            coverage,
        })
    }

    /// Saves as JSON through a temporary file.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("json.tmp");
        let text = serde_json::to_string(self)
            .map_err(|e| DataError::invalid(path.display().to_string(), e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| DataError::io(&tmp, e))?;
        std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let fitted: Self = serde_json::from_str(&text).map_err(|e| {
            DataError::invalid(
                path.display().to_string(),
                format!("not a fitted preprocessing file: {e}"),
            )
        })?;
        if fitted.pca_mean.len() != fitted.genes.len()
            || fitted.pca_components.len() != fitted.pca_n_components * fitted.genes.len()
        {
            return Err(DataError::invalid(
                path.display().to_string(),
                "PCA shapes do not match the gene list",
            ));
        }
        Ok(fitted)
    }
}

/// Columns of `m` in the order of `mapping`; `None` gives an all-zero column.
pub fn align_columns(m: &CsrMatrix<f32>, mapping: &[Option<usize>]) -> CsrMatrix<f32> {
    let mut new_index = vec![usize::MAX; m.ncols()];
    for (new, old) in mapping.iter().enumerate() {
        if let Some(old) = old {
            new_index[*old] = new;
        }
    }
    let mut offsets = vec![0];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for row in m.row_iter() {
        let mut entries: Vec<(usize, f32)> = row
            .col_indices()
            .iter()
            .zip(row.values())
            .filter(|(c, _)| new_index[**c] != usize::MAX)
            .map(|(c, v)| (new_index[*c], *v))
            .collect();
        entries.sort_unstable_by_key(|e| e.0);
        for (c, v) in entries {
            indices.push(c);
            values.push(v);
        }
        offsets.push(indices.len());
    }
    CsrMatrix::try_from_csr_data(m.nrows(), mapping.len(), offsets, indices, values)
        .expect("aligned columns of a valid CSR matrix form a valid CSR matrix")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::select_columns;

    fn cfg() -> PreprocessConfig {
        PreprocessConfig {
            rna_pca_components: 10,
            ..Default::default()
        }
    }

    #[test]
    fn apply_on_the_training_data_reproduces_the_fit() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (fitted, t) = FittedPreprocessing::fit(&d, &cfg(), 3).unwrap();
        let again = fitted.apply(&d).unwrap();
        assert_eq!(again.coverage.genes_found, fitted.genes.len());
        assert_eq!(again.rna_norm, t.rna_norm);
        assert_eq!(again.atac, t.atac);
        let diff = (&again.rna_pca - &t.rna_pca)
            .mapv(f32::abs)
            .fold(0.0f32, |a, b| a.max(*b));
        assert!(diff < 1e-3, "max |difference| of PCA scores {diff}");
        // save / load round trip
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pre.json");
        fitted.save(&path).unwrap();
        assert_eq!(FittedPreprocessing::load(&path).unwrap(), fitted);
        std::fs::write(&path, "{\"genes\": 3}").unwrap();
        assert!(
            FittedPreprocessing::load(&path)
                .unwrap_err()
                .to_string()
                .contains("pre.json")
        );
    }

    #[test]
    fn missing_and_reordered_features_are_matched_and_counted() {
        let d = crate::sample::bmmc_multiome_starter().unwrap();
        let (fitted, t) = FittedPreprocessing::fit(&d, &cfg(), 3).unwrap();
        // a new file: genes reversed, lower-cased, the first 10 model genes missing; 5 peaks missing
        let keep_genes: Vec<usize> = (0..d.genes.len())
            .rev()
            .filter(|&g| !fitted.genes[..10].contains(&d.genes[g]))
            .collect();
        let keep_peaks: Vec<usize> = (5..d.peaks.len()).collect();
        let mut other = d.subset_features(&keep_genes, &keep_peaks);
        other.genes = other.genes.iter().map(|g| g.to_lowercase()).collect();
        let model_peak_missing = fitted
            .peaks
            .iter()
            .filter(|p| d.peaks[..5].iter().any(|q| q.to_string() == **p))
            .count();
        let a = fitted.apply(&other).unwrap();
        assert_eq!(a.coverage.genes_found, fitted.genes.len() - 10);
        assert_eq!(
            a.coverage.peaks_found,
            fitted.peaks.len() - model_peak_missing
        );
        // the counts equal the training counts with the missing columns zeroed
        let present: Vec<Option<usize>> = (0..fitted.genes.len())
            .map(|g| (g >= 10).then_some(g))
            .collect();
        assert_eq!(a.dataset.rna, align_columns(&t.dataset.rna, &present));
        assert_eq!(
            select_columns(&a.dataset.rna, &[20, 30]),
            select_columns(&t.dataset.rna, &[20, 30])
        );
    }
}
