//! The chromosome-split ATAC encoder and decoder of SAILERX and BABEL.
//!
//! Encoder, per chromosome group `c` with `n_c` peaks (SAILERX, `hidden = [64, 32]`):
//! `Linear(n_c -> 64) - BN - PReLU - Linear(64 -> 32) - BN - PReLU`, the groups'
//! outputs concatenated, then `Linear(32 * G -> d)` for the mean and for the
//! log-variance. Decoder: `Linear(d + c -> 32 * G) - BN - PReLU` over `[z,
//! covariates]`, split per group, `Linear(32 -> 64) - BN - PReLU - Linear(64 -> n_c)`,
//! Bernoulli logits. BABEL uses the same shapes with `hidden = [32, 16]`.
//!
//! The per-group layers are not a loop of small `Linear`s: the first encoder layer is
//! one [`SparseLinear`] (a `[n_peaks, 64]` weight, each peak feeding only its group's 64
//! units; an `embedding_bag` over (cell, group) bags on CSR input, a padded `bmm` on
//! dense input), the middle layers are `[G, in, out]` batched products, and the
//! decoder's output layer is one padded `bmm` into the peak space. BatchNorm runs over
//! the concatenated block features, which is per-block BatchNorm; PReLU has one slope
//! per block as in SAILERX.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::blocks::{BlockOutput, BlockStage, GroupedLinear};
use crate::csr::CsrBatch;
use crate::gaussian::Gaussian;
use crate::groups::ChromGroups;
use crate::heads::Likelihood;
use crate::mlp::{Activation, Mlp, MlpConfig, Norm};
use crate::sparse::{SparseKernel, SparseLinear};
use crate::{
    Decoder, Encoder, EncoderError, LikelihoodDecoder, SparseEncoder, init, with_covariates,
};

/// Shape of the chromosome-split modules. Defaults are SAILERX's published ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ChromSplitConfig {
    /// Widths of the per-group hidden layers from the peaks inwards: `[64, 32]` in
    /// SAILERX, `[32, 16]` in BABEL. The decoder uses them in reverse.
    pub hidden: Vec<i64>,
    pub norm: Norm,
    pub activation: Activation,
    pub dropout: f64,
    /// Groups (chromosomes, contigs) with fewer peaks than this are merged into one
    /// group `other` ([`ChromGroups::new`]); used by [`ChromSplitConfig::groups`].
    pub min_peaks_per_group: usize,
    /// The kernel of the sparse first layer ([`SparseKernel`]).
    pub sparse_kernel: SparseKernel,
}

impl Default for ChromSplitConfig {
    fn default() -> Self {
        Self {
            hidden: vec![64, 32],
            norm: Norm::Batch,
            activation: Activation::Prelu,
            dropout: 0.0,
            min_peaks_per_group: 100,
            sparse_kernel: SparseKernel::default(),
        }
    }
}

impl ChromSplitConfig {
    /// Every width positive and at least one; dropout in `[0, 1)`.
    pub fn check(&self) -> Result<(), EncoderError> {
        if self.hidden.is_empty() {
            return Err(config_error("hidden", "needs at least one width".into()));
        }
        if let Some(w) = self.hidden.iter().find(|&&w| w <= 0) {
            return Err(config_error("hidden", format!("width {w} is not positive")));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(config_error(
                "dropout",
                format!("{} is outside [0, 1)", self.dropout),
            ));
        }
        Ok(())
    }

    /// Groups of the peaks named `peak_names` (`chr1:100-600`, ...) under this config's
    /// merge rule.
    pub fn groups<S: AsRef<str>>(&self, peak_names: &[S]) -> Result<ChromGroups, EncoderError> {
        ChromGroups::from_peak_names(peak_names, self.min_peaks_per_group)
    }
}

fn config_error(key: &'static str, msg: String) -> EncoderError {
    EncoderError::Config { key, msg }
}

/// The per-group layers after the first: `hidden[i - 1] -> hidden[i]`, each followed
/// by its norm - activation - dropout stage.
#[derive(Debug)]
struct BlockTrunk {
    stages: Vec<BlockStage>,
    layers: Vec<GroupedLinear>,
}

impl BlockTrunk {
    /// `widths[0]` is the width the input already has (after the first layer, whose
    /// stage is `block0`); layer `i` maps `widths[i - 1] -> widths[i]` under `block{i}`.
    fn new(
        path: &nn::Path,
        n_groups: i64,
        widths: &[i64],
        config: &ChromSplitConfig,
        first_stage: bool,
    ) -> Self {
        let stage = |i: usize, w: i64| {
            BlockStage::new(
                &(path / format!("block{i}")),
                n_groups,
                w,
                config.norm,
                config.activation,
                config.dropout,
            )
        };
        let mut stages = Vec::new();
        if first_stage {
            stages.push(stage(0, widths[0]));
        }
        let mut layers = Vec::new();
        for i in 1..widths.len() {
            let p = path / format!("block{i}");
            layers.push(GroupedLinear::new(
                &(&p / "linear"),
                n_groups,
                widths[i - 1],
                widths[i],
            ));
            stages.push(stage(i, widths[i]));
        }
        Self { stages, layers }
    }
}

impl ModuleT for BlockTrunk {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let offset = self.stages.len() - self.layers.len();
        let mut x = xs.shallow_clone();
        if offset == 1 {
            x = self.stages[0].forward_t(&x, train);
        }
        for (layer, stage) in self.layers.iter().zip(&self.stages[offset..]) {
            x = stage.forward_t(&layer.forward(&x), train);
        }
        x
    }
}

