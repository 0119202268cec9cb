//! The first half of every run: files -> dataset -> preprocessing -> the prepared
//! inputs every model reads ([`Prepared::data`]), and the split of the cells. The tasks
//! ([`crate::integration`], [`crate::translation`]) take it from there. Files are read
//! only by `crossomics-data`.

use std::path::Path;

use anyhow::{Context, Result, bail};
use crossomics_data::config::{LsiTfidf, PreprocessConfig, Step};
use crossomics_data::fitted::FittedPreprocessing;
use crossomics_data::{Csr, PairedDataset, preprocess, split};
use crossomics_losses::similarity::sailerx_cell_weights_fitted;
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
    /// the `atac_lsi` step's scores (one is added to the steps when the model reads it or
    /// the inputs are scored as integration baselines, [`steps`])
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
    /// the configured split of the prepared cells; the fitted steps saw `train` only
    /// (every cell with `preprocessing.transductive`)
    pub split: split::Split,
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

/// The dataset of the config with its cell metadata joined, as read.
fn load(cfg: &ExperimentConfig, base: &Path) -> Result<PairedDataset> {
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
    Ok(loaded)
}

/// The preprocessing steps of the config, plus an ATAC LSI (as many components as the
/// RNA PCA) when the model reads one or the inputs are scored as integration baselines
/// and the steps lack one, so that it is fitted like every other step.
pub fn steps(cfg: &ExperimentConfig) -> PreprocessConfig {
    let mut pre = cfg.preprocessing.clone();
    let needs = cfg.model.needs();
    let baselines = !cfg.is_translation() && cfg.evaluation.input_baselines;
    let has_lsi = pre.steps.iter().any(|s| matches!(s, Step::AtacLsi { .. }));
    if (needs.atac_lsi || baselines) && !has_lsi {
        pre.steps.push(Step::AtacLsi {
            n_components: pre.rna_pca_components().unwrap_or(50),
            tfidf: LsiTfidf::default(),
            scale: 1e4,
            drop_first: true,
        });
    }
    pre
}

/// Files -> dataset -> the split -> preprocessing fitted on the training cells (on every
/// cell with `preprocessing.transductive`) and applied to all -> the prepared inputs.
pub fn prepare(cfg: &ExperimentConfig, base: &Path) -> Result<Prepared> {
    let loaded = load(cfg, base)?;
    let steps = steps(cfg);
    let transductive = cfg.preprocessing.transductive;
    let split_loaded = split_cells(cfg, &loaded, &steps)?;
    let (fitted, t) = if transductive {
        FittedPreprocessing::fit(&loaded, &steps, cfg.seed)?
    } else {
        let train = loaded.subset_cells(&split_loaded.train);
        let (fitted, _) = FittedPreprocessing::fit(&train, &steps, cfg.seed)
            .context("fitting the preprocessing on the training cells")?;
        drop(train);
        let t = fitted
            .apply(&loaded)
            .context("applying the preprocessing fitted on the training cells")?;
        (fitted, t)
    };
    if t.cells.len() < 10 {
        bail!(
            "cell QC kept {} of {} cells; relax the cell_qc step",
            t.cells.len(),
            loaded.n_cells()
        );
    }
    let split = split_of_kept(&split_loaded, loaded.n_cells(), &t.cells);
    if split.train.is_empty() {
        bail!("cell QC kept none of the training cells; relax the cell_qc step");
    }
    drop(loaded);
    // the cells every fitted quantity below is learnt on
    let reference: Vec<usize> = if transductive {
        (0..t.cells.len()).collect()
    } else {
        split.train.clone()
    };
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
        &reference,
    )?;
    let covariates = covariates(&cfg.covariates, &dataset, &atac_depth, &reference)?;
    let cell_weights = sailerx_cell_weights_fitted(&rna_depth, &atac_depth, &reference)
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
    let gene_activity = if cfg.model.needs().gene_activity {
        Some(gene_activity(&atac, &dataset.peaks, &dataset.genes, cfg)?)
    } else {
        None
    };
    Ok(Prepared {
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
        gene_activity,
        split,
    })
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
/// The depth's mean and standard deviation are those of the `reference` cells.
fn covariates(
    cfg: &CovariateConfig,
    data: &PairedDataset,
    atac_depth: &[f64],
    reference: &[usize],
) -> Result<Array2<f32>> {
    let mut columns: Vec<Vec<f32>> = Vec::new();
    if cfg.log_atac_depth {
        let logs: Vec<f64> = atac_depth.iter().map(|d| d.max(1.0).ln()).collect();
        let n = reference.len().max(1) as f64;
        let mean = reference.iter().map(|&i| logs[i]).sum::<f64>() / n;
        let sd = (reference
            .iter()
            .map(|&i| (logs[i] - mean).powi(2))
            .sum::<f64>()
            / n)
            .sqrt();
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

/// The configured train / validation / test split of the dataset's cells (rows of
/// `data`, before cell QC). The held-out-cluster split clusters an RNA PCA of its own,
/// fitted on every cell with the configured steps: which cells count as out of
/// distribution is part of the benchmark's definition; the model's preprocessing is still
/// fitted on the training cells. Cells that this PCA's cell QC drops are in no part.
pub fn split_cells(
    cfg: &ExperimentConfig,
    data: &PairedDataset,
    steps: &PreprocessConfig,
) -> Result<split::Split> {
    let n = data.n_cells();
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
            let groups = data
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
            let (_, t) = FittedPreprocessing::fit(data, steps, *cluster_seed)
                .context("the RNA PCA of the held-out cluster split")?;
            let pca = t
                .require_rna_pca()
                .context("the held-out cluster split clusters the RNA PCA")?;
            let labels = clustering::kmeans(pca.view(), *n_clusters, *cluster_seed)
                .context("clustering the RNA PCA for the held-out cluster split")?;
            let kept = split::held_out_clusters(
                &split::number_by_size(&labels),
                test_clusters,
                *val_fraction,
                cfg.seed,
            )?;
            let back = |part: &[usize]| part.iter().map(|&i| t.cells[i]).collect::<Vec<_>>();
            let mut s = split::Split {
                train: back(&kept.train),
                val: back(&kept.val),
                test: back(&kept.test),
            };
            for part in [&mut s.train, &mut s.val, &mut s.test] {
                part.sort_unstable();
            }
            s
        }
    })
}

