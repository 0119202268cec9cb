//! Block-diagonal layers over groups of features, computed as a few batched matrix
//! products (`bmm`) instead of one small `Linear` per group.
//!
//! Groups (chromosomes) have different widths. The layers between a group's input and
//! its hidden units have the same width in every group and are plain `[G, in, out]`
//! batched products. The layers that touch the peak space (the encoder's first layer,
//! the decoder's output layer) hold the block-diagonal matrix without its zeros: one
//! row of `width` weights per peak, between the peak and its group's `width` units.
//!
//! To run those as one `bmm`, a [`ChunkPlan`] cuts every group into chunks of at most
//! `C` peaks and pads each group's last chunk; `C` is the largest power of two (or the
//! widest group) whose padding adds at most 12.5% to the number of peaks. The weight is
//! stored in that layout, `[n_chunks * C, width]` ("slots"), so that neither direction
//! copies or scatters it: slot `s` holds the row of peak `gather[s]`, and padding slots
//! hold zeros that stay zero (the encoder's padding inputs are zero and the decoder's
//! padding outputs are dropped, so their gradient is exactly zero). With one group the
//! slots are the peaks in order (`[n_peaks, width]`).

use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

use crate::groups::ChromGroups;
use crate::init::xavier_uniform;
use crate::mlp::{Activation, Norm};

/// How the peaks of every group are laid out in `[n_chunks, chunk]` slots for `bmm`.
#[derive(Debug)]
pub(crate) struct ChunkPlan {
    pub n_groups: i64,
    pub chunk: i64,
    pub n_chunks: i64,
    /// `n_chunks * chunk`.
    pub slots: i64,
    /// `[slots]`: the peak in each slot, `n_peaks` (an all-zero input column) if none.
    pub gather: Tensor,
    /// `[n_chunks]`: the group of each chunk.
    pub chunk_group: Tensor,
    /// `[n_peaks]`: the slot of each peak, on the device and on the CPU.
    pub position: Tensor,
    pub position_cpu: Vec<i64>,
    /// Every group is exactly one chunk, in group order (no `index_add` needed).
    pub one_chunk_per_group: bool,
}

/// Largest admissible chunk width (see the module docs).
pub(crate) fn chunk_width(widths: &[usize]) -> usize {
    let total: usize = widths.iter().sum();
    let max = widths.iter().copied().max().unwrap_or(1).max(1);
    let padded = |c: usize| -> usize { widths.iter().map(|w| w.div_ceil(c) * c).sum() };
    let mut candidates: Vec<usize> = (0..)
        .map(|k| 1usize << k)
        .take_while(|&c| c < max)
        .collect();
    candidates.push(max);
    candidates
        .into_iter()
        .filter(|&c| padded(c) * 8 <= total * 9)
        .max()
        .unwrap_or(1)
}

impl ChunkPlan {
    pub fn new(groups: &ChromGroups, device: Device) -> Self {
        let widths = groups.widths();
        let chunk = chunk_width(&widths);
        let n_peaks = groups.n_peaks();
        let mut gather = Vec::new();
        let mut chunk_group = Vec::new();
        let mut position = vec![0i64; n_peaks];
        for (g, group) in groups.groups().iter().enumerate() {
            for piece in group.columns.chunks(chunk) {
                chunk_group.push(g as i64);
                for (k, &c) in piece.iter().enumerate() {
                    position[c] = (gather.len() + k) as i64;
                }
                gather.extend(piece.iter().map(|&c| c as i64));
                gather.extend(std::iter::repeat_n(n_peaks as i64, chunk - piece.len()));
            }
        }
        let one_chunk_per_group = chunk_group.len() == groups.len();
        Self {
            n_groups: groups.len() as i64,
            chunk: chunk as i64,
            n_chunks: chunk_group.len() as i64,
            slots: gather.len() as i64,
            gather: Tensor::from_slice(&gather).to_device(device),
            chunk_group: Tensor::from_slice(&chunk_group).to_device(device),
            position: Tensor::from_slice(&position).to_device(device),
            position_cpu: position,
            one_chunk_per_group,
        }
    }

    /// The `[slots, w]` weight as `[n_chunks, chunk, w]` (a view).
    pub fn chunked(&self, weight: &Tensor) -> Tensor {
        weight.view([self.n_chunks, self.chunk, -1])
    }

