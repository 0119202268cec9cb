//! `crossomics` CLI: Apply a saved model to new data: `embed` and `translate`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use crossomics_limits::Limits;

use crossomics_data::Peak;
use crossomics_data::pair::SingleModality;

use crossomics_data::input::{Registry, Request};

use crate::apply::Single;

/// The new cells: a file or folder, or a fragments file.
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
    /// The data: any file or folder the input registry reads (a plain-layout or 10x
    /// matrix folder, a 10x `.h5`, an `.h5mu`, a TOML file with a `[dataset]` table, and
    /// for `translate` an `.h5ad` of the source modality). Or give `--fragments` instead
    /// (ATAC only).
    #[arg(
        long,
        required_unless_present = "fragments",
        conflicts_with = "fragments"
    )]
    pub data: Option<PathBuf>,
    #[command(flatten)]
    pub fragments: FragmentArgs,
}

/// Embed new data with a finished run's saved model: its fitted preprocessing is
/// replayed on the data (genes matched by name, peaks by interval; missing features
/// are zero and reported), and the latent means are written as h5ad (`obsm`).
#[derive(Debug, clap::Args)]
pub struct EmbedArgs {
    /// A finished run folder (config.resolved.toml, preprocessing.json,
    /// model.safetensors, model.json).
    pub run: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// Output `.h5ad`.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub limits: crate::limit_args::LimitArgs,
}

impl EmbedArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            run,
            input: InputArgs { data, fragments },
            out,
            limits,
        } = self;
        embed(
            &run,
            data.as_deref(),
            &fragments,
            &out,
            &limits.apply(Limits::default()),
        )
    }
}

/// Predict the other modality of new cells with a finished translation run's saved
/// model: genes matched by name or Ensembl id, peaks by genomic overlap; refused when
/// the data covers too few of the model's features or is of another genome build.
/// Writes h5ad (`X` the prediction, `obsm["X_latent"]` the embedding).
#[derive(Debug, clap::Args)]
pub struct TranslateArgs {
    /// A finished translation run folder (config.resolved.toml, preprocessing.json,
    /// model.json and the weights).
    pub run: PathBuf,
    #[command(flatten)]
    pub input: InputArgs,
    /// `rna_to_atac` or `atac_to_rna` (default: the model's first direction).
    #[arg(long)]
    pub direction: Option<String>,
    /// The genome build of the data (`GRCh38`, `hg19`, `mm10`, `GRCm39`), checked against the model's.
    #[arg(long)]
    pub genome: Option<String>,
    /// Read this h5ad layer instead of `X` (raw counts are needed).
    #[arg(long)]
    pub layer: Option<String>,
    /// Refuse data covering fewer of the model's features (default: the run's
    /// `translation.min_coverage`).
    #[arg(long)]
    pub min_coverage: Option<f64>,
    /// Output `.h5ad`.
    #[arg(long)]
    pub out: PathBuf,
    #[command(flatten)]
    pub limits: crate::limit_args::LimitArgs,
}

impl TranslateArgs {
    pub fn run(self) -> Result<()> {
        let Self {
            run,
            input: InputArgs { data, fragments },
            direction,
            genome,
            layer,
            min_coverage,
            out,
            limits,
        } = self;
        translate(
            &run,
            data.as_deref(),
            &fragments,
            direction.as_deref(),
            genome.as_deref(),
            layer.as_deref(),
            min_coverage,
            &out,
            &limits.apply(Limits::default()),
        )
    }
}

/// ATAC data as a 10x fragments file, counted into peaks per cell barcode as it is read.
#[derive(Debug, Clone, clap::Args)]
pub struct FragmentArgs {
    /// A 10x ATAC `fragments.tsv.gz` (BGZF with its `.tbi` beside it, gzip or plain):
    /// counted into the model's own peaks (or `--peaks`) for the cells of `--barcodes`.
    #[arg(long, requires = "barcodes")]
    fragments: Option<PathBuf>,
    /// The cells: one barcode a line (10x `barcodes.tsv[.gz]`).
    #[arg(long, requires = "fragments")]
    barcodes: Option<PathBuf>,
    /// Count into the peaks of this BED file instead of the model's (features the model
    /// lacks are then matched by overlap, like any other data's peaks).
    #[arg(long, requires = "fragments")]
    peaks: Option<PathBuf>,
}

