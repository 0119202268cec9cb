//! SAILERX (Cao et al., NAR 50(21):e121, 2022): an ATAC VAE whose latent space is made
//! invariant to technical confounders and aligned with RNA through the agreement of
//! pairwise cosine similarities (SPEC.md §1).
//!
//! Loss per minibatch (main phase), with `q(z|x) = N(mu, diag exp(logvar))`:
//!
//! ```text
//! L = w_kl KL(q || N(0, I))                                   summed
//!   + recon_weight * BCE_with_logits(dec([z, c]), x)           summed
//!   + w_kl * lambda * (mean_ij KL(q_i || q_j) - d / 2)         invariance
//!   + gamma * sum_ij w_i w_j (cos(p_i, p_j) - cos(mu_i, mu_j))^2  structural similarity
//! ```
//! `c` are the confounders the decoder is conditioned on (standardized log ATAC depth,
//! batch one-hot), `p` the RNA PCA, `w` the per-cell depth weights, `w_kl` cyclical.
//! Warm-up epochs optimise `mean BCE + gamma * mean_ij (cos p - cos mu)^2` without KL.
//!
//! Ablations swap the alignment term (`alignment`, see [`Alignment`]) or switch a term off
//! with its weight (`invariance_weight = 0`, `alignment_weight = 0`).

use std::path::Path;

use crossomics_data::Csr;
use crossomics_data::loader::{Loader, Prefetch, Source};
use crossomics_encoders::{
    ChromGroups, ChromSplitConfig, ChromSplitDecoder, ChromSplitEncoder, CsrBatch, Decoder,
    Dispersion, Encoder, Gaussian, GaussianEncoder, HeadConfig, HeadDecoder, Likelihood,
    LikelihoodDecoder, LikelihoodKind, MeanLink, MlpConfig, MlpDecoder, SparseEncoder,
};
use crossomics_losses::{KlSchedule, alignment, kl, recon, similarity};
use ndarray::{Array2, ArrayView2};
use serde::{Deserialize, Serialize};
use tch::nn::Module;
use tch::{Device, Tensor, nn};

use crate::error::{ModelError, Result};
use crate::tensor;
use crate::train::{LossOutput, Minibatch, StepContext, Trainable};

/// How the latent means are tied to the RNA PCA (the `alignment` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Alignment {
    /// SAILERX: `sum_ij w_i w_j (cos(p_i, p_j) - cos(mu_i, mu_j))^2` (the paper).
    #[default]
    Structural,
    /// KL between the row-softmax distributions of the two cosine-similarity matrices
    /// (`temperature`), weighted per cell.
    StructuralKl,
    /// Symmetric InfoNCE (CLIP) between a learned linear projection of the RNA PCA and the
    /// latent means (`temperature`): a shared space, cell by cell.
    Contrastive,
    /// Mean squared error between a learned linear projection of the RNA PCA and the
    /// latent means: one shared space, forced.
    Hard,
    /// No alignment term: an ATAC VAE alone.
    None,
}

impl Alignment {
    /// Whether the RNA PCA is first mapped into the latent space by a learned projection.
    fn projects(self) -> bool {
        matches!(self, Self::Contrastive | Self::Hard)
    }
}

/// The KL weight schedule (the `kl_schedule` key), over main-phase steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KlAnnealing {
    /// SAILERX: rises from 0 to 1 over half of every `kl_period_epochs`, then holds.
    #[default]
    Cyclical,
    /// Rises from 0 to 1 over the first `kl_period_epochs`, then stays at 1.
    Linear,
    /// Always 1.
    Constant,
}

/// The ATAC encoder and decoder (the `architecture` key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Fully connected encoder and decoder (`encoder`, `decoder` widths) on dense input.
    #[default]
    Mlp,
    /// The paper's chromosome-split encoder and decoder (`chrom_split`): one block of
    /// layers per chromosome, small contigs merged; the first layer reads the CSR rows
    /// when `sparse_input` is on.
    ChromSplit,
}

/// The `[model]` parameters of `kind = "sailerx"`; defaults are the published ones, except
/// `architecture` (`mlp` until the chromosome-split runs are benchmarked here).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SailerxConfig {
    pub latent_dim: i64,
    pub encoder: MlpConfig,
    pub decoder: MlpConfig,
    /// lambda: weight of the invariance (pairwise KL) term.
    pub invariance_weight: f64,
    /// gamma: weight of the structural-similarity term.
    pub alignment_weight: f64,
    /// Scales the summed BCE (the published `pos_w = 20`).
    pub recon_weight: f64,
    /// Period of the cyclical KL weight (warm-up length of the linear one), in epochs.
    pub kl_period_epochs: u64,
    /// How the KL weight (of the KL and invariance terms) evolves.
    pub kl_schedule: KlAnnealing,
    /// Weight cells by their RNA/ATAC depth ratio in the alignment term.
    pub cell_weights: bool,
    /// The alignment term (ablations): `structural` is the paper's.
    pub alignment: Alignment,
    /// Temperature of the `structural_kl` and `contrastive` alignments.
    pub temperature: f64,
    pub architecture: Architecture,
    /// Shape of the `chrom_split` modules (`hidden`, `norm`, `activation`, `dropout`,
    /// `min_peaks_per_group`, `sparse_kernel`).
    pub chrom_split: ChromSplitConfig,
    /// `chrom_split` only: compute the first layer from the CSR rows (cost ~ non-zeros)
    /// instead of the densified rows; the same function to rounding.
    pub sparse_input: bool,
    /// The symmetric extension (SPEC.md §1, not in the paper): an RNA VAE beside the ATAC
    /// one (MLP encoder on the normalized RNA with the `encoder` widths, negative binomial
    /// decoder on the counts with the `decoder` widths, softmax mean times the library
    /// size, per-gene dispersion, conditioned on the standardized log RNA depth), its own
    /// KL and invariance terms, and the alignment between the two latent means instead of
    /// against the RNA PCA. The embedding is then `[mu_atac, mu_rna]` (2 x latent_dim).
    pub symmetric: bool,
    /// Reproduce the published code's quirk (SPEC.md §1): the reparameterised sample uses
    /// std = exp(logvar) while the KL assumes exp(logvar / 2). Off: the correct sampling.
    pub faithful: bool,
}

