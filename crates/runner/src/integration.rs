//! The integration task: prepared data -> an [`Integrator`] (from the model registry, or
//! any built by the caller) fitted on the training cells -> the embedding of every cell
//! -> the integration metrics ([`crate::scores::integration`]), beside the inputs alone
//! scored the same way.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use crossomics_data::split;
use crossomics_metrics::community;
use crossomics_models::train::ExtraCells;
use crossomics_models::{BuildContext, EpochRecord, FitCells, Integrator, Shapes, TrainHistory};
use ndarray::{Array2, ArrayView2};

use crate::config::ExperimentConfig;
use crate::pipeline::Prepared;
use crate::scores::Role;
use crate::scores::integration::{self as metrics, EmbeddingView};
use crate::table::Row;

/// The outcome of training and evaluating one run.
#[derive(Debug)]
pub struct Outcome {
    pub model: Box<dyn Integrator>,
    /// the shapes the model was built for (`model.json`)
    pub shapes: Shapes,
    pub embedding: Array2<f32>,
    /// Leiden clusters of the embedding ([`leiden_clusters`])
    pub clusters: Vec<usize>,
    pub history: TrainHistory,
    pub split: split::Split,
    pub rows: Vec<Row>,
    /// kNN label transfer from the training to the validation cells (with labels), which
    /// settings are chosen on
    pub validation_rows: Vec<Row>,
    pub device: String,
    pub train_seconds: f64,
}

