//! Applying a saved translator to new data of one modality: what `crossomics translate`
//! and the portal run.
//!
//! The upload is put into the model's input features (genes by name or Ensembl id,
//! case-insensitively; peaks by genomic overlap, since peak calls rarely share
//! coordinates), checked against the model's genome build, refused below the configured
//! coverage of the model's features, preprocessed with the run's fitted steps (for that
//! modality alone), and translated.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail, ensure};
use crossomics_data::fitted::FittedPreprocessing;
use crossomics_data::transfer::{
    self, FeatureCoverage, GenomeBuild, Modality, ModelFeatures, PeakAggregation, Upload,
};
use crossomics_data::{CellTable, Csr, PairedDataset, Peak};
use crossomics_limits::{Limit, Limits};
use crossomics_models::{BuildContext, CellData, Direction, Prediction, Shapes, Translator};
use ndarray::Array2;

use crate::config::ExperimentConfig;
use crate::translation;

/// A finished translation run loaded for prediction.
#[derive(Debug)]
pub struct SavedTranslator {
    pub dir: PathBuf,
    pub config: ExperimentConfig,
    pub fitted: FittedPreprocessing,
    /// the shapes the model was built for (`model.json`)
    pub shapes: Shapes,
    pub model: Box<dyn Translator>,
    /// the model's genome build, from `translation.genome`
    pub genome: Option<GenomeBuild>,
}

pub use crossomics_data::input::Single;

/// What the registry's [`Single`] is to translation: the upload's view of it.
fn upload(source: &Single) -> Upload<'_> {
    match source {
        Single::Rna { data, ids } => Upload::Rna {
            data,
            ids: ids.as_deref(),
        },
        Single::Atac(d) => Upload::Atac(d),
    }
}

/// The source modality of a direction.
pub fn source_modality(d: Direction) -> Modality {
    match d {
        Direction::RnaToAtac => Modality::Rna,
        Direction::AtacToRna => Modality::Atac,
    }
}

/// The target modality of a direction.
pub fn target_modality(d: Direction) -> Modality {
    match d {
        Direction::RnaToAtac => Modality::Atac,
        Direction::AtacToRna => Modality::Rna,
    }
}

/// What a translation of new cells produced.
#[derive(Debug, Clone)]
pub struct Translated {
    pub direction: Direction,
    /// the cells that passed the model's cell QC, in input order
    pub cells: CellTable,
    pub prediction: Prediction,
    /// the model's latent embedding of the cells and its Leiden clusters, when it has one
    pub latent: Option<translation::Latent>,
    /// the model's features found in the data
    pub coverage: FeatureCoverage,
    /// names of the predicted features (peaks as `chr:start-end`, or genes)
    pub features: Vec<String>,
}

fn empty_csr(rows: usize, cols: usize) -> Csr {
    Csr::try_from_csr_data(rows, cols, vec![0; rows + 1], vec![], vec![])
        .expect("an empty CSR matrix is valid")
}