impl Default for SailerxConfig {
    fn default() -> Self {
        let mlp = |hidden: Vec<i64>| MlpConfig {
            hidden,
            ..MlpConfig::default()
        };
        Self {
            latent_dim: 50,
            encoder: mlp(vec![64, 32]),
            decoder: mlp(vec![32, 64]),
            invariance_weight: 1.0,
            alignment_weight: 6000.0,
            recon_weight: 20.0,
            kl_period_epochs: 100,
            kl_schedule: KlAnnealing::Cyclical,
            cell_weights: true,
            alignment: Alignment::Structural,
            temperature: 0.1,
            architecture: Architecture::Mlp,
            chrom_split: ChromSplitConfig::default(),
            sparse_input: true,
            symmetric: false,
            faithful: false,
        }
    }
}

impl SailerxConfig {
    pub fn check(&self) -> Result<()> {
        let bad = |name, reason: String| Err(ModelError::Parameter { name, reason });
        if self.latent_dim < 1 {
            return bad("model.latent_dim", format!("{} < 1", self.latent_dim));
        }
        for (name, v) in [
            ("model.invariance_weight", self.invariance_weight),
            ("model.alignment_weight", self.alignment_weight),
            ("model.recon_weight", self.recon_weight),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                return bad(name, format!("{v} is not a non-negative number"));
            }
        }
        if self.architecture == Architecture::ChromSplit {
            self.chrom_split
                .check()
                .map_err(|e| ModelError::Parameter {
                    name: "model.chrom_split",
                    reason: e.to_string(),
                })?;
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return bad(
                "model.temperature",
                format!("{} is not a positive number", self.temperature),
            );
        }
        if self
            .encoder
            .hidden
            .iter()
            .chain(&self.decoder.hidden)
            .any(|h| *h < 1)
        {
            return bad(
                "model.encoder/decoder.hidden",
                "layer widths must be >= 1".into(),
            );
        }
        Ok(())
    }
}

/// The RNA side of the symmetric variant, rows the same cells as the ATAC.
#[derive(Debug, Clone, Copy)]
pub struct RnaInput<'a> {
    /// What the RNA encoder reads (normalized, log1p), cells x genes.
    pub values: &'a Csr,
    /// What its negative binomial decoder reconstructs: raw counts, cells x genes.
    pub counts: &'a Csr,
    /// Confounders the RNA decoder is conditioned on (standardized log RNA depth, batch).
    pub covariates: ArrayView2<'a, f32>,
}

/// What SAILERX trains on, all rows the same cells.
#[derive(Debug, Clone, Copy)]
pub struct SailerxInput<'a> {
    /// Binarized peaks, cells x peaks.
    pub atac: &'a Csr,
    /// RNA PCA scores, the alignment target (cells x components).
    pub rna_pca: ArrayView2<'a, f32>,
    /// Confounders the decoder is conditioned on (cells x c; c may be 0).
    pub covariates: ArrayView2<'a, f32>,
    /// Per-cell alignment weights (all 1 to switch weighting off).
    pub cell_weights: &'a [f32],
    /// The RNA VAE's input: required by `symmetric`, ignored otherwise.
    pub rna: Option<RnaInput<'a>>,
}

impl SailerxInput<'_> {
    pub fn check(&self) -> Result<()> {
        let n = self.atac.nrows();
        let rows = [
            ("RNA PCA", self.rna_pca.nrows()),
            ("covariates", self.covariates.nrows()),
            ("cell weights", self.cell_weights.len()),
        ];
        let rna_rows = self.rna.iter().flat_map(|r| {
            [
                ("RNA values", r.values.nrows()),
                ("RNA counts", r.counts.nrows()),
                ("RNA covariates", r.covariates.nrows()),
            ]
        });
        for (what, got) in rows.into_iter().chain(rna_rows) {
            if got != n {
                return Err(ModelError::Input(format!(
                    "{what} has {got} rows, the ATAC matrix {n}"
                )));
            }
        }
        if self
            .rna_pca
            .iter()
            .chain(self.covariates.iter())
            .chain(self.cell_weights)
            .any(|v| !v.is_finite())
        {
            return Err(ModelError::Input(
                "non-finite value in the RNA PCA, covariates or cell weights".into(),
            ));
        }
        if let Some(r) = &self.rna {
            if r.values.ncols() != r.counts.ncols() {
                return Err(ModelError::Input(format!(
                    "RNA values have {} genes, RNA counts {}",
                    r.values.ncols(),
                    r.counts.ncols()
                )));
            }
            if r.counts
                .values()
                .iter()
                .any(|v| !(v.is_finite() && *v >= 0.0))
                || r.values.values().iter().any(|v| !v.is_finite())
                || r.covariates.iter().any(|v| !v.is_finite())
            {
                return Err(ModelError::Input(
                    "RNA counts must be finite and non-negative, RNA values and covariates finite"
                        .into(),
                ));
            }
        }
        Ok(())
    }
}

