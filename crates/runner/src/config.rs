//! The experiment config schema. A typo in a TOML file is an error naming the key path.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use crossomics_data::config::{DatasetConfig, PreprocessConfig};
use crossomics_data::split::SplitConfig;
pub use crossomics_models::ModelConfig;
use crossomics_models::TrainOptions;
use crossomics_models::translate::Direction;
use serde::{Deserialize, Serialize};

/// One experiment: what data, how prepared and split, which model, how trained and
/// evaluated, where results go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Names the folder under the output directory.
    pub name: String,
    /// What the run does: integration (embed and score the latent space) or translation
    /// (predict one modality from the other and score the predictions). Models that only
    /// translate (`babel`, `crossmp`, `ridge`, `knn_regression`, `mean`) imply
    /// `translation`.
    #[serde(default, skip_serializing_if = "Task::is_integration")]
    pub task: Task,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub dataset: DatasetConfig,
    /// An extra per-cell table (CSV, TSV or Parquet) joined to the cells by barcode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cell_metadata: Option<CellMetadataConfig>,
    #[serde(default)]
    pub preprocessing: PreprocessConfig,
    #[serde(default)]
    pub covariates: CovariateConfig,
    #[serde(default)]
    pub split: SplitConfig,
    pub model: ModelConfig,
    #[serde(default)]
    pub training: TrainOptions,
    /// SAILERX's hybrid mode: some training cells are ATAC-only (off by default).
    #[serde(default, skip_serializing_if = "HybridConfig::is_off")]
    pub hybrid: HybridConfig,
    #[serde(default)]
    pub evaluation: EvaluationConfig,
    /// Translation settings (`task = "translation"`).
    #[serde(default, skip_serializing_if = "TranslationConfig::is_default")]
    pub translation: TranslationConfig,
    #[serde(default)]
    pub output: OutputConfig,
    /// `[limits]`: what an input file may claim before it is refused (cells, features,
    /// entries, inflated bytes, ...; see `docs/configs.md`). Raise them for atlases.
    #[serde(default, skip_serializing_if = "is_default_limits")]
    pub limits: crossomics_limits::Limits,
}

fn is_default_limits(l: &crossomics_limits::Limits) -> bool {
    *l == crossomics_limits::Limits::default()
}

/// `[cell_metadata]`: labels kept outside the count files (cell types, donors, time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CellMetadataConfig {
    /// `.csv`, `.tsv` or `.parquet`, relative to the config file.
    pub path: std::path::PathBuf,
    /// The table's column holding the barcodes.
    #[serde(default = "default_barcode_column")]
    pub barcode_column: String,
}

fn default_barcode_column() -> String {
    "barcode".into()
}

/// The `task` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    #[default]
    Integration,
    Translation,
}

impl Task {
    pub fn is_integration(&self) -> bool {
        *self == Self::Integration
    }
}

/// `[translation]`: cross-modal prediction settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TranslationConfig {
    /// The directions trained and scored.
    pub directions: Vec<Direction>,
    /// Genome build of the dataset (`GRCh38`, `hg19`, `mm10`, `GRCm39`): the gene annotation of CrossMP's
    /// gene activity, and the build a saved model refuses mismatching uploads against.
    pub genome: Option<String>,
    /// CrossMP regulatory potential: weight `2^(-d / half_distance)` for a peak centre at
    /// distance `d` from the gene's TSS, pairs up to `max_distance` apart.
    pub half_distance: f64,
    pub max_distance: u64,
    /// Applying a saved model to new data: the fewest of the model's source features
    /// (genes or peaks) the data must cover, else the prediction is refused.
    pub min_coverage: f64,
}

impl Default for TranslationConfig {
    fn default() -> Self {
        Self {
            directions: Direction::BOTH.to_vec(),
            genome: None,
            half_distance: 10_000.0,
            max_distance: crossomics_data::annotation::DEFAULT_MAX_DISTANCE,
            min_coverage: 0.5,
        }
    }
}