impl SavedTranslator {
    /// Loads a finished run folder of a translation run saved with its weights.
    pub fn load(dir: &Path) -> Result<Self> {
        let file = |name: &str| -> Result<PathBuf> {
            let p = dir.join(name);
            ensure!(
                p.is_file(),
                "{}: missing {name} (is this a finished translation run saved with output.checkpoint = true?)",
                dir.display()
            );
            Ok(p)
        };
        let cfg_path = file("config.resolved.toml")?;
        let config = crate::config::parse(
            &std::fs::read_to_string(&cfg_path)?,
            &cfg_path.display().to_string(),
        )?;
        ensure!(
            config.is_translation(),
            "{}: a {} integration run, not a translation run",
            dir.display(),
            config.model.kind()
        );
        let fitted = FittedPreprocessing::load(&file("preprocessing.json")?)?;
        let shapes = crate::artifacts::read_shapes(&file("model.json")?)?;
        let peak_chroms = fitted
            .peaks
            .iter()
            .map(|p| Peak::parse(p).map(|p| p.chrom))
            .collect::<std::result::Result<Vec<String>, String>>()
            .map_err(|e| anyhow::anyhow!("{}: {e}", dir.join("preprocessing.json").display()))?;
        let mut model = config.model.checked()?.translator(&BuildContext {
            shapes: &shapes,
            peak_chroms: &peak_chroms,
            device: config.training.device.resolve()?,
        })?;
        model
            .load(dir)
            .with_context(|| format!("loading the weights of {}", dir.display()))?;
        let genome = config
            .translation
            .genome
            .as_deref()
            .map(str::parse::<GenomeBuild>)
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: translation.genome: {e}", cfg_path.display()))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            config,
            fitted,
            shapes,
            model,
            genome,
        })
    }

    /// The directions the model was trained and scored in.
    pub fn directions(&self) -> &[Direction] {
        &self.config.translation.directions
    }

    /// Translates `source` in `direction`: build check (ATAC), feature matching,
    /// coverage check (`min_coverage`, else the config's), the run's preprocessing, the
    /// model. `declared` is the build the user says the data is in. The prediction is a
    /// dense cells x target-features array: its size is checked against
    /// `limits.max_dense_values` before anything is computed.
    pub fn translate(
        &self,
        source: &Single,
        direction: Direction,
        declared: Option<GenomeBuild>,
        min_coverage: Option<f64>,
        limits: &Limits,
    ) -> Result<Translated> {
        let upload = upload(source);
        let name = upload.source().display().to_string();
        let modality = source_modality(direction);
        ensure!(
            source.modality() == modality,
            "{name}: {direction} needs {modality} data, but the file holds {}",
            source.modality()
        );
        ensure!(
            self.directions().contains(&direction),
            "{}: the model was not trained for {direction}",
            self.dir.display()
        );
        let parse = |names: &[String]| -> Result<Vec<Peak>> {
            names
                .iter()
                .map(|p| Peak::parse(p).map_err(|e| anyhow::anyhow!("{}: {e}", self.dir.display())))
                .collect()
        };
        let input_peaks = parse(&self.fitted.input_peaks)?;
        if let Single::Atac(d) = source {
            transfer::check_build(self.genome, declared, &d.features, &name)?;
        }
        let (input, input_names, model_names) = match modality {
            Modality::Rna => (
                ModelFeatures::Genes(&self.fitted.input_genes),
                &self.fitted.input_genes,
                &self.fitted.genes,
            ),
            Modality::Atac => (
                ModelFeatures::Peaks(&input_peaks),
                &self.fitted.input_peaks,
                &self.fitted.peaks,
            ),
        };
        let projected = transfer::to_model_features(upload, input, PeakAggregation::Auto)?;
        // the model's own features are a subset of its input features (by name): their
        // coverage follows from the input features found
        let found: std::collections::HashMap<&str, bool> = input_names
            .iter()
            .map(String::as_str)
            .zip(projected.found.iter().copied())
            .collect();
        let coverage = FeatureCoverage::new(
            modality,
            model_names
                .iter()
                .map(|f| (found.get(f.as_str()).copied().unwrap_or(false), f.clone())),
            model_names.len(),
        );
        let targets = match direction {
            Direction::RnaToAtac => self.fitted.peaks.len(),
            Direction::AtacToRna => self.fitted.genes.len(),
        };
        limits.check(
            Limit::DenseValues,
            projected.matrix.nrows() as u128 * targets as u128,
            &name,
            &format!(
                "the prediction ({} cells x {targets} features, dense)",
                projected.matrix.nrows()
            ),
        )?;
        let min = min_coverage.unwrap_or(self.config.translation.min_coverage);
        transfer::require_coverage(&coverage, min, &name)?;
        let aligned = projected.matrix;
        let cells = match source {
            Single::Rna { data, .. } => data.cells.clone(),
            Single::Atac(d) => d.cells.clone(),
        };
        let n = aligned.nrows();
        let (rna, atac) = match modality {
            Modality::Rna => (aligned, empty_csr(n, input_peaks.len())),
            Modality::Atac => (empty_csr(n, self.fitted.input_genes.len()), aligned),
        };
        let paired = PairedDataset::new(
            name.clone(),
            rna,
            atac,
            cells,
            self.fitted.input_genes.clone(),
            input_peaks,
        )?;
        let t = self
            .fitted
            .apply_one(&paired, modality)
            .with_context(|| format!("preprocessing {name} as the run did"))?;
        let n = t.dataset.n_cells();
        // every decoder confounder at its reference (0: the mean standardized depth, no
        // batch): nothing of the training cells' standardization applies to new cells
        let covariates = Array2::<f32>::zeros((n, self.shapes.n_covariates));
        let activity = if self.config.model.needs().gene_activity && modality == Modality::Atac {
            Some(
                crate::pipeline::gene_activity(
                    &t.atac,
                    &t.dataset.peaks,
                    &self.shapes.activity_genes,
                    &self.config,
                )?
                .0,
            )
        } else {
            None
        };
        let data = CellData {
            rna_values: Some(&t.rna),
            rna_pca: t.rna_pca.as_ref().map(|a| a.view()),
            atac: Some(&t.atac),
            atac_lsi: t.atac_lsi.as_ref().map(|a| a.view()),
            gene_activity: activity.as_ref(),
            covariates: Some(covariates.view()),
            ..CellData::default()
        }
        .source_only(direction, covariates.view());
        let all: Vec<usize> = (0..n).collect();
        let prediction = self.model.translate(&data, &all, direction)?;
        let embedding = self.model.embed(&data, &all, direction)?;
        let features = match direction {
            Direction::RnaToAtac => self.fitted.peaks.clone(),
            Direction::AtacToRna => self.fitted.genes.clone(),
        };
        if prediction.values().ncols() != features.len() {
            bail!(
                "{}: the model predicts {} features, its preprocessing lists {}",
                self.dir.display(),
                prediction.values().ncols(),
                features.len()
            );
        }
        Ok(Translated {
            direction,
            cells: t.dataset.cells,
            prediction,
            latent: embedding.map(translation::Latent::of).transpose()?,
            coverage,
            features,
        })
    }
}

/// Writes a translation as h5ad ([`translation::write_prediction`]: `X` the prediction,
/// `obsm["X_latent"]` and `obs["leiden"]` when the model has a latent, expected counts
/// beside it).
/// Returns the files written.
pub fn write_h5ad(out: &Path, t: &Translated) -> Result<Vec<PathBuf>> {
    translation::write_prediction(out, &t.cells, &t.features, &t.prediction, t.latent.as_ref())
}
