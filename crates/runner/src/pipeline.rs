//! The first half of every run: files -> dataset -> preprocessing -> the prepared
//! inputs every model reads ([`Prepared::data`]), and the split of the cells. The tasks
//! ([`crate::integration`], [`crate::translation`]) take it from there. Files are read
//! only by `crossomics-data`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use crossomics_data::fitted::FittedPreprocessing;
use crossomics_data::{Csr, PairedDataset, pca, preprocess, split};
use crossomics_losses::similarity::sailerx_cell_weights;
use crossomics_metrics::clustering;
use crossomics_models::{CellData, Shapes};
use ndarray::Array2;

use crate::config::{CovariateConfig, ExperimentConfig};

/// Model inputs derived from the counts.
#[derive(Debug)]
pub struct Prepared {
    /// what was fitted (features, normalization, PCA), saved with the run
    pub fitted: FittedPreprocessing,
    pub dataset: PairedDataset,
    /// binarized peaks
    pub atac: crossomics_data::Csr,
    /// RNA after the value steps (normalized, log1p): the symmetric variant's RNA input
    pub rna_values: crossomics_data::Csr,
    /// the RNA decoder's confounders in the symmetric variant: standardized log RNA depth
    /// and the batch one-hot when configured
    pub rna_covariates: Array2<f32>,
    pub rna_pca: Array2<f32>,
    /// the `atac_lsi` step's scores, else an LSI of the peaks when the model reads it or
    /// the inputs are scored as integration baselines ([`atac_lsi`])
    pub atac_lsi: Option<Array2<f32>>,
    /// the ATAC decoder's confounders (standardized log ATAC depth, batch one-hot)
    pub covariates: Array2<f32>,
    /// SAILERX's per-cell alignment weights (RNA/ATAC depth ratios)
    pub cell_weights: Vec<f32>,
    /// the `normalize_rna` step's target and every cell's `library / target`, when the
    /// steps normalize the RNA
    pub size_factors: Option<(f64, Vec<f32>)>,
    /// CrossMP's gene activity (log1p) and its genes, when the model reads it
    pub gene_activity: Option<(Csr, Vec<String>)>,
    /// the cells' labels, when `evaluation.label_column` names a column
    pub labels: Option<Labels>,
    /// the cells' batches, when `evaluation.batch_column` names a column
    pub batches: Option<Labels>,
}

/// A categorical cell column as codes (`codes[i]` indexes `names`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Labels {
    pub column: String,
    pub codes: Vec<usize>,
    pub names: Vec<String>,
}

impl Labels {
    /// The column `column` of the cells; an error names a column the data lacks.
    pub fn of(dataset: &PairedDataset, column: &str) -> Result<Self> {
        let (codes, names) = dataset.cells.codes(column)?;
        Ok(Self {
            column: column.to_string(),
            codes,
            names,
        })
    }
}

/// Preprocessing as the quickstart config describes it.
pub fn prepare(cfg: &ExperimentConfig, base: &Path) -> Result<Prepared> {
    let mut loaded = cfg
        .dataset
        .load(base, &cfg.limits)
        .context("loading the dataset")?;
    if let Some(meta) = &cfg.cell_metadata {
        let path = base.join(&meta.path);
        let table = crossomics_data::tables::read_table(&path)?;
        let (cells, report) = crossomics_data::tables::join_cell_metadata(
            &loaded.cells,
            &table,
            &meta.barcode_column,
            &path.display().to_string(),
        )?;
        tracing::info!(
            "cell metadata {}: {} of {} cells matched; columns {}",
            path.display(),
            report.matched,
            report.cells,
            report.columns.join(", ")
        );
        loaded.cells = cells;
    }
    let (fitted, t) = FittedPreprocessing::fit(&loaded, &cfg.preprocessing, cfg.seed)?;
    if t.cells.len() < 10 {
        bail!(
            "cell QC kept {} of {} cells; relax the cell_qc step",
            t.cells.len(),
            loaded.n_cells()
        );
    }
    let rna_pca = t
        .require_rna_pca()
        .context("the SAILERX alignment target")?
        .clone();
    let atac_lsi = t.atac_lsi;
    let dataset = t.dataset;
    let rna_depth = preprocess::library_sizes(&dataset.rna);
    let atac_depth = preprocess::library_sizes(&dataset.atac);
    let atac = t.atac;
    let rna_values = t.rna;
    let rna_covariates = covariates(
        &CovariateConfig {
            log_atac_depth: true,
            ..cfg.covariates.clone()
        },
        &dataset,
        &rna_depth,
    )?;
    let covariates = covariates(&cfg.covariates, &dataset, &atac_depth)?;
    let cell_weights = sailerx_cell_weights(&rna_depth, &atac_depth)
        .into_iter()
        .map(|w| w as f32)
        .collect();
    let labels = cfg
        .evaluation
        .label_column
        .as_deref()
        .map(|c| Labels::of(&dataset, c).context("evaluation.label_column"))
        .transpose()?;
    let batches = cfg
        .evaluation
        .batch_column
        .as_deref()
        .map(|c| Labels::of(&dataset, c).context("evaluation.batch_column"))
        .transpose()?;
    let target = target_sum(&fitted);
    let size_factors = target.map(|t| (t, size_factors(&dataset.rna, t)));
    let mut prep = Prepared {
        fitted,
        dataset,
        atac,
        rna_values,
        rna_covariates,
        rna_pca,
        atac_lsi,
        covariates,
        cell_weights,
        labels,
        batches,
        size_factors,
        gene_activity: None,
    };
    let needs = cfg.model.needs();
    let baselines = !cfg.is_translation() && cfg.evaluation.input_baselines;
    if prep.atac_lsi.is_none() && (needs.atac_lsi || baselines) {
        prep.atac_lsi = Some(self::atac_lsi(&prep, cfg)?);
    }
    if needs.gene_activity {
        prep.gene_activity = Some(gene_activity(
            &prep.atac,
            &prep.dataset.peaks,
            &prep.dataset.genes,
            cfg,
        )?);
    }
    Ok(prep)
}