impl TranslationConfig {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl ExperimentConfig {
    /// Whether this run translates: an explicit `task = "translation"`, or a model that
    /// does not integrate.
    pub fn is_translation(&self) -> bool {
        self.task == Task::Translation || !self.model.integrates()
    }

    /// A table row's method name: `method`, marked `[transductive]` when the
    /// preprocessing was fitted on every cell.
    pub fn label(&self, method: &str) -> String {
        if self.preprocessing.transductive {
            format!("{method} [transductive]")
        } else {
            method.to_string()
        }
    }

    /// Every check that needs no data: the model's own ([`crossomics_models::ModelSpec`]),
    /// training, the task against the model's families, hybrid mode, the genome build.
    /// Errors name the key path. Run by [`parse`] and [`load`], so that `crossomics
    /// check` and every run refuse a config that cannot work before loading data.
    pub fn check(&self) -> Result<()> {
        let checked = self
            .model
            .checked()
            .map_err(|e| anyhow::anyhow!("model.{e}"))?;
        let model = &*checked;
        self.training
            .check()
            .map_err(|e| anyhow::anyhow!("training.{e}"))?;
        if self.is_translation() && !model.translates() {
            bail!(
                "task = \"translation\": model kind `{}` does not translate",
                model.kind()
            );
        }
        if self.translation.directions.is_empty() && self.is_translation() {
            bail!("translation.directions: empty");
        }
        if let Some(g) = &self.translation.genome {
            g.parse::<crossomics_data::transfer::GenomeBuild>()
                .map_err(|e| anyhow::anyhow!("translation.genome: {e}"))?;
        } else if model.needs().gene_activity {
            bail!(
                "translation.genome: model kind `{}` computes gene activity, which needs the genome build (\"GRCh38\", \"hg19\", \"mm10\" or \"GRCm39\")",
                model.kind()
            );
        }
        let h = &self.hybrid;
        if !(0.0..1.0).contains(&h.unpaired_fraction) {
            bail!(
                "hybrid.unpaired_fraction = {} is not in [0, 1)",
                h.unpaired_fraction
            );
        }
        if h.unpaired_fraction > 0.0 {
            if !model.needs().single_modality_cells {
                bail!(
                    "hybrid.unpaired_fraction > 0: model kind `{}` (as configured) does not train on ATAC-only cells{}",
                    model.kind(),
                    if model.integrates() {
                        " (the symmetric SAILERX embeds cells through their RNA, which ATAC-only cells do not have)"
                    } else {
                        ""
                    }
                );
            }
            if h.every < 2 {
                bail!("hybrid.every = {} < 2", h.every);
            }
        }
        if !(0.0..=1.0).contains(&self.translation.min_coverage) {
            bail!(
                "translation.min_coverage = {} is not in [0, 1]",
                self.translation.min_coverage
            );
        }
        if self.evaluation.knn_k == 0 {
            bail!("evaluation.knn_k = 0");
        }
        Ok(())
    }
}

/// `[hybrid]`: SAILERX's hybrid mode (`docs/models.md`). A seeded `unpaired_fraction` of
/// the training cells is treated as ATAC-only: their RNA is never shown to the model, they
/// train every `every`-th step with the ATAC VAE's own terms (reconstruction, KL,
/// invariance) and no alignment term, and the decoder gets one more confounder, a flag
/// that is 1 for them. Validation and test cells stay paired. For the symmetric variant
/// the ATAC-only cells would need their RNA to be embedded, so the two do not combine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HybridConfig {
    /// Fraction of the training cells made ATAC-only (0 switches the mode off).
    pub unpaired_fraction: f64,
    /// Every `every`-th optimiser step takes a batch of ATAC-only cells (SAILERX: 3).
    pub every: usize,
}

impl Default for HybridConfig {
    fn default() -> Self {
        Self {
            unpaired_fraction: 0.0,
            every: 3,
        }
    }
}

impl HybridConfig {
    pub fn is_off(&self) -> bool {
        *self == Self::default()
    }
}

/// Confounders the decoder is conditioned on (SAILERX's invariance mechanism).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CovariateConfig {
    /// Standardized log ATAC depth.
    pub log_atac_depth: bool,
    /// A cell column whose categories become a one-hot batch indicator.
    pub batch_column: Option<String>,
}

