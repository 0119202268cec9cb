//! The main job, one way through: dataset -> preprocessing -> model training ->
//! embedding -> metrics. Files are read only by `crossomics-data`; metrics never see tch.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use crossomics_data::fitted::FittedPreprocessing;
use crossomics_data::{PairedDataset, pca, preprocess, split};
use crossomics_encoders::ChromGroups;
use crossomics_losses::similarity::sailerx_cell_weights;
use crossomics_metrics::{clustering, community, knn, silhouette};
use crossomics_translators::sailerx::{
    Architecture, RnaInput, Sailerx, SailerxConfig, SailerxInput,
};
use crossomics_translators::{EpochRecord, TrainHistory, train};
use ndarray::{Array2, ArrayView2};

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
    /// the `atac_lsi` step's scores, when the config has one
    pub atac_lsi: Option<Array2<f32>>,
    pub covariates: Array2<f32>,
    pub cell_weights: Vec<f32>,
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
    })
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

/// The outcome of training and evaluating one run.
#[derive(Debug)]
pub struct Outcome {
    pub model: Sailerx,
    /// the input widths the model was built with (`model.json`)
    pub dims: ModelDims,
    pub embedding: Array2<f32>,
    /// Leiden clusters of the embedding ([`leiden_clusters`])
    pub clusters: Vec<usize>,
    pub history: TrainHistory,
    pub split: split::Split,
    pub rows: Vec<crate::table::Row>,
    pub device: String,
    pub train_seconds: f64,
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

/// Trains the configured model on the prepared data and scores its embedding.
pub fn train_and_evaluate(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<Outcome> {
    let n = prep.dataset.n_cells();
    let split = make_split(cfg, prep)?;
    let device = cfg.training.device.resolve()?;
    tch::manual_seed(cfg.seed as i64);
    let Some(model_cfg) = cfg.model.sailerx() else {
        bail!(
            "model kind `{}` is a translator: it runs with task = \"translation\"",
            cfg.model.kind()
        );
    };
    let peaks: Vec<&str> = prep
        .dataset
        .peaks
        .iter()
        .map(|p| p.chrom.as_str())
        .collect();
    if peaks.len() != prep.atac.ncols() {
        bail!(
            "{} peak intervals for {} ATAC columns",
            peaks.len(),
            prep.atac.ncols()
        );
    }
    let hybrid = hybrid_cells(cfg, model_cfg, &split)?;
    // the hybrid mode's flag: one more decoder confounder, 1 for the ATAC-only cells
    let covariates = match &hybrid {
        Some(h) => {
            let mut flag = Array2::<f32>::zeros((n, 1));
            for &c in &h.atac_only {
                flag[[c, 0]] = 1.0;
            }
            ndarray::concatenate(ndarray::Axis(1), &[prep.covariates.view(), flag.view()])
                .expect("same cells")
        }
        None => prep.covariates.clone(),
    };
    let dims = ModelDims {
        n_covariates: covariates.ncols(),
        ..ModelDims::of(prep)
    };
    let model = build_model(model_cfg, &dims, &peaks, device)?;
    let input = SailerxInput {
        atac: &prep.atac,
        rna_pca: prep.rna_pca.view(),
        covariates: covariates.view(),
        cell_weights: &prep.cell_weights,
        rna: model_cfg.symmetric.then(|| RnaInput {
            values: &prep.rna_values,
            counts: &prep.dataset.rna,
            covariates: prep.rna_covariates.view(),
        }),
    };
    input.check()?;
    let started = Instant::now();
    let history = match &hybrid {
        Some(h) => train::fit_with_extra(
            &model,
            &input,
            &h.paired,
            Some(train::ExtraCells {
                cells: &h.atac_only,
                every: cfg.hybrid.every,
            }),
            &split.val,
            &cfg.training,
            cfg.seed,
            observer,
        )?,
        None => train::fit(
            &model,
            &input,
            &split.train,
            &split.val,
            &cfg.training,
            cfg.seed,
            observer,
        )?,
    };
    let train_seconds = started.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..n).collect();
    let embedding = model.embed(&input, &all)?;

    let clusters = leiden_clusters(embedding.view(), cfg.seed)?;
    let mut row = score(
        cfg.model.kind(),
        embedding.view(),
        &clusters,
        prep,
        &split,
        cfg,
    )?;
    // the model's reconstruction of the test cells: SAILERX's reconstruction terms are
    // sums over a batch's cells (Bernoulli NLL over the peaks, times recon_weight; NB NLL
    // over the genes), so the per-cell value is their total over the test cells / n
    if !split.test.is_empty() {
        let parts = train::evaluate(&model, &input, &split.test, cfg.training.batch_size)?;
        for (part, name) in [
            ("recon", "test_recon_atac"),
            ("rna_recon", "test_recon_rna"),
        ] {
            if let Some((_, v)) = parts.iter().find(|(k, _)| k == part) {
                row.metrics.push((name.into(), v / split.test.len() as f64));
            }
        }
    }
    let mut rows = vec![row];
    if cfg.evaluation.input_baselines {
        let lsi = atac_lsi(prep, cfg)?;
        let both = concat_blocks(&[prep.rna_pca.view(), lsi.view()]);
        for (name, x) in [
            ("rna_pca (input)", prep.rna_pca.view()),
            ("atac_lsi (input)", lsi.view()),
            ("rna_pca+atac_lsi (input)", both.view()),
        ] {
            let c = leiden_clusters(x, cfg.seed)?;
            rows.push(score(name, x, &c, prep, &split, cfg)?);
        }
    }
    Ok(Outcome {
        model,
        dims,
        embedding,
        clusters: clusters.labels,
        history,
        split,
        rows,
        device: format!("{device:?}"),
        train_seconds,
    })
}

/// The training cells of a hybrid run: paired ones and ATAC-only ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HybridCells {
    pub paired: Vec<usize>,
    pub atac_only: Vec<usize>,
}