/// The encoder of either [`Architecture`].
#[derive(Debug)]
enum AtacEncoder {
    Mlp(GaussianEncoder),
    ChromSplit(ChromSplitEncoder),
}

impl AtacEncoder {
    /// From the CSR rows when given (chromosome-split only), else the dense rows.
    fn encode(&self, x: &Tensor, csr: Option<&CsrBatch<'_>>, train: bool) -> Gaussian {
        match (self, csr) {
            (Self::ChromSplit(e), Some(csr)) => e.encode_csr(csr, None, train),
            (Self::ChromSplit(e), None) => e.encode(x, None, train),
            (Self::Mlp(e), _) => e.encode(x, None, train),
        }
    }
}

/// The RNA VAE of the symmetric variant.
#[derive(Debug)]
struct RnaVae {
    encoder: GaussianEncoder,
    decoder: HeadDecoder,
}

/// The SAILERX integrator: an ATAC VAE with invariance and structural-similarity terms.
#[derive(Debug)]
pub struct Sailerx {
    vs: nn::VarStore,
    encoder: AtacEncoder,
    decoder: Box<dyn Decoder>,
    /// RNA PCA -> latent, for the `contrastive` and `hard` alignments.
    projection: Option<nn::Linear>,
    /// The RNA VAE of the symmetric variant.
    rna: Option<RnaVae>,
    config: SailerxConfig,
}

impl Sailerx {
    /// A model for `n_peaks` peaks, `n_covariates` decoder covariates and an RNA PCA of
    /// `n_pcs` components (the alignment target). The `chrom_split` architecture then has
    /// one group of all peaks; [`Sailerx::with_groups`] gives it the chromosomes.
    pub fn new(
        config: SailerxConfig,
        n_peaks: usize,
        n_covariates: usize,
        n_pcs: usize,
        device: Device,
    ) -> Result<Self> {
        Self::with_groups(
            config,
            &ChromGroups::single(n_peaks),
            n_covariates,
            n_pcs,
            device,
        )
    }

    /// The symmetric variant's model: [`Sailerx::with_groups`] plus an RNA VAE over
    /// `n_genes` genes whose decoder takes `n_rna_covariates` confounders.
    pub fn symmetric(
        config: SailerxConfig,
        groups: &ChromGroups,
        n_covariates: usize,
        n_genes: usize,
        n_rna_covariates: usize,
        device: Device,
    ) -> Result<Self> {
        if !config.symmetric {
            return Err(ModelError::Parameter {
                name: "model.symmetric",
                reason: "false, but an RNA VAE was asked for".into(),
            });
        }
        if n_genes == 0 {
            return Err(ModelError::Parameter {
                name: "model.symmetric",
                reason: "the RNA VAE needs at least one gene".into(),
            });
        }
        let mut model = Self::build(config, groups, n_covariates, 0, device)?;
        let root = model.vs.root();
        let head = HeadConfig {
            likelihood: LikelihoodKind::Nb,
            mean: MeanLink::Softmax,
            dispersion: Dispersion::Feature,
            ..HeadConfig::default()
        };
        let latent = model.config.latent_dim;
        let decoder = HeadDecoder::new(
            &(&root / "rna_decoder"),
            latent,
            n_rna_covariates as i64,
            n_genes as i64,
            &model.config.decoder,
            &head,
        )
        .map_err(|e| ModelError::Parameter {
            name: "model.decoder",
            reason: e.to_string(),
        })?;
        model.rna = Some(RnaVae {
            encoder: GaussianEncoder::new(
                &(&root / "rna_encoder"),
                n_genes as i64,
                0,
                latent,
                &model.config.encoder,
            ),
            decoder,
        });
        Ok(model)
    }

    /// A model whose peaks fall into `groups` (chromosomes; `ChromSplitConfig::groups`
    /// builds them from peak names); the `mlp` architecture only uses their number.
    /// `symmetric` configs are built by [`Sailerx::symmetric`].
    pub fn with_groups(
        config: SailerxConfig,
        groups: &ChromGroups,
        n_covariates: usize,
        n_pcs: usize,
        device: Device,
    ) -> Result<Self> {
        if config.symmetric {
            return Err(ModelError::Parameter {
                name: "model.symmetric",
                reason: "true: build the model with `Sailerx::symmetric` (it needs the genes)"
                    .into(),
            });
        }
        Self::build(config, groups, n_covariates, n_pcs, device)
    }

    fn build(
        config: SailerxConfig,
        groups: &ChromGroups,
        n_covariates: usize,
        n_pcs: usize,
        device: Device,
    ) -> Result<Self> {
        config.check()?;
        let n_peaks = groups.n_peaks() as i64;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let module_error = |e: crossomics_encoders::EncoderError| ModelError::Parameter {
            name: "model.chrom_split",
            reason: e.to_string(),
        };
        let (encoder, decoder): (AtacEncoder, Box<dyn Decoder>) = match config.architecture {
            Architecture::Mlp => (
                AtacEncoder::Mlp(GaussianEncoder::new(
                    &(&root / "encoder"),
                    n_peaks,
                    0,
                    config.latent_dim,
                    &config.encoder,
                )),
                Box::new(MlpDecoder::new(
                    &(&root / "decoder"),
                    config.latent_dim,
                    n_covariates as i64,
                    n_peaks,
                    &config.decoder,
                )),
            ),
            Architecture::ChromSplit => (
                AtacEncoder::ChromSplit(
                    ChromSplitEncoder::new(
                        &(&root / "encoder"),
                        groups,
                        0,
                        config.latent_dim,
                        &config.chrom_split,
                    )
                    .map_err(module_error)?,
                ),
                Box::new(
                    ChromSplitDecoder::new(
                        &(&root / "decoder"),
                        groups,
                        config.latent_dim,
                        n_covariates as i64,
                        &config.chrom_split,
                    )
                    .map_err(module_error)?,
                ),
            ),
        };
        let projection = (config.alignment.projects() && !config.symmetric).then(|| {
            nn::linear(
                &root / "rna_projection",
                n_pcs as i64,
                config.latent_dim,
                Default::default(),
            )
        });
        Ok(Self {
            vs,
            encoder,
            decoder,
            projection,
            rna: None,
            config,
        })
    }

