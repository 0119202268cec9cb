//! The translation task, one way through: prepared data -> a translator (the model
//! registry) fitted on the training cells -> predictions of the test cells' target
//! modality from their source modality alone -> prediction metrics.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use crossomics_data::{Csr, preprocess, split};
use crossomics_encoders::ChromGroups;
use crossomics_metrics::prediction;
use crossomics_translators::babel::{Babel, BabelConfig};
use crossomics_translators::baselines::{KnnRegression, Ridge};
use crossomics_translators::sailerx_translate::SailerxTranslator;
use crossomics_translators::translate::{FitCells, dense_rows};
use crossomics_translators::{
    Direction, EpochRecord, Prediction, TrainHistory, TranslationData, Translator,
};
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use crate::config::{ExperimentConfig, ModelConfig};
use crate::pipeline::{self, Prepared};
use crate::table::Row;

/// What a saved translator needs besides its config to be rebuilt (`model.json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranslatorDims {
    pub kind: String,
    pub n_genes: usize,
    pub n_peaks: usize,
    /// the genes of CrossMP's gene activity, in column order (empty otherwise)
    pub activity_genes: Vec<String>,
    /// SAILERX: decoder confounders and PCA width
    pub n_covariates: usize,
    pub n_pcs: usize,
    /// the normalization target of the RNA size factors
    pub target_sum: f64,
}

/// Every model input of the prepared cells that a translator may read.
#[derive(Debug)]
pub struct TranslationInputs {
    pub size_factors: Vec<f32>,
    /// the ATAC LSI, for the models that read it (the baselines)
    pub atac_lsi: Option<Array2<f32>>,
    /// CrossMP's gene activity (log1p) and its genes
    pub gene_activity: Option<(Csr, Vec<String>)>,
    /// decoder confounders of a cell whose ATAC is to be predicted: all at their
    /// reference, 0 (the mean standardized depth, no batch)
    pub covariates_without_depth: Array2<f32>,
    pub target_sum: f64,
}

/// The normalization target of the `normalize_rna` step, which the size factors use.
pub fn target_sum(prep: &Prepared) -> Result<f64> {
    prep.fitted
        .steps
        .iter()
        .find_map(|s| match s {
            crossomics_data::fitted::FittedStep::NormalizeRna { target_sum } => Some(*target_sum),
            _ => None,
        })
        .context("translation compares log1p-normalized RNA: add a `normalize_rna` step")
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

/// The inputs of [`TranslationData`] that the prepared data does not hold yet.
pub fn inputs(cfg: &ExperimentConfig, prep: &Prepared) -> Result<TranslationInputs> {
    if prep.atac.values().iter().any(|v| *v != 0.0 && *v != 1.0) {
        bail!(
            "translation predicts binarized peaks: the ATAC steps must end with `binarize_atac` (not TF-IDF)"
        );
    }
    let target_sum = target_sum(prep)?;
    let size_factors = size_factors(&prep.dataset.rna, target_sum);
    // the LSI fallback is a PCA of the dense TF-IDF: only for the models that read it
    let atac_lsi = match &cfg.model {
        ModelConfig::Ridge(_) | ModelConfig::KnnRegression(_) => {
            Some(pipeline::atac_lsi(prep, cfg)?)
        }
        _ => None,
    };
    let gene_activity = match &cfg.model {
        ModelConfig::Crossmp(_) => Some(gene_activity(
            &prep.atac,
            &prep.dataset.peaks,
            &prep.dataset.genes,
            cfg,
        )?),
        _ => None,
    };
    // a cell whose ATAC is predicted has no ATAC depth (its standardized value is the
    // mean, 0), and its batch may be one the decoder never saw (the held-out donor of the
    // competition split): every confounder at its reference, 0, as for uploaded data
    let covariates_without_depth = Array2::<f32>::zeros(prep.covariates.dim());
    Ok(TranslationInputs {
        size_factors,
        atac_lsi,
        gene_activity,
        covariates_without_depth,
        target_sum,
    })
}

/// The translation data of all prepared cells (both modalities).
pub fn data<'a>(prep: &'a Prepared, extra: &'a TranslationInputs) -> TranslationData<'a> {
    TranslationData {
        rna_values: Some(&prep.rna_values),
        rna_counts: Some(&prep.dataset.rna),
        rna_size_factors: Some(&extra.size_factors),
        rna_pca: Some(prep.rna_pca.view()),
        atac: Some(&prep.atac),
        atac_lsi: extra.atac_lsi.as_ref().map(|a| a.view()),
        gene_activity: extra.gene_activity.as_ref().map(|(m, _)| m),
        cell_weights: Some(&prep.cell_weights),
        covariates: Some(prep.covariates.view()),
    }
}

/// Only what is known of a cell before its `direction`'s target is predicted.
pub fn source_only<'a>(
    data: &TranslationData<'a>,
    extra: &'a TranslationInputs,
    direction: Direction,
) -> TranslationData<'a> {
    match direction {
        Direction::RnaToAtac => TranslationData {
            rna_values: data.rna_values,
            rna_counts: data.rna_counts,
            rna_size_factors: data.rna_size_factors,
            rna_pca: data.rna_pca,
            covariates: Some(extra.covariates_without_depth.view()),
            ..TranslationData::default()
        },
        Direction::AtacToRna => TranslationData {
            atac: data.atac,
            atac_lsi: data.atac_lsi,
            gene_activity: data.gene_activity,
            covariates: data.covariates,
            ..TranslationData::default()
        },
    }
}