impl Prepared {
    /// Every prepared input, as the models read them.
    pub fn data(&self) -> CellData<'_> {
        CellData {
            rna_values: Some(&self.rna_values),
            rna_counts: Some(&self.dataset.rna),
            rna_size_factors: self.size_factors.as_ref().map(|(_, s)| s.as_slice()),
            rna_pca: Some(self.rna_pca.view()),
            atac: Some(&self.atac),
            atac_lsi: self.atac_lsi.as_ref().map(|a| a.view()),
            gene_activity: self.gene_activity.as_ref().map(|(m, _)| m),
            cell_weights: Some(&self.cell_weights),
            covariates: Some(self.covariates.view()),
            rna_covariates: Some(self.rna_covariates.view()),
        }
    }

    /// The shapes a model is built for (`model.json`).
    pub fn shapes(&self) -> Shapes {
        Shapes {
            n_genes: self.dataset.genes.len(),
            n_peaks: self.dataset.peaks.len(),
            n_covariates: self.covariates.ncols(),
            n_rna_covariates: self.rna_covariates.ncols(),
            n_pcs: self.rna_pca.ncols(),
            activity_genes: self
                .gene_activity
                .as_ref()
                .map(|(_, g)| g.clone())
                .unwrap_or_default(),
            target_sum: self.size_factors.as_ref().map_or(0.0, |(t, _)| *t),
        }
    }

    /// The chromosome of every peak (ATAC column), for the models that group them.
    pub fn peak_chroms(&self) -> Vec<String> {
        self.dataset.peaks.iter().map(|p| p.chrom.clone()).collect()
    }
}

/// The normalization target of the `normalize_rna` step, when the steps have one.
pub fn target_sum(fitted: &FittedPreprocessing) -> Option<f64> {
    fitted.steps.iter().find_map(|s| match s {
        crossomics_data::fitted::FittedStep::NormalizeRna { target_sum } => Some(*target_sum),
        _ => None,
    })
}

/// `s_i = library_i / target_sum`, at least a tiny positive value for an empty cell.
pub fn size_factors(counts: &Csr, target_sum: f64) -> Vec<f32> {
    preprocess::library_sizes(counts)
        .iter()
        .map(|l| ((l / target_sum) as f32).max(1e-6))
        .collect()
}

/// Gene activity of the cells (CrossMP): binarized peaks through the regulatory
/// potential of the genome's annotation, for the RNA genes the annotation has; log1p.
pub fn gene_activity(
    atac: &Csr,
    peaks: &[crossomics_data::Peak],
    genes: &[String],
    cfg: &ExperimentConfig,
) -> Result<(Csr, Vec<String>)> {
    let genome = cfg.translation.genome.as_deref().context(
        "CrossMP's gene activity needs the genome build: set translation.genome (\"GRCh38\", \"hg19\", \"mm10\" or \"GRCm39\")",
    )?;
    let build: crossomics_data::transfer::GenomeBuild = genome
        .parse()
        .map_err(|e: String| anyhow::anyhow!("translation.genome: {e}"))?;
    let annotation = crossomics_data::annotation::bundled(build)?;
    let wanted: std::collections::HashSet<String> =
        genes.iter().map(|g| g.to_ascii_uppercase()).collect();
    let loci: Vec<_> = annotation
        .into_iter()
        .filter(|l| wanted.contains(&l.gene.to_ascii_uppercase()))
        .collect();
    if loci.is_empty() {
        bail!(
            "none of the {} RNA genes is in the {genome} gene annotation",
            genes.len()
        );
    }
    let rp = crossomics_data::annotation::regulatory_potential(
        peaks,
        &loci,
        cfg.translation.half_distance,
        cfg.translation.max_distance,
    )?;
    let mut activity = crossomics_data::annotation::gene_activity(atac, &rp)?;
    for v in activity.values_mut() {
        *v = v.ln_1p();
    }
    Ok((activity, loci.into_iter().map(|l| l.gene).collect()))
}