impl Default for CovariateConfig {
    fn default() -> Self {
        Self {
            log_atac_depth: true,
            batch_column: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluationConfig {
    /// The cell column holding cell types, when the data has one. Without it a run
    /// reports the metrics that need no labels (Leiden clusters of the embedding, batch
    /// mixing when `batch_column` is set, reconstruction of the test cells; all
    /// translation metrics); a column named here that the data lacks is an error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub label_column: Option<String>,
    /// Neighbours for kNN label transfer (train -> test cells).
    pub knn_k: usize,
    /// Also score the inputs (RNA PCA, ATAC LSI) as reference rows.
    pub input_baselines: bool,
    /// A cell column of technical batches (for the batch-coloured layout).
    pub batch_column: Option<String>,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            label_column: None,
            knn_k: 15,
            input_baselines: true,
            batch_column: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputConfig {
    /// Runs go to `<dir>/<experiment name>/<run id>/`, relative to the working directory.
    pub dir: PathBuf,
    /// Save the trained weights (safetensors).
    pub checkpoint: bool,
    /// Draw `losses.png` and UMAP layouts of the embedding (`umap_<column>.png`).
    pub plots: bool,
}

impl Default for OutputConfig {
    fn default() -> Self {
        Self {
            dir: PathBuf::from("runs"),
            checkpoint: true,
            plots: true,
        }
    }
}

/// Parses a config from TOML text; errors name the key path (`training.lr`) and `origin`.
pub fn parse(text: &str, origin: &str) -> Result<ExperimentConfig> {
    let value: toml::Value =
        toml::from_str(text).with_context(|| format!("{origin}: not valid TOML"))?;
    from_value(value, origin)
}

pub(crate) fn from_value(value: toml::Value, origin: &str) -> Result<ExperimentConfig> {
    // Tagged enums buffer their content, which hides the path inside them: check the
    // model section on its own first so that its errors name the full key path.
    if let Some(model) = value.get("model").and_then(toml::Value::as_table) {
        let mut params = model.clone();
        if let Some(kind) = params.remove("kind")
            && let Some(kind) = kind.as_str()
        {
            ModelConfig::check_table(kind, params)
                .map_err(|(path, e)| anyhow::anyhow!("{origin}: at `model.{path}`: {e}"))?;
        }
    }
    let cfg: ExperimentConfig = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("{origin}: at `{path}`: {}", e.into_inner())
    })?;
    cfg.check()
        .map_err(|e| anyhow::anyhow!("{origin}: {e:#}"))?;
    Ok(cfg)
}

/// Reads a config file and applies `--set key.path=value` overrides (values in TOML syntax;
/// bare words are taken as strings).
pub fn load(path: &Path, overrides: &[String]) -> Result<ExperimentConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config {}", path.display()))?;
    let origin = path.display().to_string();
    let mut value: toml::Value =
        toml::from_str(&text).with_context(|| format!("{origin}: not valid TOML"))?;
    for o in overrides {
        apply_override(&mut value, o).with_context(|| format!("override `{o}`"))?;
    }
    from_value(value, &origin)
}

/// Applies `a.b.c=value` (a `--set` override; the value in TOML syntax, a bare word
/// taken as a string) to a TOML tree.
pub fn apply_override(root: &mut toml::Value, assignment: &str) -> Result<()> {
    let (key, raw) = assignment
        .split_once('=')
        .ok_or_else(|| anyhow::anyhow!("expected key.path=value"))?;
    let value: toml::Value = toml::from_str::<toml::Table>(&format!("v = {}", raw.trim()))
        .map(|mut t| t.remove("v").expect("parsed key"))
        .unwrap_or_else(|_| toml::Value::String(raw.trim().to_string()));
    set_dotted(root, key.trim(), value)
}

/// Sets `a.b.c = value` in a TOML tree, creating tables on the way.
pub fn set_dotted(root: &mut toml::Value, key: &str, value: toml::Value) -> Result<()> {
    let parts: Vec<&str> = key.split('.').collect();
    let mut node = root;
    for part in &parts[..parts.len() - 1] {
        let table = node
            .as_table_mut()
            .ok_or_else(|| anyhow::anyhow!("`{part}` is inside a value that is not a table"))?;
        node = table
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    }
    node.as_table_mut()
        .ok_or_else(|| anyhow::anyhow!("the parent of `{key}` is not a table"))?
        .insert(parts[parts.len() - 1].to_string(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "name = \"t\"\n[model]\nkind = \"sailerx\"\nlatent_dim = 8\n";

    #[test]
    fn defaults_fill_in_and_round_trip() {
        let c = parse(MINIMAL, "t.toml").unwrap();
        let ModelConfig::Sailerx(m) = &c.model else {
            panic!("{:?}", c.model)
        };
        assert_eq!(m.latent_dim, 8);
        assert_eq!(m.alignment_weight, 6000.0);
        assert_eq!(c.training.batch_size, 200);
        let again = parse(&toml::to_string(&c).unwrap(), "resolved").unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn typos_name_the_key_path_and_file() {
        for (text, needle) in [
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\nlatent_dims = 8\n",
                "latent_dims",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\n[training]\nlr = \"x\"\n",
                "training.lr",
            ),
            ("name = \"t\"\n[model]\nkind = \"sailerxx\"\n", "sailerxx"),
            (
                "name = \"t\"\nseeed = 1\n[model]\nkind = \"sailerx\"\n",
                "seeed",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\n[model.encoder]\nnorm = \"group\"\n",
                "model.encoder.norm",
            ),
        ] {
            let err = format!("{:#}", parse(text, "exp.toml").unwrap_err());
            assert!(
                err.contains(needle) && err.contains("exp.toml"),
                "{needle}: {err}"
            );
        }
    }

    #[test]
    fn configs_that_cannot_work_are_refused_when_parsed_naming_the_key() {
        for (text, needle) in [
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\nlatent_dim = 0\n",
                "model.latent_dim: 0 < 1",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\n[model.encoder]\nhidden = [0]\n",
                "model.encoder.hidden",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"babel\"\natac_weight = -1.0\n",
                "model.atac_weight",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"ridge\"\nalphas = []\n",
                "model.alphas",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"knn_regression\"\nks = [0]\n",
                "model.ks",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\n[training]\nlr = -1.0\n",
                "training.lr",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"crossmp\"\n",
                "translation.genome",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"ridge\"\n[hybrid]\nunpaired_fraction = 0.5\n",
                "hybrid.unpaired_fraction",
            ),
            (
                "name = \"t\"\n[model]\nkind = \"sailerx\"\n[translation]\ngenome = \"hg99\"\n",
                "translation.genome",
            ),
        ] {
            let err = format!("{:#}", parse(text, "exp.toml").unwrap_err());
            assert!(
                err.contains(needle) && err.contains("exp.toml"),
                "{needle}: {err}"
            );
        }
        // the same parameters within range pass
        parse(
            "name = \"t\"\n[model]\nkind = \"crossmp\"\n[translation]\ngenome = \"mm10\"\n",
            "ok.toml",
        )
        .unwrap();
    }

    #[test]
    fn overrides_set_nested_keys() {
        let mut v: toml::Value = toml::from_str(MINIMAL).unwrap();
        apply_override(&mut v, "model.latent_dim=32").unwrap();
        apply_override(&mut v, "training.lr = 0.01").unwrap();
        apply_override(&mut v, "evaluation.label_column=celltype").unwrap();
        let c = from_value(v, "x").unwrap();
        let ModelConfig::Sailerx(m) = &c.model else {
            panic!("{:?}", c.model)
        };
        assert_eq!(m.latent_dim, 32);
        assert_eq!(c.training.lr, 0.01);
        assert_eq!(c.evaluation.label_column.as_deref(), Some("celltype"));
        let mut v: toml::Value = toml::from_str(MINIMAL).unwrap();
        assert!(apply_override(&mut v, "nonsense").is_err());
    }
}