impl FragmentArgs {
    /// The ATAC counts of the fragments file for the `--barcodes` cells, in the `--peaks`
    /// or else in the model's own final peaks.
    fn read(
        &self,
        fitted: &crossomics_data::fitted::FittedPreprocessing,
        limits: &Limits,
    ) -> Result<SingleModality<Peak>> {
        use crossomics_data::fragments;
        let (Some(file), Some(barcodes)) = (&self.fragments, &self.barcodes) else {
            anyhow::bail!("--fragments needs --barcodes");
        };
        let peaks = match &self.peaks {
            Some(bed) => fragments::read_bed(bed, limits)?,
            None => fitted.peak_intervals()?,
        };
        let clock = Instant::now();
        let atac = fragments::count_atac(file, barcodes, peaks, limits)?;
        eprintln!(
            "counted {} into {} peaks for {} cells ({} non-zeros) in {:.2} s",
            file.display(),
            atac.features.len(),
            atac.cells.len(),
            atac.matrix.nnz(),
            clock.elapsed().as_secs_f64()
        );
        Ok(atac)
    }
}

/// `crossomics translate`: a saved translator's prediction of new data's other modality.
#[allow(clippy::too_many_arguments)] // one per command-line option
fn translate(
    run_dir: &Path,
    data: Option<&Path>,
    fragments: &FragmentArgs,
    direction: Option<&str>,
    genome: Option<&str>,
    layer: Option<&str>,
    min_coverage: Option<f64>,
    out: &Path,
    limits: &Limits,
) -> Result<()> {
    use crate::apply;
    let saved = apply::SavedTranslator::load(run_dir)?;
    let direction = match direction {
        Some(d) => toml::Value::String(d.to_string())
            .try_into::<crossomics_models::Direction>()
            .map_err(|_| anyhow::anyhow!("--direction {d}: expected rna_to_atac or atac_to_rna"))?,
        // fragments are ATAC data
        None if fragments.fragments.is_some() => crossomics_models::Direction::AtacToRna,
        None => *saved
            .directions()
            .first()
            .context("the run lists no translation direction")?,
    };
    let declared = genome
        .map(str::parse::<crossomics_data::transfer::GenomeBuild>)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--genome: {e}"))?;
    let clock = Instant::now();
    let (source, data) = match data {
        Some(data) => (
            Registry::builtin().read_single(
                data,
                apply::source_modality(direction),
                &Request {
                    limits: *limits,
                    layer: layer.map(str::to_string),
                    ..Request::default()
                },
            )?,
            data,
        ),
        None => {
            anyhow::ensure!(
                direction == crossomics_models::Direction::AtacToRna,
                "--fragments is ATAC data: it translates with --direction atac_to_rna, which {} {}",
                run_dir.display(),
                if saved
                    .directions()
                    .contains(&crossomics_models::Direction::AtacToRna)
                {
                    "has"
                } else {
                    "lacks"
                }
            );
            let file = fragments.fragments.as_deref().expect("clap requires one");
            (Single::Atac(fragments.read(&saved.fitted, limits)?), file)
        }
    };
    let read_s = clock.elapsed().as_secs_f64();
    let t = saved.translate(&source, direction, declared, min_coverage, limits)?;
    let translate_s = clock.elapsed().as_secs_f64() - read_s;
    let c = &t.coverage;
    eprintln!(
        "coverage: {} of the model's {} {} {} found in {} ({:.1}%)",
        c.found,
        c.total,
        c.modality,
        c.modality.features(),
        data.display(),
        100.0 * c.fraction()
    );
    let written = apply::write_h5ad(out, &t)?;
    let total_s = clock.elapsed().as_secs_f64();
    eprintln!(
        "{} cells in {total_s:.2} s ({:.0} cells/s): read {read_s:.2} s, preprocess + translate {translate_s:.2} s, write {:.2} s",
        t.cells.len(),
        t.cells.len() as f64 / total_s.max(1e-9),
        total_s - read_s - translate_s
    );
    for f in written {
        println!(
            "wrote {} ({} cells x {} {})",
            f.display(),
            t.cells.len(),
            t.features.len(),
            match direction {
                crossomics_models::Direction::RnaToAtac => "peaks: probabilities",
                crossomics_models::Direction::AtacToRna => "genes",
            }
        );
    }
    Ok(())
}

