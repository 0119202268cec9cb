//! The worked examples of `docs/extending.md`: a new integration model, translator,
//! alignment strategy, metric and input format, each written here, in a crate of its
//! own, without editing crossomics, and run through the same code paths as the built-in
//! ones. (Inside crossomics each would be its own file plus one registration line.)

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};

use crossomics_data::input::{Input, InputFormat, Registry, Request};
use crossomics_data::{CellTable, PairedDataset, Peak};
use crossomics_limits::Limits;
use crossomics_models::align::Aligner;
use crossomics_models::{
    CellData, Direction, EpochRecord, FitCells, Integrator, ModelError, ModelSpec, Prediction,
    TrainHistory, TrainOptions, Translator,
};
use crossomics_runner::config::ExperimentConfig;
use crossomics_runner::scores::Role;
use crossomics_runner::scores::integration::{self, EmbeddingMetric, EmbeddingView};
use crossomics_runner::{experiment, integration as task, pipeline, translation};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::{Array2, ArrayView2};

fn quickstart(overrides: &[&str]) -> ExperimentConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../configs/quickstart.toml");
    let overrides: Vec<String> = overrides.iter().map(ToString::to_string).collect();
    experiment::plan(&path, &overrides)
        .unwrap()
        .remove(0)
        .config
}

// --- an integration model ------------------------------------------------------------

/// "Integration" by the RNA PCA alone: the simplest model, no training.
#[derive(Debug)]
struct PcaOnly;

impl Integrator for PcaOnly {
    fn fit(
        &mut self,
        _: &CellData<'_>,
        _: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> crossomics_models::error::Result<TrainHistory> {
        Ok(TrainHistory::default())
    }

    fn embed(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
    ) -> crossomics_models::error::Result<Array2<f32>> {
        let pca = CellData::need(data.rna_pca, "the RNA PCA", "pca_only")?;
        Ok(pca.select(ndarray::Axis(0), cells))
    }

    fn save(&self, _: &Path) -> crossomics_models::error::Result<()> {
        Ok(())
    }

    fn load(&mut self, _: &Path) -> crossomics_models::error::Result<()> {
        Ok(())
    }
}

#[test]
fn a_new_integration_model_runs_through_the_runner() {
    let cfg = quickstart(&[]);
    let prep = pipeline::prepare(&cfg, Path::new(".")).unwrap();
    let out = task::integrate(&cfg, &prep, "pca_only", &mut |_| {}, |_| {
        Ok(Box::new(PcaOnly))
    })
    .unwrap();
    assert_eq!(out.embedding, prep.rna_pca);
    // its row is scored like any model's, and equals the RNA PCA input row
    let row = |role: Role, name: &str| {
        out.rows
            .iter()
            .find(|r| r.role == role && r.method == name)
            .unwrap_or_else(|| panic!("{name}: {:?}", out.rows))
            .metrics
            .clone()
    };
    let model = row(Role::Model, "pca_only");
    assert!(model.iter().any(|(k, _)| k == "knn_accuracy"));
    assert_eq!(model, row(Role::Input, "rna_pca (input)"));
}

// --- a translator --------------------------------------------------------------------

/// Predicts that every peak is open with probability one half, whatever the cell: the
/// width comes from the shapes the model is built for.
#[derive(Debug)]
struct Coin {
    peaks: usize,
}

impl Translator for Coin {
    fn fit(
        &mut self,
        _: &CellData<'_>,
        _: FitCells<'_>,
        _: &TrainOptions,
        _: u64,
        _: &mut dyn FnMut(&EpochRecord),
    ) -> crossomics_models::error::Result<TrainHistory> {
        Ok(TrainHistory::default())
    }