/// Standardized log depth and a batch one-hot, as configured (`log_atac_depth` switches
/// the depth column on; `depth` is the ATAC depth, or the RNA depth for the RNA decoder).
fn covariates(
    cfg: &CovariateConfig,
    data: &PairedDataset,
    atac_depth: &[f64],
) -> Result<Array2<f32>> {
    let mut columns: Vec<Vec<f32>> = Vec::new();
    if cfg.log_atac_depth {
        let logs: Vec<f64> = atac_depth.iter().map(|d| d.max(1.0).ln()).collect();
        let n = logs.len() as f64;
        let mean = logs.iter().sum::<f64>() / n;
        let sd = (logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / n).sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        columns.push(logs.iter().map(|l| ((l - mean) / sd) as f32).collect());
    }
    if let Some(col) = &cfg.batch_column {
        let (codes, names) = data.cells.codes(col)?;
        for b in 0..names.len() {
            columns.push(codes.iter().map(|&c| f32::from(u8::from(c == b))).collect());
        }
    }
    Ok(Array2::from_shape_fn(
        (data.n_cells(), columns.len()),
        |(i, j)| columns[j][i],
    ))
}

/// The configured train / validation / test split of the prepared cells.
pub fn make_split(cfg: &ExperimentConfig, prep: &Prepared) -> Result<split::Split> {
    let n = prep.dataset.n_cells();
    Ok(match &cfg.split {
        split::SplitConfig::Random {
            val_fraction,
            test_fraction,
        } => split::random(n, *val_fraction, *test_fraction, cfg.seed)?,
        split::SplitConfig::HeldOut {
            column,
            test_values,
            val_fraction,
        } => {
            let groups = prep
                .dataset
                .cells
                .column(column)
                .with_context(|| format!("split column `{column}` not found"))?;
            split::held_out(&groups, test_values, *val_fraction, cfg.seed)?
        }
        split::SplitConfig::HeldOutCluster {
            n_clusters,
            test_clusters,
            cluster_seed,
            val_fraction,
        } => {
            let labels = clustering::kmeans(prep.rna_pca.view(), *n_clusters, *cluster_seed)
                .context("clustering the RNA PCA for the held-out cluster split")?;
            split::held_out_clusters(
                &split::number_by_size(&labels),
                test_clusters,
                *val_fraction,
                cfg.seed,
            )?
        }
    })
}

/// LSI of the peaks (TF-IDF, PCA, first component dropped as it tracks depth): the
/// `atac_lsi` step's scores, else as many components as the RNA PCA: what the ATAC input
/// alone says about the cells.
fn atac_lsi(prep: &Prepared, cfg: &ExperimentConfig) -> Result<Array2<f32>> {
    if let Some(lsi) = &prep.atac_lsi {
        return Ok(lsi.clone());
    }
    let k = (prep.rna_pca.ncols() + 1)
        .min(prep.atac.ncols())
        .min(prep.dataset.n_cells() - 1);
    let tfidf = preprocess::tfidf(&preprocess::binarize(&prep.dataset.atac), 1e4);
    let scores = pca::fit(preprocess::to_dense(&tfidf).view(), k, cfg.seed)?.scores;
    Ok(scores.slice(ndarray::s![.., 1..]).to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cell_metadata_table_adds_columns_by_barcode() {
        let dir = tempfile::tempdir().unwrap();
        let sample = crossomics_data::sample::bmmc_multiome_starter().unwrap();
        let types = sample.cells.column("cell_type").unwrap();
        // every other cell, labelled by its type in upper case
        let mut csv = String::from("cell_id,label_upper\n");
        for (i, (b, t)) in sample.cells.barcodes().iter().zip(&types).enumerate() {
            if i % 2 == 0 {
                csv.push_str(&format!("{b},{}\n", t.to_uppercase()));
            }
        }
        std::fs::write(dir.path().join("meta.csv"), csv).unwrap();
        let text = format!(
            "extends = [{:?}]\n[cell_metadata]\npath = \"meta.csv\"\nbarcode_column = \"cell_id\"\n",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../configs/quickstart.toml")
                .display()
                .to_string()
        );
        let config = |text: &str| {
            let f = dir.path().join("test.toml");
            std::fs::write(&f, text).unwrap();
            crate::experiment::plan(&f, &[]).unwrap().remove(0).config
        };
        let cfg = config(&text);
        let prep = prepare(&cfg, dir.path()).unwrap();
        let labels = prep.dataset.cells.column("label_upper").unwrap();
        let types = prep.dataset.cells.column("cell_type").unwrap();
        let barcodes = prep.dataset.cells.barcodes();
        let order: std::collections::HashMap<&str, usize> = sample
            .cells
            .barcodes()
            .iter()
            .enumerate()
            .map(|(i, b)| (b.as_str(), i))
            .collect();
        for ((b, l), t) in barcodes.iter().zip(&labels).zip(&types) {
            if order[b.as_str()].is_multiple_of(2) {
                assert_eq!(l, &t.to_uppercase());
            } else {
                assert_eq!(l, "", "{b} has no row: missing");
            }
        }
        let bad = text.replace("cell_id", "no_such_column");
        let cfg = config(&bad);
        let err = format!("{:#}", prepare(&cfg, dir.path()).unwrap_err());
        assert!(
            err.contains("meta.csv") && err.contains("no_such_column"),
            "{err}"
        );
    }
}