/// The `[hybrid]` section applied to the training cells: a seeded `unpaired_fraction` of
/// them (rounded, at least 2 and leaving at least 2 paired) becomes ATAC-only; `None`
/// when the mode is off.
pub fn hybrid_cells(
    cfg: &ExperimentConfig,
    model: &SailerxConfig,
    split: &split::Split,
) -> Result<Option<HybridCells>> {
    use rand::SeedableRng;
    use rand::seq::SliceRandom;
    let h = &cfg.hybrid;
    if !(0.0..1.0).contains(&h.unpaired_fraction) {
        bail!(
            "hybrid.unpaired_fraction = {} is not in [0, 1)",
            h.unpaired_fraction
        );
    }
    if h.unpaired_fraction == 0.0 {
        return Ok(None);
    }
    if model.symmetric {
        bail!(
            "hybrid.unpaired_fraction > 0 with model.symmetric = true: the symmetric variant embeds cells through their RNA, which ATAC-only cells do not have"
        );
    }
    if h.every < 2 {
        bail!("hybrid.every = {} < 2", h.every);
    }
    let n = split.train.len();
    let k = (h.unpaired_fraction * n as f64).round() as usize;
    if k < 2 || n - k < 2 {
        bail!(
            "hybrid.unpaired_fraction = {} of {n} training cells leaves {k} ATAC-only and {} paired; each needs at least 2",
            h.unpaired_fraction,
            n - k
        );
    }
    let mut order = split.train.clone();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed ^ 0x6879_6272_6964);
    order.shuffle(&mut rng);
    let mut atac_only = order[..k].to_vec();
    let mut paired = order[k..].to_vec();
    atac_only.sort_unstable();
    paired.sort_unstable();
    Ok(Some(HybridCells { paired, atac_only }))
}

/// The input widths a model was built with, saved beside its weights (`model.json`) so
/// that a saved model can be rebuilt to embed new data.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ModelDims {
    pub n_covariates: usize,
    pub n_pcs: usize,
    pub n_genes: usize,
    pub n_rna_covariates: usize,
}

impl ModelDims {
    pub fn of(prep: &Prepared) -> Self {
        Self {
            n_covariates: prep.covariates.ncols(),
            n_pcs: prep.rna_pca.ncols(),
            n_genes: prep.dataset.rna.ncols(),
            n_rna_covariates: prep.rna_covariates.ncols(),
        }
    }
}

/// The configured model for peaks on chromosomes `peak_chroms` (one entry per ATAC
/// column; a `chrom_split` model groups them, an `mlp` one counts them).
pub fn build_model<S: AsRef<str>>(
    cfg: &SailerxConfig,
    dims: &ModelDims,
    peak_chroms: &[S],
    device: tch::Device,
) -> Result<Sailerx> {
    let groups = if cfg.architecture == Architecture::ChromSplit {
        ChromGroups::from_chromosomes(peak_chroms, cfg.chrom_split.min_peaks_per_group)
            .context("grouping the peaks by chromosome for model.architecture = \"chrom_split\"")?
    } else {
        ChromGroups::single(peak_chroms.len())
    };
    Ok(if cfg.symmetric {
        Sailerx::symmetric(
            cfg.clone(),
            &groups,
            dims.n_covariates,
            dims.n_genes,
            dims.n_rna_covariates,
            device,
        )?
    } else {
        Sailerx::with_groups(cfg.clone(), &groups, dims.n_covariates, dims.n_pcs, device)?
    })
}