    pub fn config(&self) -> &SailerxConfig {
        &self.config
    }

    /// The KL weight at this step: the configured schedule over main-phase steps; 1 for
    /// validation, so that validation losses compare across epochs.
    fn kl_weight(&self, ctx: &StepContext) -> f64 {
        if ctx.validation {
            return 1.0;
        }
        let period_steps = self.config.kl_period_epochs * ctx.steps_per_epoch;
        match self.config.kl_schedule {
            KlAnnealing::Cyclical => KlSchedule::Cyclical { period_steps },
            KlAnnealing::Linear => KlSchedule::Linear {
                warmup_steps: period_steps,
                weight: 1.0,
            },
            KlAnnealing::Constant => KlSchedule::Constant { weight: 1.0 },
        }
        .weight(ctx.step)
    }

    /// Whether the encoder reads CSR rows (chromosome-split with `sparse_input`).
    fn sparse_input(&self) -> bool {
        self.config.sparse_input && matches!(self.encoder, AtacEncoder::ChromSplit(_))
    }

    /// The alignment term between the RNA PCA rows `p` and the latent means `mu`: the
    /// configured [`Alignment`], averaged over pairs in the warm-up phase (`mean`).
    fn alignment(
        &self,
        p: &Tensor,
        mu: &Tensor,
        weights: Option<&Tensor>,
        mean: bool,
    ) -> Option<Tensor> {
        // the RNA PCA is mapped into the latent space; the symmetric variant's RNA latent
        // is already there
        let project = |p: &Tensor| match &self.projection {
            Some(linear) => linear.forward(p),
            None => p.shallow_clone(),
        };
        let tau = self.config.temperature;
        Some(match self.config.alignment {
            Alignment::None => return None,
            Alignment::Structural if mean => similarity::structural_mse(p, mu),
            Alignment::Structural => similarity::structural(p, mu, weights),
            Alignment::StructuralKl => {
                similarity::structural_kl(p, mu, tau, if mean { None } else { weights })
            }
            Alignment::Contrastive => alignment::info_nce(&project(p), mu, tau),
            Alignment::Hard if mean => alignment::hard_mean(&project(p), mu),
            Alignment::Hard => alignment::hard_sum(&project(p), mu),
        })
    }

    /// The latent means of `cells` (the embedding used downstream), in evaluation mode.
    /// The next chunk of 1,024 cells is densified on a background thread meanwhile.
    /// The symmetric variant gives `[mu_atac, mu_rna]`, 2 x `latent_dim` columns.
    pub fn embed(&self, input: &SailerxInput<'_>, cells: &[usize]) -> Result<Array2<f32>> {
        const CHUNK: usize = 1024;
        let device = self.vs.device();
        let d = self.config.latent_dim as usize;
        let mut sources = vec![Source::new(input.atac)];
        if self.rna.is_some() {
            sources.push(Source::new(self.rna_input(input)?.values));
        }
        let mut out = Array2::<f32>::zeros((cells.len(), d * sources.len()));
        let loader = Loader::new(sources).map_err(|e| ModelError::Input(e.to_string()))?;
        let chunks = cells.chunks(CHUNK).map(<[usize]>::to_vec);
        tch::no_grad(|| {
            loader.run(chunks, Prefetch::Background, |loaded| {
                for batch in loaded {
                    let start = batch.index() * CHUNK;
                    let rows = start..start + batch.len();
                    let x = tensor::from_dense_rows(batch.dense(0).expect("dense source"), device);
                    let mu = tensor::to_array(&self.encoder.encode(&x, None, false).mu);
                    out.slice_mut(ndarray::s![rows.clone(), ..d]).assign(&mu);
                    if let Some(rna) = &self.rna {
                        let r = tensor::from_dense_rows(batch.dense(1).expect("dense"), device);
                        let mu = tensor::to_array(&rna.encoder.encode(&r, None, false).mu);
                        out.slice_mut(ndarray::s![rows, d..]).assign(&mu);
                    }
                }
            })
        });
        Ok(out)
    }

    /// The ATAC decoder's peak probabilities at latent points `z` (cells x latent_dim)
    /// with decoder confounders `covariates` (cells x c), in evaluation mode: what
    /// translation through the SAILERX latent decodes.
    pub fn decode_probabilities(
        &self,
        z: ArrayView2<'_, f32>,
        covariates: ArrayView2<'_, f32>,
    ) -> Result<Array2<f32>> {
        if z.ncols() != self.config.latent_dim as usize || z.nrows() != covariates.nrows() {
            return Err(ModelError::Input(format!(
                "decoding {} x {} latent points with {} rows of covariates (latent_dim {})",
                z.nrows(),
                z.ncols(),
                covariates.nrows(),
                self.config.latent_dim
            )));
        }
        let device = self.vs.device();
        let mut out: Option<Array2<f32>> = None;
        tch::no_grad(|| {
            for start in (0..z.nrows()).step_by(1024) {
                let end = (start + 1024).min(z.nrows());
                let zt = tensor::from_array(z.slice(ndarray::s![start..end, ..]), device);
                let ct = tensor::from_array(covariates.slice(ndarray::s![start..end, ..]), device);
                let p = tensor::to_array(&self.decoder.decode(&zt, Some(&ct), false).sigmoid());
                let o = out.get_or_insert_with(|| Array2::zeros((z.nrows(), p.ncols())));
                o.slice_mut(ndarray::s![start..end, ..]).assign(&p);
            }
        });
        Ok(out.unwrap_or_else(|| Array2::zeros((0, 0))))
    }