/// `crossomics embed`: a saved model's latent means of new data.
fn embed(
    run_dir: &Path,
    data: Option<&Path>,
    fragments: &FragmentArgs,
    out: &Path,
    limits: &Limits,
) -> Result<()> {
    use crossomics_data::fitted::FittedPreprocessing;
    let file = |name: &str| -> Result<PathBuf> {
        let p = run_dir.join(name);
        anyhow::ensure!(
            p.is_file(),
            "{}: missing {name} (is this a finished run folder saved with output.checkpoint = true?)",
            run_dir.display()
        );
        Ok(p)
    };
    let cfg = crate::config::parse(
        &std::fs::read_to_string(file("config.resolved.toml")?)?,
        &file("config.resolved.toml")?.display().to_string(),
    )?;
    let fitted = FittedPreprocessing::load(&file("preprocessing.json")?)?;
    let shapes = crate::artifacts::read_shapes(&file("model.json")?)?;
    let checked = cfg.model.checked()?;
    anyhow::ensure!(
        checked.integrates(),
        "{}: `crossomics embed` embeds with an integration model, not `{}` (use `crossomics translate`)",
        run_dir.display(),
        cfg.model.kind()
    );
    let (dataset, data) = match data {
        Some(data) => (Registry::builtin().read_paired(data, limits)?, data),
        None => {
            anyhow::ensure!(
                checked.needs().single_modality_cells,
                "{}: this {} model embeds cells through their RNA as well; --fragments gives only ATAC",
                run_dir.display(),
                cfg.model.kind()
            );
            let atac = fragments.read(&fitted, limits)?;
            let n = atac.cells.len();
            // no RNA: one placeholder gene that matches none of the model's (all zero)
            let empty =
                crossomics_data::Csr::try_from_csr_data(n, 1, vec![0; n + 1], vec![], vec![])
                    .expect("an empty CSR matrix is valid");
            let file = fragments.fragments.as_deref().expect("clap requires one");
            let name = file.display().to_string();
            (
                crossomics_data::PairedDataset::new(
                    name,
                    empty,
                    atac.matrix,
                    atac.cells,
                    vec!["(no RNA: ATAC fragments only)".to_string()],
                    atac.features,
                )?,
                file,
            )
        }
    };
    // cells given by their fragments have no RNA: the RNA steps (and the RNA side of
    // cell QC) are skipped for them, as for a single-modality upload to a translator
    let t = if fragments.fragments.is_some() {
        fitted.apply_one(&dataset, crossomics_data::transfer::Modality::Atac)
    } else {
        fitted.apply(&dataset)
    }
    .with_context(|| format!("preprocessing {} as the run did", data.display()))?;
    let c = &t.coverage;
    eprintln!(
        "coverage: {} of {} model genes and {} of {} model peaks found in {} (missing ones are zero)",
        c.genes_found,
        c.genes_total,
        c.peaks_found,
        c.peaks_total,
        data.display()
    );
    let peaks: Vec<String> = fitted
        .peak_intervals()
        .with_context(|| run_dir.join("preprocessing.json").display().to_string())?
        .into_iter()
        .map(|p| p.chrom)
        .collect();
    let mut model = checked.integrator(&crossomics_models::BuildContext {
        shapes: &shapes,
        peak_chroms: &peaks,
        device: cfg.training.device.resolve()?,
    })?;
    model
        .load(run_dir)
        .with_context(|| format!("loading the weights of {}", run_dir.display()))?;
    let n = t.dataset.n_cells();
    // the encoders read only the peaks (and the RNA values): the decoders' confounders
    // are unused here, at their reference 0
    let covariates = ndarray::Array2::<f32>::zeros((n, shapes.n_covariates));
    let rna_covariates = ndarray::Array2::<f32>::zeros((n, shapes.n_rna_covariates));
    let data = crossomics_models::CellData {
        atac: Some(&t.atac),
        rna_values: Some(&t.rna),
        rna_counts: Some(&t.dataset.rna),
        covariates: Some(covariates.view()),
        rna_covariates: Some(rna_covariates.view()),
        ..Default::default()
    };
    let cells: Vec<usize> = (0..n).collect();
    let embedding = model.embed(&data, &cells)?;
    let clusters = crate::integration::leiden_clusters(embedding.view(), cfg.seed)?;
    let obs = t.dataset.cells.clone().with_column(
        "leiden",
        clusters.labels.iter().map(ToString::to_string).collect(),
    )?;
    let key = format!("X_{}", cfg.model.kind());
    crossomics_data::h5ad::write(out, None, &obs, &[], &[(key.as_str(), embedding.view())])?;
    println!(
        "{} cells embedded ({} dimensions) into {} (obsm[\"{key}\"]; {} Leiden clusters in obs[\"leiden\"])",
        n,
        embedding.ncols(),
        out.display(),
        clusters.n_clusters
    );
    Ok(())
}