    /// The `[slots, w]` weight as one row per peak, `[n_peaks, w]`, in peak order
    /// (a differentiable gather, for inspection and tests).
    pub fn peak_rows(&self, weight: &Tensor) -> Tensor {
        weight.index_select(0, &self.position)
    }
}

/// A `[slots, width]` peak-space weight, Xavier/Glorot-uniform block by block: the row
/// of a peak is drawn from U(-b_g, b_g) with the bound of its group's true fan-in and
/// fan-out, `b_g = sqrt(6 / (n_g + width))` (`n_g` peaks in the group); padding slots
/// are zero.
pub(crate) fn peak_space_weight(
    path: &nn::Path,
    name: &str,
    groups: &ChromGroups,
    plan: &ChunkPlan,
    width: i64,
) -> Tensor {
    let mut weight = path.var(
        name,
        &[plan.slots, width],
        nn::Init::Uniform { lo: -1.0, up: 1.0 },
    );
    let widths = groups.widths();
    let mut bounds = vec![0f32; plan.slots as usize];
    for (&g, &slot) in groups.group_of().iter().zip(&plan.position_cpu) {
        bounds[slot as usize] = match xavier_uniform(widths[g as usize] as i64, width) {
            nn::Init::Uniform { up, .. } => up as f32,
            _ => unreachable!("xavier_uniform is uniform"),
        };
    }
    let bounds = Tensor::from_slice(&bounds)
        .view([plan.slots, 1])
        .to_device(weight.device())
        .to_kind(weight.kind());
    tch::no_grad(|| {
        let _ = weight.g_mul_(&bounds);
    });
    weight
}

/// The same linear map in every group, each with its own weights:
/// `[B, G * in] -> [B, G * out]`, group `g` at columns `g * in .. (g + 1) * in`.
/// Weight `[G, in, out]` (Xavier per block), bias `[G, out]` (zero).
#[derive(Debug)]
pub(crate) struct GroupedLinear {
    pub weight: Tensor,
    pub bias: Tensor,
    n_groups: i64,
    input: i64,
    output: i64,
}

impl GroupedLinear {
    pub fn new(path: &nn::Path, n_groups: i64, input: i64, output: i64) -> Self {
        Self {
            weight: path.var(
                "weight",
                &[n_groups, input, output],
                xavier_uniform(input, output),
            ),
            bias: path.var("bias", &[n_groups, output], nn::Init::Const(0.0)),
            n_groups,
            input,
            output,
        }
    }
}

impl Module for GroupedLinear {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let b = xs.size()[0];
        let y = xs
            .view([b, self.n_groups, self.input])
            .transpose(0, 1)
            .bmm(&self.weight)
            .transpose(0, 1);
        (y + &self.bias).reshape([b, self.n_groups * self.output])
    }
}

/// The decoder's output layer: group `g`'s `width` hidden units -> its `n_g` peaks,
/// `[B, G * width] -> [B, n_peaks]` in the original peak order. Weight `[slots, width]`
/// (see the module docs; Xavier per block), bias `[n_peaks]` (zero).
#[derive(Debug)]
pub(crate) struct BlockOutput {
    pub weight: Tensor,
    pub bias: Tensor,
    plan: ChunkPlan,
    width: i64,
}

impl BlockOutput {
    pub fn new(path: &nn::Path, groups: &ChromGroups, width: i64) -> Self {
        let plan = ChunkPlan::new(groups, path.device());
        let weight = peak_space_weight(path, "weight", groups, &plan, width);
        let bias = path.var("bias", &[groups.n_peaks() as i64], nn::Init::Const(0.0));
        Self {
            plan,
            weight,
            bias,
            width,
        }
    }

    /// The weight as `[n_peaks, width]` rows in peak order.
    pub fn peak_weight(&self) -> Tensor {
        self.plan.peak_rows(&self.weight)
    }
}