/// Builds the configured translator for the prepared data's shapes.
pub fn build(
    cfg: &ExperimentConfig,
    dims: &TranslatorDims,
    peak_chroms: &[String],
) -> Result<Box<dyn Translator>> {
    let device = cfg.training.device.resolve()?;
    let babel = |c: &BabelConfig, gene_activity: bool| -> Result<Box<dyn Translator>> {
        let c = BabelConfig {
            gene_activity,
            ..c.clone()
        };
        let groups = ChromGroups::from_chromosomes(peak_chroms, c.chrom_split.min_peaks_per_group)
            .context("grouping the peaks by chromosome for the ATAC encoder")?;
        let n_activity = gene_activity.then_some(dims.activity_genes.len());
        Ok(Box::new(Babel::new(
            c,
            dims.n_genes,
            &groups,
            n_activity,
            device,
        )?))
    };
    Ok(match &cfg.model {
        ModelConfig::Babel(c) => babel(c, false)?,
        ModelConfig::Crossmp(c) => babel(c, true)?,
        ModelConfig::Ridge(c) => Box::new(Ridge::new(c.clone())),
        ModelConfig::KnnRegression(c) => Box::new(KnnRegression::new(c.clone())),
        ModelConfig::Sailerx(c) => {
            let model_dims = pipeline::ModelDims {
                n_covariates: dims.n_covariates,
                n_pcs: dims.n_pcs,
                n_genes: dims.n_genes,
                n_rna_covariates: 0,
            };
            Box::new(SailerxTranslator::new(pipeline::build_model(
                c,
                &model_dims,
                peak_chroms,
                device,
            )?)?)
        }
    })
}

/// The outcome of training and evaluating one translation run.
#[derive(Debug)]
pub struct TranslationOutcome {
    pub model: Box<dyn Translator>,
    pub dims: TranslatorDims,
    pub history: TrainHistory,
    pub split: split::Split,
    /// the test cells' predictions, per direction
    pub predictions: Vec<(Direction, Prediction)>,
    /// the test cells' latent embedding from the source modality, per direction, when the
    /// model has a latent space
    pub latents: Vec<(Direction, Latent)>,
    pub rows: Vec<Row>,
    pub device: String,
    pub train_seconds: f64,
}