/// The columns of `blocks` side by side, each block scaled to unit total variance so that
/// neither modality dominates the distances (the concatenation baseline).
pub fn concat_blocks(blocks: &[ArrayView2<f32>]) -> Array2<f32> {
    let scaled: Vec<Array2<f32>> = blocks
        .iter()
        .map(|b| {
            let n = b.nrows().max(1) as f64;
            let total: f64 = b
                .columns()
                .into_iter()
                .map(|c| {
                    let mean = c.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
                    c.iter()
                        .map(|&v| (f64::from(v) - mean).powi(2))
                        .sum::<f64>()
                        / n
                })
                .sum();
            let scale = if total > 0.0 {
                total.sqrt().recip()
            } else {
                1.0
            };
            b.mapv(|v| (f64::from(v) * scale) as f32)
        })
        .collect();
    let views: Vec<ArrayView2<f32>> = scaled.iter().map(|b| b.view()).collect();
    ndarray::concatenate(ndarray::Axis(1), &views).expect("blocks with the same cells")
}

/// LSI of the peaks (TF-IDF, PCA, first component dropped as it tracks depth): the
/// `atac_lsi` step's scores, else as many components as the RNA PCA: what the ATAC input
/// alone says about the cells.
pub(crate) fn atac_lsi(prep: &Prepared, cfg: &ExperimentConfig) -> Result<Array2<f32>> {
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

/// Leiden clusters of every cell's embedding at resolution 1 (scanpy's defaults), the
/// label-free clustering a run writes into `embedding.h5ad` (`obs["leiden"]`).
pub fn leiden_clusters(emb: ArrayView2<f32>, seed: u64) -> Result<community::CommunityResult> {
    community::leiden_of_embedding(emb, 1.0, seed).context("Leiden clustering of the embedding")
}

/// Metrics of one embedding. With labels: kNN label transfer train -> test, k-means
/// (k = number of cell types) and scib's optimal-resolution Louvain ARI/NMI, cell-type
/// silhouette. With a batch column of at least two batches: iLISI (and batch ASW within
/// cell types when there are labels). Always: the number of Leiden clusters of
/// `clusters` (the embedding's own, [`leiden_clusters`]) and their modularity.
pub fn score(
    method: &str,
    emb: ArrayView2<f32>,
    clusters: &community::CommunityResult,
    prep: &Prepared,
    split: &split::Split,
    cfg: &ExperimentConfig,
) -> Result<crate::table::Row> {
    let mut metrics: Vec<(String, f64)> = Vec::new();
    if let Some(labels) = &prep.labels {
        let codes = &labels.codes;
        let pick = |cells: &[usize]| -> (Array2<f32>, Vec<usize>) {
            let rows = emb.select(ndarray::Axis(0), cells);
            (rows, cells.iter().map(|&c| codes[c]).collect())
        };
        let (train_x, train_y) = pick(&split.train);
        let (test_x, test_y) = pick(&split.test);
        let knn_acc = if test_y.is_empty() {
            f64::NAN
        } else {
            knn::knn_label_accuracy(
                train_x.view(),
                &train_y,
                test_x.view(),
                &test_y,
                cfg.evaluation.knn_k,
            )?
        };
        let kmeans = clustering::kmeans(emb, labels.names.len(), cfg.seed)?;
        let louvain = scib_clustering(emb, codes, cfg.seed)?;
        metrics.extend([
            ("knn_accuracy".into(), knn_acc),
            (
                "kmeans_ari".into(),
                clustering::adjusted_rand_index(codes, &kmeans)?,
            ),
            (
                "kmeans_nmi".into(),
                clustering::normalized_mutual_info(codes, &kmeans)?,
            ),
            ("louvain_ari".into(), louvain.ari),
            ("louvain_nmi".into(), louvain.nmi),
            (
                "cell_type_asw".into(),
                silhouette::cell_type_asw(emb, codes)?,
            ),
        ]);
    }
    if let Some(batches) = prep.batches.as_ref().filter(|b| b.names.len() > 1) {
        // scib's iLISI uses perplexity 30 on 90 neighbours: fewer on small data
        let perplexity = 30f64.min((emb.nrows().saturating_sub(1) / 3).max(1) as f64);
        metrics.push((
            "ilisi".into(),
            crossomics_metrics::integration::ilisi(emb, &batches.codes, perplexity)?,
        ));
        if let Some(labels) = &prep.labels {
            let asw = silhouette::batch_asw(emb, &batches.codes, &labels.codes)
                .map_or(f64::NAN, |a| a.value);
            metrics.push(("batch_asw".into(), asw));
        }
    }
    metrics.push(("leiden_clusters".into(), clusters.n_clusters as f64));
    metrics.push(("leiden_modularity".into(), clusters.modularity));
    Ok(crate::table::Row {
        method: method.to_string(),
        variant: String::new(),
        dataset: prep.dataset.name.clone(),
        seed: cfg.seed,
        cells: prep.dataset.n_cells(),
        metrics,
    })
}

/// Louvain clustering at the resolution (0.1 to 2.0) that best matches the labels, on
/// scanpy's default graph (15 neighbours counting the cell itself, UMAP connectivities):
/// scib's `opt_louvain`, which the NeurIPS 2021 joint-embedding NMI and ARI use.
fn scib_clustering(
    emb: ArrayView2<f32>,
    labels: &[usize],
    seed: u64,
) -> Result<community::OptimalClustering> {
    let k = 14.min(emb.nrows().saturating_sub(1)).max(1);
    let nn = knn::knn_graph(emb, k, &knn::KnnMethod::default())?;
    let graph = community::WeightedGraph::umap_connectivities(&nn);
    Ok(community::cluster_optimal_resolution(
        &graph,
        labels,
        community::GraphAlgorithm::Louvain,
        &community::scib_resolutions(),
        seed,
    )?)
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

    #[test]
    fn hybrid_mode_hides_the_rna_of_a_seeded_part_of_the_training_cells() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h.toml");
        let quickstart =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml");
        let write = |extra: &str| {
            std::fs::write(
                &f,
                format!(
                    "extends = [{:?}]\n[training]\nepochs = 3\nwarmup_epochs = 1\n{extra}",
                    quickstart.display().to_string()
                ),
            )
            .unwrap();
            crate::experiment::plan(&f, &[]).unwrap().remove(0).config
        };
        let cfg = write("[hybrid]\nunpaired_fraction = 0.5\n");
        let prep = prepare(&cfg, dir.path()).unwrap();
        let split = make_split(&cfg, &prep).unwrap();
        let model = cfg.model.sailerx().unwrap();
        let h = hybrid_cells(&cfg, model, &split).unwrap().unwrap();
        // a partition of the training cells, half each, the same for the same seed
        let mut all: Vec<usize> = h.paired.iter().chain(&h.atac_only).copied().collect();
        all.sort_unstable();
        let mut train = split.train.clone();
        train.sort_unstable();
        assert_eq!(all, train);
        assert_eq!(
            h.atac_only.len(),
            (split.train.len() as f64 * 0.5).round() as usize
        );
        assert_eq!(hybrid_cells(&cfg, model, &split).unwrap().unwrap(), h);
        // training: one more decoder confounder (the ATAC-only flag)
        let out = train_and_evaluate(&cfg, &prep, &mut |_| {}).unwrap();
        assert_eq!(out.dims.n_covariates, prep.covariates.ncols() + 1);
        assert_eq!(out.embedding.nrows(), prep.dataset.n_cells());
        // off by default, and a resolved config without [hybrid] keeps its run id
        let off = write("");
        assert!(hybrid_cells(&off, model, &split).unwrap().is_none());
        assert!(!toml::to_string(&off).unwrap().contains("hybrid"));
        // bad settings are errors that name the key
        for (extra, want) in [
            ("[hybrid]\nunpaired_fraction = 1.0\n", "unpaired_fraction"),
            (
                "[hybrid]\nunpaired_fraction = 0.5\nevery = 1\n",
                "hybrid.every",
            ),
            ("[hybrid]\nunpaired_fraction = 0.001\n", "at least 2"),
            (
                "[hybrid]\nunpaired_fraction = 0.5\n[model]\nkind = \"sailerx\"\nsymmetric = true\n",
                "symmetric",
            ),
        ] {
            let c = write(extra);
            let e = hybrid_cells(&c, c.model.sailerx().unwrap(), &split)
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{extra}: {e}");
        }
    }

    #[test]
    fn concatenated_blocks_have_unit_total_variance_each() {
        let a = ndarray::array![[1.0f32, 10.0], [3.0, 30.0], [5.0, 50.0]];
        let b = ndarray::array![[7.0f32], [7.0], [7.0]];
        let c = concat_blocks(&[a.view(), b.view()]);
        assert_eq!(c.dim(), (3, 3));
        // block a: variances 8/3 and 800/3, total 808/3
        let s = (808.0f64 / 3.0).sqrt();
        for (i, row) in a.rows().into_iter().enumerate() {
            for (j, v) in row.iter().enumerate() {
                assert!((f64::from(c[[i, j]]) - f64::from(*v) / s).abs() < 1e-6);
            }
        }
        // a constant block is left as it is
        assert_eq!(c.column(2).to_vec(), vec![7.0, 7.0, 7.0]);
    }
}