impl Module for BlockOutput {
    fn forward(&self, xs: &Tensor) -> Tensor {
        let plan = &self.plan;
        if plan.n_groups == 1 {
            return xs.matmul(&self.weight.tr()) + &self.bias;
        }
        let b = xs.size()[0];
        let h = xs.view([b, plan.n_groups, self.width]).transpose(0, 1);
        let h = if plan.one_chunk_per_group {
            h
        } else {
            h.index_select(0, &plan.chunk_group)
        };
        // [n_chunks, B, chunk] -> [B, slots] -> the peaks, by a gather (its backward is
        // one scatter-add kernel, unlike index_select's slice-by-slice index_add)
        let n_peaks = plan.position_cpu.len() as i64;
        h.bmm(&plan.chunked(&self.weight).transpose(1, 2))
            .transpose(0, 1)
            .reshape([b, plan.slots])
            .gather(
                1,
                &plan.position.unsqueeze(0).expand([b, n_peaks], false),
                false,
            )
            + &self.bias
    }
}

#[derive(Debug)]
enum BlockNorm {
    /// BatchNorm over the concatenated `[B, G * w]` features: per-feature statistics,
    /// so the same as one BatchNorm per block.
    Batch(nn::BatchNorm),
    /// LayerNorm within each block, affine parameters `[G, w]`.
    Layer {
        weight: Tensor,
        bias: Tensor,
    },
    None,
}

/// Norm - activation - dropout applied to block features `[B, G * w]`, each block as
/// its own module would: PReLU has one slope per block (SAILERX's `nn.PReLU()` per
/// chromosome), LayerNorm normalises within each block.
#[derive(Debug)]
pub(crate) struct BlockStage {
    norm: BlockNorm,
    activation: Activation,
    prelu: Option<Tensor>,
    dropout: f64,
    n_groups: i64,
    width: i64,
}

impl BlockStage {
    pub fn new(
        path: &nn::Path,
        n_groups: i64,
        width: i64,
        norm: Norm,
        activation: Activation,
        dropout: f64,
    ) -> Self {
        let norm = match norm {
            Norm::Batch => BlockNorm::Batch(nn::batch_norm1d(
                path / "norm",
                n_groups * width,
                Default::default(),
            )),
            Norm::Layer => BlockNorm::Layer {
                weight: (path / "norm").var("weight", &[n_groups, width], nn::Init::Const(1.0)),
                bias: (path / "norm").var("bias", &[n_groups, width], nn::Init::Const(0.0)),
            },
            Norm::None => BlockNorm::None,
        };
        let prelu = (activation == Activation::Prelu)
            .then(|| (path / "prelu").var("weight", &[n_groups], nn::Init::Const(0.25)));
        Self {
            norm,
            activation,
            prelu,
            dropout,
            n_groups,
            width,
        }
    }
}

impl ModuleT for BlockStage {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let b = xs.size()[0];
        let blocks = [b, self.n_groups, self.width];
        let x = match &self.norm {
            BlockNorm::Batch(bn) => bn.forward_t(xs, train),
            BlockNorm::Layer { weight, bias } => {
                xs.view(blocks).layer_norm(
                    [self.width],
                    None::<Tensor>,
                    None::<Tensor>,
                    1e-5,
                    false,
                ) * weight
                    + bias
            }
            BlockNorm::None => xs.shallow_clone(),
        };
        let x = match (self.activation, &self.prelu) {
            (Activation::Prelu, Some(w)) => x.view(blocks).prelu(w),
            (Activation::LeakyRelu, _) => x.leaky_relu(),
            (Activation::Relu, _) => x.relu(),
            (Activation::Gelu, _) => x.gelu("none"),
            (Activation::Prelu, None) => unreachable!("PReLU stages are built with a weight"),
        };
        let x = x.reshape([b, self.n_groups * self.width]);
        if self.dropout > 0.0 {
            x.dropout(self.dropout, train)
        } else {
            x
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunk_width_bounds_the_padding() {
        assert_eq!(chunk_width(&[10]), 10);
        assert_eq!(chunk_width(&[100, 100, 100]), 100);
        // chr1-like imbalance: one wide group, many narrow ones
        let widths = [4385, 4376, 3401, 2954, 2931, 1341, 939, 420, 212];
        let c = chunk_width(&widths);
        let total: usize = widths.iter().sum();
        let padded: usize = widths.iter().map(|w| w.div_ceil(c) * c).sum();
        assert!(padded * 8 <= total * 9, "{c} {padded} {total}");
        assert!(c >= 64, "{c}");
        assert_eq!(chunk_width(&[1, 1, 1]), 1);
    }
}