    /// The RNA input the symmetric variant needs.
    fn rna_input<'a>(&self, input: &SailerxInput<'a>) -> Result<RnaInput<'a>> {
        input.rna.ok_or_else(|| {
            ModelError::Input("model.symmetric needs the RNA values and counts".into())
        })
    }

    /// Saves the weights as safetensors (PyTorch-compatible names), atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        let tmp = path.with_extension("partial.safetensors");
        self.vs.save(&tmp).map_err(|e| ModelError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        })?;
        std::fs::rename(&tmp, path).map_err(|e| ModelError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        })
    }

    /// Loads weights saved by [`Sailerx::save`] into a model built with the same shape.
    pub fn load(&mut self, path: &Path) -> Result<()> {
        self.vs.load(path).map_err(|e| ModelError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        })
    }
}

/// One minibatch through the RNA VAE.
struct RnaPass {
    q: Gaussian,
    counts: Tensor,
    /// `-sum log NB(counts; mu, theta)` over the batch.
    nb_sum: Tensor,
}

impl Sailerx {
    fn rna_pass(
        &self,
        vae: &RnaVae,
        input: &SailerxInput<'_>,
        batch: &Minibatch<'_>,
        train: bool,
    ) -> Result<RnaPass> {
        let device = self.vs.device();
        let rna = self.rna_input(input)?;
        let rows = |source: usize, m: &Csr| match batch.dense(source) {
            Some(rows) => tensor::from_dense_rows(rows, device),
            None => tensor::rows_of_csr(m, batch.cells, device),
        };
        let values = rows(1, rna.values);
        let counts = rows(2, rna.counts);
        let covariates = tensor::rows_of_array(rna.covariates, batch.cells, device);
        let q = vae.encoder.encode(&values, None, train);
        let z = q.sample(train);
        let library = counts.sum_dim_intlist(1, false, counts.kind());
        let nb_sum =
            match vae
                .decoder
                .decode_likelihood(&z, Some(&covariates), Some(&library), train)
            {
                Likelihood::Nb { mu, theta } => recon::nb_sum(&mu, &theta, &counts),
                other => unreachable!("the RNA decoder is built with an NB head, not {other:?}"),
            };
        Ok(RnaPass { q, counts, nb_sum })
    }
}