    fn translate(
        &self,
        _: &CellData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> crossomics_models::error::Result<Prediction> {
        match direction {
            Direction::RnaToAtac => Ok(Prediction::Atac {
                probabilities: Array2::from_elem((cells.len(), self.peaks), 0.5),
            }),
            Direction::AtacToRna => Err(ModelError::Input("coin: RNA -> ATAC only".into())),
        }
    }

    fn save(&self, _: &Path) -> crossomics_models::error::Result<()> {
        Ok(())
    }

    fn load(&mut self, _: &Path) -> crossomics_models::error::Result<()> {
        Ok(())
    }
}

#[test]
fn a_new_translator_runs_through_the_runner_and_scores_as_chance() {
    let cfg = quickstart(&[
        "task=\"translation\"",
        "translation.directions=[\"rna_to_atac\"]",
    ]);
    let prep = pipeline::prepare(&cfg, Path::new(".")).unwrap();
    let out = translation::translate_with(&cfg, &prep, "coin", &mut |_| {}, |ctx| {
        Ok(Box::new(Coin {
            peaks: ctx.shapes.n_peaks,
        }))
    })
    .unwrap();
    assert_eq!(out.rows.len(), 1);
    let row = &out.rows[0];
    assert_eq!(row.method, "coin RNA -> ATAC");
    // every prediction ties: the ranking metrics are those of chance
    let value = |name: &str| row.metrics.iter().find(|(k, _)| k == name).unwrap().1;
    assert!((value("auroc") - 0.5).abs() < 1e-9);
    assert!((value("auroc_per_peak") - 0.5).abs() < 1e-9);
}

// --- an alignment strategy -----------------------------------------------------------

/// Squared distance between the latent means and the target's first `d` columns: a
/// "hard" alignment without a projection, counting its calls.
#[derive(Debug, Default)]
struct FirstColumns {
    calls: std::sync::Arc<AtomicUsize>,
}

impl Aligner for FirstColumns {
    fn align(
        &self,
        target: &tch::Tensor,
        mu: &tch::Tensor,
        _: Option<&tch::Tensor>,
        mean: bool,
    ) -> tch::Tensor {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let d = mu.size()[1];
        let diff = mu - target.narrow(1, 0, d);
        if mean {
            diff.square().mean(tch::Kind::Float)
        } else {
            diff.square().sum(tch::Kind::Float)
        }
    }
}

#[test]
fn a_new_alignment_strategy_trains_sailerx() {
    let cfg = quickstart(&[
        "training.epochs=3",
        "training.warmup_epochs=1",
        "evaluation.input_baselines=false",
    ]);
    let prep = pipeline::prepare(&cfg, Path::new(".")).unwrap();
    let crossomics_models::ModelConfig::Sailerx(sailerx) = &cfg.model else {
        panic!("the quickstart is SAILERX")
    };
    let checked = sailerx.checked().unwrap();
    let aligner = FirstColumns::default();
    let calls = aligner.calls.clone();
    let out = task::integrate(&cfg, &prep, "sailerx first-columns", &mut |_| {}, |ctx| {
        let model = crossomics_models::sailerx::build(&checked, ctx)?;
        Ok(Box::new(model.with_aligner(Box::new(aligner))))
    })
    .unwrap();
    assert!(calls.load(Ordering::Relaxed) > 0);
    let align: Vec<f64> = out
        .history
        .epochs
        .iter()
        .filter_map(|e| e.train.iter().find(|(k, _)| k == "align").map(|(_, v)| *v))
        .collect();
    assert_eq!(align.len(), 4, "warm-up and main epochs report the term");
    assert!(align.iter().all(|v| v.is_finite() && *v > 0.0), "{align:?}");
}

// --- a metric ------------------------------------------------------------------------

/// The mean Euclidean norm of the embedding's rows.
struct MeanNorm;

impl EmbeddingMetric for MeanNorm {
    fn score(&self, v: &EmbeddingView<'_>) -> anyhow::Result<Vec<(String, f64)>> {
        let n = v.embedding.nrows() as f64;
        let total: f64 = v
            .embedding
            .rows()
            .into_iter()
            .map(|r| r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt())
            .sum();
        Ok(vec![("mean_norm".into(), total / n)])
    }
}

#[test]
fn a_new_metric_joins_the_task_metric_set() {
    let cfg = quickstart(&[]);
    let prep = pipeline::prepare(&cfg, Path::new(".")).unwrap();
    let split = prep.split.clone();
    let emb = ArrayView2::from_shape((3, 2), &[3.0f32, 4.0, 0.0, 0.0, 6.0, 8.0]).unwrap();
    let clusters = task::leiden_clusters(prep.rna_pca.view(), 0).unwrap();
    let view = EmbeddingView {
        embedding: emb,
        clusters: &clusters,
        labels: None,
        batches: None,
        split: &split,
        knn_k: 15,
        seed: 0,
    };
    let metrics: Vec<&dyn EmbeddingMetric> = integration::METRICS
        .iter()
        .copied()
        .chain([&MeanNorm as &dyn EmbeddingMetric])
        .collect();
    let scores = integration::score_all(&metrics, &view).unwrap();
    let (name, value) = scores.last().unwrap();
    assert_eq!((name.as_str(), *value), ("mean_norm", 5.0));
    // without labels or batches, the built-in set reports only the label-free ones
    let names: Vec<&str> = scores.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(names, ["leiden_clusters", "leiden_modularity", "mean_norm"]);
}

// --- an input format -----------------------------------------------------------------

/// A dense TSV of paired counts: a header `barcode`, then `rna:<gene>` and
/// `atac:<chrom>:<start>-<end>` columns; one cell a line.
#[derive(Debug)]
struct PairedTsv;

impl InputFormat for PairedTsv {
    fn name(&self) -> &'static str {
        "paired TSV"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        path.is_file() && path.to_string_lossy().ends_with(".paired.tsv")
    }