/// `split` (rows of a dataset of `n` cells) in the numbering of the cells that cell QC
/// kept (`kept[i]` is the row of kept cell `i`); dropped cells leave their part.
pub fn split_of_kept(split: &split::Split, n: usize, kept: &[usize]) -> split::Split {
    const NONE: u8 = 3;
    let mut part = vec![NONE; n];
    for (p, cells) in [&split.train, &split.val, &split.test]
        .into_iter()
        .enumerate()
    {
        for &c in cells {
            part[c] = p as u8;
        }
    }
    let mut out = split::Split {
        train: Vec::new(),
        val: Vec::new(),
        test: Vec::new(),
    };
    for (i, &row) in kept.iter().enumerate() {
        match part[row] {
            0 => out.train.push(i),
            1 => out.val.push(i),
            2 => out.test.push(i),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quickstart(dir: &Path, extra: &str) -> ExperimentConfig {
        let text = format!(
            "extends = [{:?}]\n{extra}",
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../configs/quickstart.toml")
                .display()
                .to_string()
        );
        let f = dir.join("test.toml");
        std::fs::write(&f, text).unwrap();
        crate::experiment::plan(&f, &[]).unwrap().remove(0).config
    }

    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        }
    }

    #[test]
    fn preprocessing_is_fitted_on_the_training_cells_unless_transductive() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = quickstart(dir.path(), "");
        let prep = prepare(&cfg, dir.path()).unwrap();
        let s = &prep.split;
        assert!(!s.val.is_empty() && !s.test.is_empty());
        let library = preprocess::library_sizes(&prep.dataset.rna);
        let of = |cells: &[usize]| cells.iter().map(|&i| library[i]).collect::<Vec<_>>();
        // the normalization target is the training cells' median library size ...
        let target = target_sum(&prep.fitted).unwrap();
        assert_eq!(target, median(of(&s.train)));
        let all: Vec<usize> = (0..prep.dataset.n_cells()).collect();
        assert_ne!(target, median(of(&all)), "the sample tells the two apart");
        // ... the RNA PCA is centred on them ...
        for k in 0..3 {
            let mean = s
                .train
                .iter()
                .map(|&i| f64::from(prep.rna_pca[[i, k]]))
                .sum::<f64>()
                / s.train.len() as f64;
            assert!(mean.abs() < 1e-3, "component {k}: training mean {mean}");
        }
        // ... and so is the depth confounder (standardized over them)
        let depth = |cells: &[usize]| {
            cells
                .iter()
                .map(|&i| f64::from(prep.covariates[[i, 0]]))
                .sum::<f64>()
                / cells.len() as f64
        };
        assert!(depth(&s.train).abs() < 1e-5);
        assert!(depth(&s.test).abs() > 1e-5);
        // fitting on all cells instead, on request
        let cfg = quickstart(dir.path(), "[preprocessing]\ntransductive = true\n");
        let trans = prepare(&cfg, dir.path()).unwrap();
        assert_eq!(trans.split, prep.split);
        assert_eq!(target_sum(&trans.fitted).unwrap(), median(of(&all)));
        let all_depth = all
            .iter()
            .map(|&i| f64::from(trans.covariates[[i, 0]]))
            .sum::<f64>()
            / all.len() as f64;
        assert!(all_depth.abs() < 1e-5);
    }

    #[test]
    fn a_split_follows_its_cells_through_cell_qc() {
        let s = split::Split {
            train: vec![0, 2, 4, 6],
            val: vec![1, 5],
            test: vec![3, 7],
        };
        // rows 2 and 3 dropped; a held-out cluster split may leave a row in no part
        let mut unassigned = s.clone();
        unassigned.train.retain(|&c| c != 6);
        let kept = [0, 1, 4, 5, 6, 7];
        let got = split_of_kept(&s, 8, &kept);
        assert_eq!(got.train, vec![0, 2, 4]);
        assert_eq!(got.val, vec![1, 3]);
        assert_eq!(got.test, vec![5]);
        let got = split_of_kept(&unassigned, 8, &kept);
        assert_eq!(got.train, vec![0, 2]);
        assert_eq!(got.val, vec![1, 3]);
        assert_eq!(got.test, vec![5]);
    }

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