/// Trains the configured model (the registry's integrator of `[model]`) on the prepared
/// data and scores its embedding.
pub fn train_and_evaluate(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<Outcome> {
    let checked = cfg.model.checked()?;
    if !checked.integrates() {
        bail!(
            "model kind `{}` does not integrate: it runs with task = \"translation\"",
            cfg.model.kind()
        );
    }
    integrate(cfg, prep, cfg.model.kind(), observer, |ctx| {
        Ok(checked.integrator(ctx)?)
    })
}

/// Fits the integrator that `build` makes for the data's shapes on the training cells,
/// embeds every cell and scores the embedding as row `method` (and the inputs alone, as
/// configured). `build` gets the shapes with the hybrid mode's extra confounder counted.
pub fn integrate(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    method: &str,
    observer: &mut dyn FnMut(&EpochRecord),
    build: impl FnOnce(&BuildContext<'_>) -> Result<Box<dyn Integrator>>,
) -> Result<Outcome> {
    let n = prep.dataset.n_cells();
    let split = prep.split.clone();
    let device = cfg.training.device.resolve()?;
    tch::manual_seed(cfg.seed as i64);
    let peak_chroms = prep.peak_chroms();
    if peak_chroms.len() != prep.atac.ncols() {
        bail!(
            "{} peak intervals for {} ATAC columns",
            peak_chroms.len(),
            prep.atac.ncols()
        );
    }
    let hybrid = hybrid_cells(cfg, &split)?;
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
    let shapes = Shapes {
        n_covariates: covariates.ncols(),
        ..prep.shapes()
    };
    let mut model = build(&BuildContext {
        shapes: &shapes,
        peak_chroms: &peak_chroms,
        device,
    })
    .context("building the model of [model]")?;
    let data = crossomics_models::CellData {
        covariates: Some(covariates.view()),
        ..prep.data()
    };
    data.check()?;
    let cells = match &hybrid {
        Some(h) => FitCells {
            train: &h.paired,
            val: &split.val,
            extra: Some(ExtraCells {
                cells: &h.atac_only,
                every: cfg.hybrid.every,
            }),
        },
        None => FitCells {
            train: &split.train,
            val: &split.val,
            extra: None,
        },
    };
    let started = Instant::now();
    let history = model.fit(&data, cells, &cfg.training, cfg.seed, observer)?;
    let train_seconds = started.elapsed().as_secs_f64();
    let all: Vec<usize> = (0..n).collect();
    let embedding = model.embed(&data, &all)?;

    let clusters = leiden_clusters(embedding.view(), cfg.seed)?;
    let mut row = score(
        method,
        Role::Model,
        embedding.view(),
        &clusters,
        prep,
        &split,
        cfg,
    )?;
    // the model's reconstruction of the test cells, per cell
    for (modality, v) in model.reconstruction(&data, &split.test, cfg.training.batch_size)? {
        row.metrics.push((format!("test_recon_{modality}"), v));
    }
    let validation_rows = validation(cfg.label(method), embedding.view(), prep, &split, cfg)?;
    let mut rows = vec![row];
    if cfg.evaluation.input_baselines {
        let lsi = prep
            .atac_lsi
            .as_ref()
            .context("the ATAC LSI of the input baselines")?;
        let both = concat_blocks(&[prep.rna_pca.view(), lsi.view()]);
        for (name, x) in [
            ("rna_pca (input)", prep.rna_pca.view()),
            ("atac_lsi (input)", lsi.view()),
            ("rna_pca+atac_lsi (input)", both.view()),
        ] {
            let c = leiden_clusters(x, cfg.seed)?;
            rows.push(score(name, Role::Input, x, &c, prep, &split, cfg)?);
        }
    }
    Ok(Outcome {
        model,
        shapes,
        embedding,
        clusters: clusters.labels,
        history,
        split,
        rows,
        validation_rows,
        device: format!("{device:?}"),
        train_seconds,
    })
}

/// Leiden clusters of every cell's embedding at resolution 1 (scanpy's defaults), the
/// label-free clustering a run writes into `embedding.h5ad` (`obs["leiden"]`).
pub fn leiden_clusters(emb: ArrayView2<f32>, seed: u64) -> Result<community::CommunityResult> {
    community::leiden_of_embedding(emb, 1.0, seed).context("Leiden clustering of the embedding")
}

/// The integration task's metrics ([`metrics::METRICS`]) of one embedding, as a row.
pub fn score(
    method: &str,
    role: Role,
    emb: ArrayView2<f32>,
    clusters: &community::CommunityResult,
    prep: &Prepared,
    split: &split::Split,
    cfg: &ExperimentConfig,
) -> Result<Row> {
    let view = EmbeddingView {
        embedding: emb,
        clusters,
        labels: prep.labels.as_ref(),
        batches: prep.batches.as_ref(),
        split,
        knn_k: cfg.evaluation.knn_k,
        seed: cfg.seed,
    };
    Ok(Row {
        method: cfg.label(method),
        role,
        variant: String::new(),
        dataset: prep.dataset.name.clone(),
        seed: cfg.seed,
        cells: prep.dataset.n_cells(),
        metrics: metrics::score_all(metrics::METRICS, &view)?,
    })
}

/// The validation row of an embedding: kNN label transfer from the training cells to the
/// validation cells (`knn_accuracy`), none without labels or validation cells. The other
/// integration metrics cluster every cell, test cells included, so they are not used to
/// choose settings.
fn validation(
    method: String,
    emb: ArrayView2<f32>,
    prep: &Prepared,
    split: &split::Split,
    cfg: &ExperimentConfig,
) -> Result<Vec<Row>> {
    let Some(labels) = prep.labels.as_ref() else {
        return Ok(Vec::new());
    };
    if split.val.is_empty() || split.train.is_empty() {
        return Ok(Vec::new());
    }
    let part = |cells: &[usize]| {
        (
            emb.select(ndarray::Axis(0), cells),
            cells.iter().map(|&c| labels.codes[c]).collect::<Vec<_>>(),
        )
    };
    let (train_x, train_y) = part(&split.train);
    let (val_x, val_y) = part(&split.val);
    let accuracy = crossomics_metrics::knn::knn_label_accuracy(
        train_x.view(),
        &train_y,
        val_x.view(),
        &val_y,
        cfg.evaluation.knn_k,
    )?;
    let metrics = vec![("knn_accuracy".to_string(), accuracy)];
    Ok(vec![Row {
        method,
        role: Role::Model,
        variant: String::new(),
        dataset: prep.dataset.name.clone(),
        seed: cfg.seed,
        cells: split.val.len(),
        metrics,
    }])
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
pub fn hybrid_cells(cfg: &ExperimentConfig, split: &split::Split) -> Result<Option<HybridCells>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hybrid_mode_hides_the_rna_of_a_seeded_part_of_the_training_cells() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("h.toml");
        let quickstart =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml");
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
        let prep = crate::pipeline::prepare(&cfg, dir.path()).unwrap();
        let split = prep.split.clone();
        let h = hybrid_cells(&cfg, &split).unwrap().unwrap();
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
        assert_eq!(hybrid_cells(&cfg, &split).unwrap().unwrap(), h);
        // training: one more decoder confounder (the ATAC-only flag)
        let out = train_and_evaluate(&cfg, &prep, &mut |_| {}).unwrap();
        assert_eq!(out.shapes.n_covariates, prep.covariates.ncols() + 1);
        assert_eq!(out.embedding.nrows(), prep.dataset.n_cells());
        // off by default, and a resolved config without [hybrid] keeps its run id
        let off = write("");
        assert!(hybrid_cells(&off, &split).unwrap().is_none());
        assert!(!toml::to_string(&off).unwrap().contains("hybrid"));
        // bad settings are errors that name the key, when the config is read
        let plan = |extra: &str| {
            std::fs::write(
                &f,
                format!(
                    "extends = [{:?}]\n{extra}",
                    quickstart.display().to_string()
                ),
            )
            .unwrap();
            crate::experiment::plan(&f, &[])
        };
        for (extra, want) in [
            ("[hybrid]\nunpaired_fraction = 1.0\n", "unpaired_fraction"),
            (
                "[hybrid]\nunpaired_fraction = 0.5\nevery = 1\n",
                "hybrid.every",
            ),
            (
                "[hybrid]\nunpaired_fraction = 0.5\n[model]\nkind = \"sailerx\"\nsymmetric = true\n",
                "symmetric",
            ),
        ] {
            let e = format!("{:#}", plan(extra).unwrap_err());
            assert!(e.contains(want), "{extra}: {e}");
        }
        let few = write("[hybrid]\nunpaired_fraction = 0.001\n");
        let e = hybrid_cells(&few, &split).unwrap_err().to_string();
        assert!(e.contains("at least 2"), "{e}");
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