/// Fits the configured translator on the training cells and scores its predictions of
/// the test cells, from their source modality alone, in every configured direction.
pub fn train_and_evaluate(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<TranslationOutcome> {
    let split = pipeline::make_split(cfg, prep)?;
    if split.test.is_empty() {
        bail!("the split has no test cells to score the translation on");
    }
    let extra = inputs(cfg, prep)?;
    let all = data(prep, &extra);
    let peak_chroms: Vec<String> = prep.dataset.peaks.iter().map(|p| p.chrom.clone()).collect();
    let dims = TranslatorDims {
        kind: cfg.model.kind().to_string(),
        n_genes: prep.dataset.genes.len(),
        n_peaks: prep.dataset.peaks.len(),
        activity_genes: extra
            .gene_activity
            .as_ref()
            .map(|(_, g)| g.clone())
            .unwrap_or_default(),
        n_covariates: prep.covariates.ncols(),
        n_pcs: prep.rna_pca.ncols(),
        target_sum: extra.target_sum,
    };
    tch::manual_seed(cfg.seed as i64);
    let mut model = build(cfg, &dims, &peak_chroms)?;
    let started = Instant::now();
    let history = model.fit(
        &all,
        FitCells {
            train: &split.train,
            val: &split.val,
        },
        &cfg.training,
        cfg.seed,
        observer,
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    let mut predictions = Vec::new();
    let mut latents = Vec::new();
    let mut rows = Vec::new();
    for &d in &cfg.translation.directions {
        let source = source_only(&all, &extra, d);
        let p = model.translate(&source, &split.test, d)?;
        rows.push(score(cfg, prep, &split.test, d, &p)?);
        predictions.push((d, p));
        if let Some(e) = model.embed(&source, &split.test, d)? {
            latents.push((d, Latent::of(e)?));
        }
    }
    Ok(TranslationOutcome {
        model,
        dims,
        history,
        split,
        predictions,
        latents,
        rows,
        device: format!("{:?}", cfg.training.device.resolve()?),
        train_seconds,
    })
}

/// The prediction metrics of one direction on the test cells (SPEC.md section 4):
/// ATAC: AUROC and AUPRC flattened, per cell and per peak, RMSE against the binarized
/// peaks (`rmse_atac`), expected calibration error of the probabilities in 10 bins
/// (`calibration_error`); RNA: Pearson and Spearman flattened, per cell and per gene, RMSE
/// (`rmse_rna`), on log1p normalized values. (Two RMSE names, so that a table's column
/// never mixes the directions.)
pub fn score(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    test: &[usize],
    direction: Direction,
    p: &Prediction,
) -> Result<Row> {
    let metrics = match direction {
        Direction::RnaToAtac => {
            let truth = dense_rows(&prep.atac, test);
            let r = prediction::atac_report(truth.view(), p.values().view())?;
            vec![
                ("auroc".to_string(), r.auroc[0].value),
                ("auroc_per_cell".into(), r.auroc[1].value),
                ("auroc_per_peak".into(), r.auroc[2].value),
                ("auprc".into(), r.auprc[0].value),
                ("auprc_per_cell".into(), r.auprc[1].value),
                ("auprc_per_peak".into(), r.auprc[2].value),
                (
                    "rmse_atac".into(),
                    prediction::rmse(truth.view(), p.values().view())?,
                ),
                (
                    "calibration_error".into(),
                    prediction::calibration(truth.view(), p.values().view(), 10)?.ece,
                ),
            ]
        }
        Direction::AtacToRna => {
            let truth = dense_rows(&prep.rna_values, test);
            let r = prediction::rna_report(truth.view(), p.values().view())?;
            vec![
                ("pearson".to_string(), r.pearson[0].value),
                ("pearson_per_cell".into(), r.pearson[1].value),
                ("pearson_per_gene".into(), r.pearson[2].value),
                ("spearman".into(), r.spearman[0].value),
                ("spearman_per_cell".into(), r.spearman[1].value),
                ("spearman_per_gene".into(), r.spearman[2].value),
                ("rmse_rna".into(), r.rmse),
            ]
        }
    };
    Ok(Row {
        method: format!("{} {}", cfg.model.kind(), direction.arrow()),
        variant: String::new(),
        dataset: prep.dataset.name.clone(),
        seed: cfg.seed,
        cells: test.len(),
        metrics,
    })
}

/// A model's latent embedding of some cells and its Leiden clusters
/// ([`crate::pipeline::leiden_clusters`]), which prediction files carry for the user to
/// annotate.
#[derive(Debug, Clone)]
pub struct Latent {
    pub embedding: Array2<f32>,
    pub clusters: Vec<usize>,
}

impl Latent {
    /// Clusters `embedding` (seed 0).
    pub fn of(embedding: Array2<f32>) -> Result<Self> {
        let clusters = crate::pipeline::leiden_clusters(embedding.view(), 0)?.labels;
        Ok(Self {
            embedding,
            clusters,
        })
    }
}

/// Writes the test cells' predictions as h5ad, `prediction_<direction>.h5ad` per
/// direction (see [`write_prediction`]).
pub fn write_predictions(dir: &Path, prep: &Prepared, outcome: &TranslationOutcome) -> Result<()> {
    let cells = prep.dataset.cells.subset(&outcome.split.test);
    let peaks: Vec<String> = prep.dataset.peaks.iter().map(ToString::to_string).collect();
    for (d, p) in &outcome.predictions {
        let features = match d {
            Direction::RnaToAtac => &peaks,
            Direction::AtacToRna => &prep.dataset.genes,
        };
        let out = dir.join(format!("prediction_{}.h5ad", d.as_str()));
        let latent = outcome.latents.iter().find(|(e, _)| e == d).map(|(_, l)| l);
        write_prediction(&out, &cells, features, p, latent)?;
    }
    Ok(())
}

/// Writes a prediction as h5ad: `X` the probabilities or the log1p values, `obs` the
/// cells, `var_names` the predicted features, and with a latent `obsm["X_latent"]` its
/// embedding and `obs["leiden"]` its clusters. A count model's expected counts go to
/// `<stem>_counts.h5ad` beside it. Returns the files written.
pub fn write_prediction(
    out: &Path,
    cells: &crossomics_data::CellTable,
    features: &[String],
    prediction: &Prediction,
    latent: Option<&Latent>,
) -> Result<Vec<std::path::PathBuf>> {
    let obsm: Vec<(&str, ndarray::ArrayView2<f32>)> = latent
        .map(|l| vec![("X_latent", l.embedding.view())])
        .unwrap_or_default();
    let with_clusters;
    let cells = match latent {
        Some(l) => {
            with_clusters = cells.clone().with_column(
                "leiden",
                l.clusters.iter().map(ToString::to_string).collect(),
            )?;
            &with_clusters
        }
        None => cells,
    };
    let write = |path: &Path, x: &Array2<f32>| -> Result<()> {
        crossomics_data::h5ad::write(
            path,
            Some(crossomics_data::h5ad::Matrix::Dense(x.view())),
            cells,
            features,
            &obsm,
        )
        .with_context(|| format!("writing {}", path.display()))
    };
    write(out, prediction.values())?;
    let mut written = vec![out.to_path_buf()];
    if let Prediction::Rna {
        expected_counts: Some(c),
        ..
    } = prediction
    {
        let stem = out
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| "prediction".into());
        let counts = out.with_file_name(format!("{stem}_counts.h5ad"));
        write(&counts, c)?;
        written.push(counts);
    }
    Ok(written)
}