impl Trainable for Sailerx {
    type Input<'a> = SailerxInput<'a>;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// The binarized peaks, densified ahead by the training loop (the reconstruction
    /// target), and as CSR rows too for a sparse first layer.
    /// The symmetric variant adds the RNA values (source 1) and counts (source 2).
    fn sources<'a>(&self, input: &Self::Input<'a>) -> Vec<Source<'a>> {
        let mut sources = vec![Source::new(input.atac).with_sparse(self.sparse_input())];
        if let (Some(_), Some(rna)) = (&self.rna, &input.rna) {
            sources.push(Source::new(rna.values));
            sources.push(Source::new(rna.counts));
        }
        sources
    }

    fn loss(
        &self,
        input: &SailerxInput<'_>,
        batch: &Minibatch<'_>,
        ctx: &StepContext,
        train: bool,
    ) -> Result<LossOutput> {
        let device = self.vs.device();
        let cells = batch.cells;
        let x = match batch.dense(0) {
            Some(rows) => tensor::from_dense_rows(rows, device),
            None => tensor::rows_of_csr(input.atac, cells, device),
        };
        let c = tensor::rows_of_array(input.covariates, cells, device);
        let gamma = self.config.alignment_weight;
        // the symmetric variant's RNA VAE: its latent replaces the RNA PCA as the target.
        // A batch of the hybrid mode's ATAC-only cells (`ctx.extra`) has no RNA: no RNA
        // pass and no alignment term, only the ATAC VAE's own terms.
        let rna = match &self.rna {
            Some(vae) if !ctx.extra => Some(self.rna_pass(vae, input, batch, train)?),
            _ => None,
        };
        let p = match &rna {
            _ if ctx.extra => None,
            Some(r) => Some(r.q.mu.shallow_clone()),
            None => Some(tensor::rows_of_array(input.rna_pca, cells, device)),
        };

        let csr = batch
            .sparse(0)
            .map(|rows| {
                CsrBatch::new(
                    rows.nrows,
                    rows.ncols,
                    rows.indptr,
                    rows.indices,
                    rows.values,
                )
            })
            .transpose()
            .map_err(|e| ModelError::Input(format!("ATAC minibatch: {e}")))?;
        let q = self.encoder.encode(&x, csr.as_ref(), train);
        let z = if self.config.faithful {
            q.sample_published(train)
        } else {
            q.sample(train)
        };
        let logits = self.decoder.decode(&z, Some(&c), train);

        if ctx.warmup {
            let bce = recon::bernoulli_mean(&logits, &x);
            let mut parts = vec![("recon", bce.shallow_clone())];
            let mut total = bce;
            if let Some(r) = &rna {
                let nb = &r.nb_sum / r.counts.numel() as f64;
                total += &nb;
                parts.push(("rna_recon", nb));
            }
            if let Some(align) = p.and_then(|p| self.alignment(&p, &q.mu, None, true)) {
                total += &align * gamma;
                parts.push(("align", align));
            }
            return Ok(LossOutput { total, parts });
        }
        let w_kl = self.kl_weight(ctx);
        let weights = self
            .config
            .cell_weights
            .then(|| tensor::entries(input.cell_weights, cells, device));
        let kl = kl::standard_normal(&q.mu, &q.logvar);
        let bce = recon::bernoulli_sum(&logits, &x) * self.config.recon_weight;
        let inv = kl::invariance(&q.mu, &q.logvar);
        let mut total = &kl * w_kl + &bce + &inv * (w_kl * self.config.invariance_weight);
        let mut parts = vec![("kl", kl), ("recon", bce), ("invariance", inv)];
        if let Some(r) = rna {
            let kl = kl::standard_normal(&r.q.mu, &r.q.logvar);
            let inv = kl::invariance(&r.q.mu, &r.q.logvar);
            total += &kl * w_kl + &r.nb_sum + &inv * (w_kl * self.config.invariance_weight);
            parts.extend([
                ("rna_kl", kl),
                ("rna_recon", r.nb_sum),
                ("rna_invariance", inv),
            ]);
        }
        if let Some(align) = p.and_then(|p| self.alignment(&p, &q.mu, weights.as_ref(), false)) {
            total += &align * gamma;
            parts.push(("align", align));
        }
        Ok(LossOutput { total, parts })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::{TrainOptions, fit};
    use crossomics_data::loader::Loader;
    use nalgebra_sparse::{CooMatrix, CsrMatrix};
    use ndarray::Array2;

    /// Two groups of cells open in different halves of the peaks, with an RNA PCA that
    /// separates the same groups.
    fn toy(n: usize, peaks: usize) -> (Csr, Array2<f32>, Array2<f32>, Vec<f32>) {
        let mut coo = CooMatrix::new(n, peaks);
        for i in 0..n {
            let half = i % 2;
            for j in 0..peaks / 2 {
                if (i * 7 + j * 3) % 4 != 0 {
                    coo.push(i, half * peaks / 2 + j, 1.0);
                }
            }
        }
        let pca = Array2::from_shape_fn((n, 3), |(i, k)| {
            if k == i % 2 {
                2.0
            } else {
                0.1 * (i % 5) as f32
            }
        });
        let cov = Array2::from_shape_fn((n, 1), |(i, _)| (i % 3) as f32 - 1.0);
        (CsrMatrix::from(&coo), pca, cov, vec![1.0; n])
    }

    #[test]
    fn training_lowers_the_loss_and_separates_the_groups() {
        tch::manual_seed(0);
        let (atac, pca, cov, w) = toy(64, 40);
        let input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: &w,
            rna: None,
        };
        input.check().unwrap();
        let cfg = SailerxConfig {
            latent_dim: 4,
            alignment_weight: 10.0,
            kl_period_epochs: 10,
            ..Default::default()
        };
        let model = Sailerx::new(cfg, 40, 1, 3, Device::Cpu).unwrap();
        let cells: Vec<usize> = (0..64).collect();
        let opts = TrainOptions {
            epochs: 40,
            warmup_epochs: 3,
            batch_size: 32,
            lr: 1e-2,
            ..Default::default()
        };
        let h = fit(
            &model,
            &input,
            &cells[..48],
            &cells[48..],
            &opts,
            0,
            &mut |_| {},
        )
        .unwrap();
        let first = h.epochs[3].val_loss.unwrap();
        let last = h.epochs.last().unwrap().val_loss.unwrap();
        assert!(last < first, "validation loss {first} -> {last}");
        let z = model.embed(&input, &cells).unwrap();
        assert_eq!(z.dim(), (64, 4));
        // nearest neighbour (Euclidean) of each cell is in its own group for most cells
        let mut agree = 0;
        for i in 0..64 {
            let nn = (0..64)
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let da: f32 = (&z.row(i) - &z.row(a)).mapv(|v| v * v).sum();
                    let db: f32 = (&z.row(i) - &z.row(b)).mapv(|v| v * v).sum();
                    da.total_cmp(&db)
                })
                .unwrap();
            agree += usize::from(nn % 2 == i % 2);
        }
        assert!(
            agree >= 58,
            "{agree}/64 nearest neighbours in the same group"
        );
    }

    #[test]
    fn every_alignment_trains_and_reports_its_terms() {
        let (atac, pca, cov, w) = toy(32, 20);
        let input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: &w,
            rna: None,
        };
        let cells: Vec<usize> = (0..32).collect();
        for alignment in [
            Alignment::Structural,
            Alignment::StructuralKl,
            Alignment::Contrastive,
            Alignment::Hard,
            Alignment::None,
        ] {
            tch::manual_seed(0);
            let cfg = SailerxConfig {
                latent_dim: 4,
                alignment,
                alignment_weight: 1.0,
                ..Default::default()
            };
            let model = Sailerx::new(cfg, 20, 1, 3, Device::Cpu).unwrap();
            // only the projecting alignments own an RNA projection
            let projection = model
                .vs
                .variables()
                .keys()
                .any(|k| k.starts_with("rna_projection"));
            assert_eq!(projection, alignment.projects(), "{alignment:?}");
            let opts = TrainOptions {
                epochs: 3,
                warmup_epochs: 1,
                batch_size: 16,
                lr: 1e-2,
                ..Default::default()
            };
            let h = fit(
                &model,
                &input,
                &cells[..24],
                &cells[24..],
                &opts,
                0,
                &mut |_| {},
            )
            .unwrap();
            for e in &h.epochs {
                let has_align = e.train.iter().any(|(k, _)| k == "align");
                assert_eq!(has_align, alignment != Alignment::None, "{alignment:?}");
                assert!(
                    e.train.iter().all(|(_, v)| v.is_finite()),
                    "{alignment:?}: {:?}",
                    e.train
                );
            }
        }
        let cfg: SailerxConfig =
            toml::from_str("alignment = \"structural_kl\"\ntemperature = 0.5").unwrap();
        assert_eq!(
            (cfg.alignment, cfg.temperature),
            (Alignment::StructuralKl, 0.5)
        );
        assert!(toml::from_str::<SailerxConfig>("alignment = \"soft\"").is_err());
        let bad = SailerxConfig {
            temperature: 0.0,
            ..Default::default()
        };
        let err = Sailerx::new(bad, 10, 1, 3, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("model.temperature"), "{err}");
    }

    #[test]
    fn chromosome_split_trains_and_sparse_input_gives_the_dense_loss() {
        let (atac, pca, cov, w) = toy(48, 30);
        let input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: &w,
            rna: None,
        };
        // three chromosomes of 10 peaks
        let chroms: Vec<String> = (0..30).map(|j| format!("chr{}", j / 10 + 1)).collect();
        let groups = ChromGroups::from_chromosomes(&chroms, 5).unwrap();
        assert_eq!(groups.len(), 3);
        let cfg = SailerxConfig {
            latent_dim: 4,
            architecture: Architecture::ChromSplit,
            chrom_split: ChromSplitConfig {
                hidden: vec![8, 4],
                min_peaks_per_group: 5,
                ..Default::default()
            },
            alignment_weight: 10.0,
            ..Default::default()
        };
        tch::manual_seed(0);
        let model = Sailerx::with_groups(cfg, &groups, 1, 3, Device::Cpu).unwrap();
        assert!(model.sparse_input());
        let names: Vec<String> = model.vs.variables().keys().cloned().collect();
        assert!(
            names.iter().any(|n| n.starts_with("encoder.block1")),
            "{names:?}"
        );
        // the same loss from the CSR rows and from the dense rows (evaluation mode)
        let cells: Vec<usize> = (0..16).collect();
        let loader = Loader::new(model.sources(&input)).unwrap();
        let loaded = loader.load(cells.clone());
        assert!(loaded.sparse(0).is_some());
        let ctx = StepContext {
            epoch: 0,
            step: 0,
            steps_per_epoch: 1,
            warmup: false,
            validation: true,
            extra: false,
        };
        let sparse = model
            .loss(&input, &Minibatch::loaded(&loaded), &ctx, false)
            .unwrap()
            .total
            .double_value(&[]);
        let dense = model
            .loss(&input, &Minibatch::new(&cells), &ctx, false)
            .unwrap()
            .total
            .double_value(&[]);
        assert!(
            (sparse - dense).abs() <= 1e-4 * dense.abs(),
            "{sparse} vs {dense}"
        );
        let all: Vec<usize> = (0..48).collect();
        let opts = TrainOptions {
            epochs: 30,
            warmup_epochs: 2,
            batch_size: 16,
            lr: 1e-2,
            ..Default::default()
        };
        let h = fit(
            &model,
            &input,
            &all[..36],
            &all[36..],
            &opts,
            0,
            &mut |_| {},
        )
        .unwrap();
        let first = h.epochs[2].val_loss.unwrap();
        let last = h.epochs.last().unwrap().val_loss.unwrap();
        assert!(last < first, "validation loss {first} -> {last}");
        assert_eq!(model.embed(&input, &all).unwrap().dim(), (48, 4));
        // too few groups' widths is a parameter error naming the key
        let bad = SailerxConfig {
            architecture: Architecture::ChromSplit,
            chrom_split: ChromSplitConfig {
                hidden: vec![],
                ..Default::default()
            },
            ..Default::default()
        };
        let err = Sailerx::with_groups(bad, &groups, 1, 3, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("model.chrom_split"), "{err}");
    }

    #[test]
    fn kl_schedules_follow_the_config() {
        let at = |schedule, step, validation| {
            let cfg = SailerxConfig {
                latent_dim: 2,
                kl_period_epochs: 2,
                kl_schedule: schedule,
                ..Default::default()
            };
            let model = Sailerx::new(cfg, 4, 0, 3, Device::Cpu).unwrap();
            model.kl_weight(&StepContext {
                epoch: 0,
                step,
                steps_per_epoch: 5,
                warmup: false,
                validation,
                extra: false,
            })
        };
        // a period of 2 epochs x 5 steps
        let cyclical: Vec<f64> = [0, 2, 5, 7, 10, 12]
            .iter()
            .map(|&t| at(KlAnnealing::Cyclical, t, false))
            .collect();
        assert_eq!(cyclical, vec![0.0, 0.4, 1.0, 1.0, 0.0, 0.4]);
        let linear: Vec<f64> = [0, 5, 10, 30]
            .iter()
            .map(|&t| at(KlAnnealing::Linear, t, false))
            .collect();
        assert_eq!(linear, vec![0.0, 0.5, 1.0, 1.0]);
        assert_eq!(at(KlAnnealing::Constant, 3, false), 1.0);
        assert_eq!(at(KlAnnealing::Cyclical, 2, true), 1.0, "validation uses 1");
        let cfg: SailerxConfig = toml::from_str("kl_schedule = \"linear\"").unwrap();
        assert_eq!(cfg.kl_schedule, KlAnnealing::Linear);
    }

    /// RNA counts for the toy cells: the two groups express different halves of the genes.
    fn toy_rna(n: usize, genes: usize) -> (Csr, Csr, Array2<f32>) {
        let mut coo = CooMatrix::new(n, genes);
        for i in 0..n {
            for j in 0..genes {
                let high = (j < genes / 2) == (i % 2 == 0);
                let count = if high { 3 + (i + j) % 4 } else { (i * j) % 2 };
                if count > 0 {
                    coo.push(i, j, count as f32);
                }
            }
        }
        let counts = CsrMatrix::from(&coo);
        let mut values = counts.clone();
        for v in values.values_mut() {
            *v = v.ln_1p();
        }
        let cov = Array2::from_shape_fn((n, 1), |(i, _)| (i % 3) as f32 - 1.0);
        (values, counts, cov)
    }

    #[test]
    fn the_symmetric_variant_trains_an_rna_vae_and_embeds_both_latents() {
        let (atac, pca, cov, w) = toy(48, 20);
        let (values, counts, rna_cov) = toy_rna(48, 12);
        let mut input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: &w,
            rna: Some(RnaInput {
                values: &values,
                counts: &counts,
                covariates: rna_cov.view(),
            }),
        };
        input.check().unwrap();
        let cfg = SailerxConfig {
            latent_dim: 3,
            symmetric: true,
            alignment_weight: 10.0,
            ..Default::default()
        };
        let groups = ChromGroups::single(20);
        // built only through `symmetric`, which needs genes
        let err = Sailerx::with_groups(cfg.clone(), &groups, 1, 3, Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("model.symmetric"), "{err}");
        assert!(Sailerx::symmetric(cfg.clone(), &groups, 1, 0, 1, Device::Cpu).is_err());
        tch::manual_seed(0);
        let model = Sailerx::symmetric(cfg, &groups, 1, 12, 1, Device::Cpu).unwrap();
        let all: Vec<usize> = (0..48).collect();
        let opts = TrainOptions {
            epochs: 40,
            warmup_epochs: 2,
            batch_size: 16,
            lr: 1e-2,
            ..Default::default()
        };
        let h = fit(
            &model,
            &input,
            &all[..36],
            &all[36..],
            &opts,
            0,
            &mut |_| {},
        )
        .unwrap();
        let last = h.epochs.last().unwrap();
        for part in ["rna_kl", "rna_recon", "rna_invariance", "align", "recon"] {
            assert!(
                last.train.iter().any(|(k, v)| k == part && v.is_finite()),
                "{part} in {:?}",
                last.train
            );
        }
        assert!(
            last.val_loss.unwrap() < h.epochs[2].val_loss.unwrap(),
            "validation loss falls"
        );
        let z = model.embed(&input, &all).unwrap();
        assert_eq!(z.dim(), (48, 6), "[mu_atac, mu_rna]");
        // the RNA half separates the two expression groups: nearest neighbours agree
        let rna_half = z.slice(ndarray::s![.., 3..]);
        let agree = (0..48)
            .filter(|&i| {
                let nn = (0..48)
                    .filter(|&j| j != i)
                    .min_by(|&a, &b| {
                        let d = |j: usize| -> f32 {
                            (&rna_half.row(i) - &rna_half.row(j)).mapv(|v| v * v).sum()
                        };
                        d(a).total_cmp(&d(b))
                    })
                    .unwrap();
                nn % 2 == i % 2
            })
            .count();
        assert!(
            agree >= 40,
            "{agree}/48 RNA-latent neighbours in the same group"
        );
        // without its RNA input the symmetric model says what is missing
        input.rna = None;
        let err = model.embed(&input, &all).unwrap_err().to_string();
        assert!(err.contains("RNA values and counts"), "{err}");
    }

    #[test]
    fn save_and_load_round_trip() {
        let (atac, pca, cov, w) = toy(16, 10);
        let input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: &w,
            rna: None,
        };
        let cfg = SailerxConfig {
            latent_dim: 3,
            ..Default::default()
        };
        let a = Sailerx::new(cfg.clone(), 10, 1, 3, Device::Cpu).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        a.save(&path).unwrap();
        let mut b = Sailerx::new(cfg, 10, 1, 3, Device::Cpu).unwrap();
        let cells: Vec<usize> = (0..16).collect();
        assert_ne!(
            a.embed(&input, &cells).unwrap(),
            b.embed(&input, &cells).unwrap()
        );
        b.load(&path).unwrap();
        assert_eq!(
            a.embed(&input, &cells).unwrap(),
            b.embed(&input, &cells).unwrap()
        );
        let missing = b
            .load(&dir.path().join("none.safetensors"))
            .unwrap_err()
            .to_string();
        assert!(missing.contains("none.safetensors"), "{missing}");
    }

    #[test]
    fn mismatched_inputs_and_bad_parameters_are_errors() {
        let (atac, pca, cov, w) = toy(8, 10);
        let short = &w[..5];
        let input = SailerxInput {
            atac: &atac,
            rna_pca: pca.view(),
            covariates: cov.view(),
            cell_weights: short,
            rna: None,
        };
        assert!(
            input
                .check()
                .unwrap_err()
                .to_string()
                .contains("cell weights has 5 rows")
        );
        let cfg = SailerxConfig {
            alignment_weight: f64::NAN,
            ..Default::default()
        };
        let err = Sailerx::new(cfg, 10, 1, 3, Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.alignment_weight"), "{err}");
    }
}