/// SAILERX's "split by chromosome" encoder, on dense or CSR peaks.
///
/// Parameters: `block0/linear/{weight [slots, h0], bias [G h0]}` (the sparse first
/// layer, see [`SparseLinear`]), `block{i}/linear/{weight [G, h(i-1), hi], bias [G, hi]}`,
/// `block{i}/norm/...`, `block{i}/prelu/weight [G]`, then `mu` and `logvar` (`nn::Linear`
/// from `G * h_last + n_covariates`). Covariates, when given, are concatenated to the
/// block features before the two heads (SAILERX's encoder takes none).
#[derive(Debug)]
pub struct ChromSplitEncoder {
    input: SparseLinear,
    trunk: BlockTrunk,
    mu: nn::Linear,
    logvar: nn::Linear,
    latent_dim: i64,
}

impl ChromSplitEncoder {
    pub fn new(
        path: &nn::Path,
        groups: &ChromGroups,
        n_covariates: i64,
        latent_dim: i64,
        config: &ChromSplitConfig,
    ) -> Result<Self, EncoderError> {
        config.check()?;
        let g = groups.len() as i64;
        let input = SparseLinear::new(
            &(path / "block0" / "linear"),
            groups,
            config.hidden[0],
            config.sparse_kernel,
        );
        let trunk = BlockTrunk::new(path, g, &config.hidden, config, true);
        let width = g * config.hidden[config.hidden.len() - 1] + n_covariates;
        Ok(Self {
            input,
            trunk,
            mu: init::linear(path / "mu", width, latent_dim),
            logvar: init::linear(path / "logvar", width, latent_dim),
            latent_dim,
        })
    }

    /// The sparse first layer (for switching its kernel or inspecting its weight).
    pub fn input_layer(&self) -> &SparseLinear {
        &self.input
    }

    pub fn input_layer_mut(&mut self) -> &mut SparseLinear {
        &mut self.input
    }

    /// The concatenated block features `[B, G * h_last]` before the Gaussian heads.
    pub fn features(&self, first_layer: &Tensor, train: bool) -> Tensor {
        self.trunk.forward_t(first_layer, train)
    }

    fn heads(&self, h: Tensor, covariates: Option<&Tensor>) -> Gaussian {
        let h = with_covariates(&h, covariates);
        Gaussian {
            mu: self.mu.forward(&h),
            logvar: self.logvar.forward(&h).clamp(-15.0, 15.0),
        }
    }
}

impl Encoder for ChromSplitEncoder {
    fn encode(&self, x: &Tensor, covariates: Option<&Tensor>, train: bool) -> Gaussian {
        let h = self.features(&self.input.forward_dense(x), train);
        self.heads(h, covariates)
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

impl SparseEncoder for ChromSplitEncoder {
    fn encode_csr(&self, x: &CsrBatch<'_>, covariates: Option<&Tensor>, train: bool) -> Gaussian {
        let h = self.features(&self.input.forward_csr(x), train);
        self.heads(h, covariates)
    }
}

/// SAILERX's "split by chromosome" decoder over `[z, covariates]`: Bernoulli logits
/// `[B, n_peaks]` in the original peak order.
///
/// Parameters: `input/layer0/...` (an [`Mlp`] layer `d + c -> G * h_last` with the
/// config's norm and activation; one PReLU slope, as published), `block{i}/linear`
/// (`[G, in, out]`) and its stage, `out/{weight [slots, h0], bias [n_peaks]}` (the
/// weight in the padded chunk layout of [`SparseLinear`]; [`Self::output_weight`] gives
/// it in peak order).
#[derive(Debug)]
pub struct ChromSplitDecoder {
    input: Mlp,
    trunk: BlockTrunk,
    out: BlockOutput,
}

impl ChromSplitDecoder {
    pub fn new(
        path: &nn::Path,
        groups: &ChromGroups,
        latent_dim: i64,
        n_covariates: i64,
        config: &ChromSplitConfig,
    ) -> Result<Self, EncoderError> {
        config.check()?;
        let g = groups.len() as i64;
        let widths: Vec<i64> = config.hidden.iter().rev().copied().collect();
        let input = Mlp::new(
            &(path / "input"),
            latent_dim + n_covariates,
            &MlpConfig {
                hidden: vec![g * widths[0]],
                norm: config.norm,
                activation: config.activation,
                dropout: config.dropout,
            },
        );
        let trunk = BlockTrunk::new(path, g, &widths, config, false);
        let out = BlockOutput::new(&(path / "out"), groups, widths[widths.len() - 1]);
        Ok(Self { input, trunk, out })
    }
}

impl ChromSplitDecoder {
    /// The output layer's weight as `[n_peaks, h0]` rows in peak order (row `p`: the
    /// weights from its group's units to peak `p`), and its bias `[n_peaks]`.
    pub fn output_weight(&self) -> (Tensor, &Tensor) {
        (self.out.peak_weight(), &self.out.bias)
    }
}

impl Decoder for ChromSplitDecoder {
    fn decode(&self, z: &Tensor, covariates: Option<&Tensor>, train: bool) -> Tensor {
        let h = self.input.forward_t(&with_covariates(z, covariates), train);
        self.out.forward(&self.trunk.forward_t(&h, train))
    }
}

impl LikelihoodDecoder for ChromSplitDecoder {
    /// Bernoulli logits; `scale` is ignored.
    fn decode_likelihood(
        &self,
        z: &Tensor,
        covariates: Option<&Tensor>,
        _scale: Option<&Tensor>,
        train: bool,
    ) -> Likelihood {
        Likelihood::Bernoulli {
            logits: self.decode(z, covariates, train),
        }
    }
}
