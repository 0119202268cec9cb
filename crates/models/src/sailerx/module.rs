//! The SAILERX networks (scvi-tools' "module"): the ATAC VAE, the RNA VAE of the
//! symmetric variant, the alignment strategy; inference (latent means), decoding, saving.

use std::path::Path;

use crossomics_data::loader::{Loader, Prefetch, Source};
use crossomics_encoders::{
    ChromGroups, ChromSplitDecoder, ChromSplitEncoder, CsrBatch, Decoder, Dispersion, Encoder,
    Gaussian, GaussianEncoder, HeadConfig, HeadDecoder, LikelihoodKind, MeanLink, MlpDecoder,
    SparseEncoder,
};
use ndarray::{Array2, ArrayView2};
use tch::{Device, Tensor, nn};

use super::{Architecture, RnaInput, SailerxConfig, SailerxInput};
use crate::align::{AlignSpec, Aligner};
use crate::error::{ModelError, Result};
use crate::spec::{ModelSpec, ParamError};
use crate::tensor;
use crate::translate::save_var_store;

/// The encoder of either [`Architecture`].
#[derive(Debug)]
pub(super) enum AtacEncoder {
    Mlp(GaussianEncoder),
    ChromSplit(ChromSplitEncoder),
}

impl AtacEncoder {
    /// From the CSR rows when given (chromosome-split only), else the dense rows.
    pub(super) fn encode(&self, x: &Tensor, csr: Option<&CsrBatch<'_>>, train: bool) -> Gaussian {
        match (self, csr) {
            (Self::ChromSplit(e), Some(csr)) => e.encode_csr(csr, None, train),
            (Self::ChromSplit(e), None) => e.encode(x, None, train),
            (Self::Mlp(e), _) => e.encode(x, None, train),
        }
    }
}

/// The RNA VAE of the symmetric variant.
#[derive(Debug)]
pub(super) struct RnaVae {
    pub(super) encoder: GaussianEncoder,
    pub(super) decoder: HeadDecoder,
}

/// The SAILERX integrator: an ATAC VAE with invariance and structural-similarity terms.
#[derive(Debug)]
pub struct Sailerx {
    pub(super) vs: nn::VarStore,
    pub(super) encoder: AtacEncoder,
    pub(super) decoder: Box<dyn Decoder>,
    /// The alignment term (`alignment`) between the target (the RNA PCA, or the RNA
    /// VAE's means) and the ATAC latent means; `None` for `alignment = "none"`.
    pub(super) aligner: Option<Box<dyn Aligner>>,
    /// The RNA VAE of the symmetric variant.
    pub(super) rna: Option<RnaVae>,
    pub(super) config: SailerxConfig,
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
            return Err(ModelError::from(ParamError::new(
                "symmetric",
                "false, but an RNA VAE was asked for",
            )));
        }
        if n_genes == 0 {
            return Err(ModelError::from(ParamError::new(
                "symmetric",
                "the RNA VAE needs at least one gene",
            )));
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
        .map_err(|e| ModelError::from(ParamError::new("decoder", e.to_string())))?;
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
            return Err(ModelError::from(ParamError::new(
                "symmetric",
                "true: build the model with `Sailerx::symmetric` (it needs the genes)",
            )));
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
        ModelSpec::check(&config)?;
        let n_peaks = groups.n_peaks() as i64;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let module_error = |e: crossomics_encoders::EncoderError| {
            ModelError::from(ParamError::new("chrom_split", e.to_string()))
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
        // the RNA PCA is mapped into the latent space by the strategies that project;
        // the symmetric variant's RNA latent is already there
        let aligner = config.alignment.build(&AlignSpec {
            path: &root,
            target_dim: (!config.symmetric).then_some(n_pcs as i64),
            latent_dim: config.latent_dim,
            temperature: config.temperature,
        });
        Ok(Self {
            vs,
            encoder,
            decoder,
            aligner,
            rna: None,
            config,
        })
    }

    /// The model with another alignment strategy: one that is not in the registry's
    /// [`crate::align::Alignment`] (a new strategy under test), built by the caller with
    /// this model's parameters if it has any (`var_store`).
    pub fn with_aligner(mut self, aligner: Box<dyn Aligner>) -> Self {
        self.aligner = Some(aligner);
        self
    }

    pub fn config(&self) -> &SailerxConfig {
        &self.config
    }

    /// Whether the encoder reads CSR rows (chromosome-split with `sparse_input`).
    pub(super) fn sparse_input(&self) -> bool {
        self.config.sparse_input && matches!(self.encoder, AtacEncoder::ChromSplit(_))
    }

    /// The latent means of `cells` (the embedding used downstream), in evaluation mode.
    /// The next chunk of 1,024 cells is densified on a background thread meanwhile.
    /// The symmetric variant gives `[mu_atac, mu_rna]`, 2 x `latent_dim` columns.
    pub fn embed_input(&self, input: &SailerxInput<'_>, cells: &[usize]) -> Result<Array2<f32>> {
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
    pub(super) fn rna_input<'a>(&self, input: &SailerxInput<'a>) -> Result<RnaInput<'a>> {
        input.rna.ok_or_else(|| {
            ModelError::Input("the symmetric variant needs the RNA values and counts".into())
        })
    }

    /// Saves the weights as safetensors (PyTorch-compatible names), atomically.
    pub fn save_weights(&self, path: &Path) -> Result<()> {
        save_var_store(&self.vs, path)
    }

    /// Loads weights saved by [`Sailerx::save_weights`] into a model built with the same shape.
    pub fn load_weights(&mut self, path: &Path) -> Result<()> {
        self.vs.load(path).map_err(|e| ModelError::Checkpoint {
            path: path.into(),
            reason: e.to_string(),
        })
    }
}
