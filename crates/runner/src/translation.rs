//! The translation task, one way through: prepared data -> a translator (the model
//! registry) fitted on the training cells -> predictions of the test cells' target
//! modality from their source modality alone -> prediction metrics.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use crossomics_data::split;
use crossomics_models::data::dense_rows;
use crossomics_models::{
    BuildContext, Direction, EpochRecord, FitCells, Prediction, Shapes, TrainHistory, Translator,
};
use ndarray::Array2;

use crate::config::ExperimentConfig;
use crate::pipeline::Prepared;
use crate::scores::{self, Role};
use crate::table::Row;

/// The outcome of training and evaluating one translation run.
#[derive(Debug)]
pub struct TranslationOutcome {
    pub model: Box<dyn Translator>,
    /// the shapes the model was built for (`model.json`)
    pub shapes: Shapes,
    pub history: TrainHistory,
    pub split: split::Split,
    /// the test cells' predictions, per direction
    pub predictions: Vec<(Direction, Prediction)>,
    /// the test cells' latent embedding from the source modality, per direction, when the
    /// model has a latent space
    pub latents: Vec<(Direction, Latent)>,
    pub rows: Vec<Row>,
    /// the same metrics on the validation cells, which settings are chosen on
    pub validation_rows: Vec<Row>,
    pub device: String,
    pub train_seconds: f64,
}

/// Fits the configured translator (the registry's translator of `[model]`) on the
/// training cells and scores its predictions of the test cells.
pub fn train_and_evaluate(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<TranslationOutcome> {
    let checked = cfg.model.checked()?;
    translate_with(cfg, prep, cfg.model.kind(), observer, |ctx| {
        Ok(checked.translator(ctx)?)
    })
}

/// Fits the translator that `build` makes for the data's shapes on the training cells
/// and scores its predictions of the test cells, from their source modality alone, in
/// every configured direction (rows `<method> <arrow>`).
pub fn translate_with(
    cfg: &ExperimentConfig,
    prep: &Prepared,
    method: &str,
    observer: &mut dyn FnMut(&EpochRecord),
    build: impl FnOnce(&BuildContext<'_>) -> Result<Box<dyn Translator>>,
) -> Result<TranslationOutcome> {
    if prep.atac.values().iter().any(|v| *v != 0.0 && *v != 1.0) {
        bail!(
            "translation predicts binarized peaks: the ATAC steps must end with `binarize_atac` (not TF-IDF)"
        );
    }
    if prep.size_factors.is_none() {
        bail!("translation compares log1p-normalized RNA: add a `normalize_rna` step");
    }
    let split = prep.split.clone();
    if split.test.is_empty() {
        bail!("the split has no test cells to score the translation on");
    }
    let all = prep.data();
    let peak_chroms = prep.peak_chroms();
    let shapes = prep.shapes();
    let device = cfg.training.device.resolve()?;
    tch::manual_seed(cfg.seed as i64);
    let mut model = build(&BuildContext {
        shapes: &shapes,
        peak_chroms: &peak_chroms,
        device,
    })
    .context("building the model of [model]")?;
    let started = Instant::now();
    let history = model.fit(
        &all,
        FitCells {
            train: &split.train,
            val: &split.val,
            extra: None,
        },
        &cfg.training,
        cfg.seed,
        observer,
    )?;
    let train_seconds = started.elapsed().as_secs_f64();
    // a cell whose ATAC is predicted has no ATAC depth (its standardized value is the
    // mean, 0), and its batch may be one the decoder never saw (the held-out donor of the
    // competition split): every confounder at its reference, 0, as for uploaded data
    let reference = Array2::<f32>::zeros(prep.covariates.dim());
    let mut predictions = Vec::new();
    let mut latents = Vec::new();
    let mut rows = Vec::new();
    let mut validation_rows = Vec::new();
    for &d in &cfg.translation.directions {
        let source = all.source_only(d, reference.view());
        if !split.val.is_empty() {
            let p = model.translate(&source, &split.val, d)?;
            validation_rows.push(score(method, cfg, prep, &split.val, d, &p)?);
        }
        let p = model.translate(&source, &split.test, d)?;
        rows.push(score(method, cfg, prep, &split.test, d, &p)?);
        predictions.push((d, p));
        if let Some(e) = model.embed(&source, &split.test, d)? {
            latents.push((d, Latent::of(e)?));
        }
    }
    Ok(TranslationOutcome {
        model,
        shapes,
        history,
        split,
        predictions,
        latents,
        rows,
        validation_rows,
        device: format!("{device:?}"),
        train_seconds,
    })
}

/// The translation task's metrics ([`scores::translation::METRICS`]) of one direction on
/// the test cells, as a row `<method> <arrow>`.
pub fn score(
    method: &str,
    cfg: &ExperimentConfig,
    prep: &Prepared,
    test: &[usize],
    direction: Direction,
    p: &Prediction,
) -> Result<Row> {
    let truth = match direction {
        Direction::RnaToAtac => dense_rows(&prep.atac, test),
        Direction::AtacToRna => dense_rows(&prep.rna_values, test),
    };
    let metrics = scores::translation::score_all(
        scores::translation::METRICS,
        direction,
        truth.view(),
        p.values().view(),
    )?;
    Ok(Row {
        method: cfg.label(&format!("{method} {}", direction.arrow())),
        role: if cfg.model.is_baseline() {
            Role::Baseline
        } else {
            Role::Model
        },
        variant: String::new(),
        dataset: prep.dataset.name.clone(),
        seed: cfg.seed,
        cells: test.len(),
        metrics,
    })
}

/// A model's latent embedding of some cells and its Leiden clusters
/// ([`crate::integration::leiden_clusters`]), which prediction files carry for the user to
/// annotate.
#[derive(Debug, Clone)]
pub struct Latent {
    pub embedding: Array2<f32>,
    pub clusters: Vec<usize>,
}

impl Latent {
    /// Clusters `embedding` (seed 0).
    pub fn of(embedding: Array2<f32>) -> Result<Self> {
        let clusters = crate::integration::leiden_clusters(embedding.view(), 0)?.labels;
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