    fn read(&self, path: &Path, _: &Request) -> crossomics_data::error::Result<Input> {
        let bad =
            |what: String| crossomics_data::DataError::invalid(path.display().to_string(), what);
        let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines
            .next()
            .ok_or_else(|| bad("empty".into()))?
            .split('\t')
            .collect();
        let (mut genes, mut peaks, mut kinds) = (Vec::new(), Vec::new(), Vec::new());
        for h in &header[1..] {
            if let Some(g) = h.strip_prefix("rna:") {
                kinds.push((true, genes.len()));
                genes.push(g.to_string());
            } else if let Some(p) = h.strip_prefix("atac:") {
                kinds.push((false, peaks.len()));
                peaks.push(Peak::parse(p).map_err(bad)?);
            } else {
                return Err(bad(format!("column `{h}` is neither rna: nor atac:")));
            }
        }
        let (mut rna, mut atac, mut barcodes) = (Vec::new(), Vec::new(), Vec::new());
        for (i, line) in lines.enumerate() {
            let fields: Vec<&str> = line.split('\t').collect();
            barcodes.push(fields[0].to_string());
            for (&(is_rna, j), v) in kinds.iter().zip(&fields[1..]) {
                let v: f32 = v
                    .parse()
                    .map_err(|_| bad(format!("line {}: `{v}`", i + 2)))?;
                if v != 0.0 {
                    if is_rna { &mut rna } else { &mut atac }.push((i, j, v));
                }
            }
        }
        let csr = |entries: &[(usize, usize, f32)], cols: usize| {
            let mut coo = CooMatrix::new(barcodes.len(), cols);
            for &(i, j, v) in entries {
                coo.push(i, j, v);
            }
            CsrMatrix::from(&coo)
        };
        Ok(Input::Paired(PairedDataset::new(
            "paired tsv",
            csr(&rna, genes.len()),
            csr(&atac, peaks.len()),
            CellTable::new(barcodes.clone()),
            genes,
            peaks,
        )?))
    }
}

#[test]
fn a_new_input_format_is_detected_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cells.paired.tsv");
    std::fs::write(
        &path,
        "barcode\trna:CD3E\trna:MS4A1\tatac:chr1:100-600\na\t3\t0\t1\nb\t0\t5\t0\n",
    )
    .unwrap();
    let registry = Registry::builtin().with(PairedTsv);
    assert_eq!(
        registry.detect(&path, &Limits::default()).unwrap().name(),
        "paired TSV"
    );
    let d = registry.read_paired(&path, &Limits::default()).unwrap();
    assert_eq!(d.genes, ["CD3E", "MS4A1"]);
    assert_eq!(d.peaks[0].to_string(), "chr1:100-600");
    assert_eq!(d.cells.barcodes(), ["a", "b"]);
    assert_eq!((d.rna.nnz(), d.atac.nnz()), (2, 1));
    // its single modality, as `crossomics translate` and the portal read it
    let request = Request::default();
    let rna = registry
        .read_single(&path, crossomics_data::transfer::Modality::Rna, &request)
        .unwrap();
    assert_eq!(rna.modality(), crossomics_data::transfer::Modality::Rna);
    // the built-in registry does not know it, and says what it tried
    let err = Registry::builtin()
        .read_paired(&path, &Limits::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("tried: 10x matrix folder"),
        "{err}"
    );
}
