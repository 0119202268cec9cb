//! The sparse input layer: a (block-diagonal) linear layer computed from the CSR rows of
//! a minibatch, at a cost proportional to the number of stored entries.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn;

use crate::blocks::{ChunkPlan, peak_space_weight};
use crate::csr::{Bags, CsrBatch, i64_tensor, row_ids, value_tensor};
use crate::groups::ChromGroups;

/// How [`SparseLinear::forward_csr`] multiplies the CSR rows with the weight. All three
/// give the same numbers (to float rounding) and the same gradients; they differ in
/// speed (`cargo run --release -p crossomics-encoders --example sparse_bench`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SparseKernel {
    /// `embedding_bag` (mode sum, `per_sample_weights` = the values), one bag per
    /// (cell, group). The fastest on CPU in the benchmark, forward and backward.
    #[default]
    EmbeddingBag,
    /// A sparse COO tensor `[cells * groups, n_peaks]` times the weight (`mm`).
    CooMm,
    /// A sparse CSR tensor `[cells * groups, n_peaks]` times the weight (`mm`).
    CsrMm,
}

/// A linear layer whose input is a sparse cells x peaks matrix, block-diagonal over
/// peak groups: `[B, n_peaks] -> [B, G * width]`, group `g`'s peaks feeding only the
/// units `g * width .. (g + 1) * width` — for one group, an ordinary `Linear(n_peaks ->
/// width)`.
///
/// The weight holds one row of `width` weights per peak (from the peak to its group's
/// units; note the transpose of `nn::Linear`'s `[out, in]`), so that the sparse product
/// gathers rows. For one group it is `[n_peaks, width]` in peak order; for several it is
/// stored in the padded chunk layout `[slots, width]` of the dense block product (see
/// [`peak_weight`](Self::peak_weight)). It is initialised Xavier-uniform per block with
/// the block's fan-in (its number of peaks) and fan-out (`width`). The bias `[G *
/// width]` starts at zero. [`forward_csr`](Self::forward_csr) and [`forward_dense`](Self::forward_dense)
/// compute the same function; their weight gradients agree too.
#[derive(Debug)]
pub struct SparseLinear {
    weight: Tensor,
    bias: Tensor,
    group_of: Vec<i64>,
    n_groups: i64,
    width: i64,
    kernel: SparseKernel,
    plan: ChunkPlan,
}

impl SparseLinear {
    /// The block-diagonal layer over `groups`, `width` units per group. Parameters:
    /// `path/weight` `[slots, width]` (`[n_peaks, width]` for one group), `path/bias`
    /// `[G * width]`.
    pub fn new(path: &nn::Path, groups: &ChromGroups, width: i64, kernel: SparseKernel) -> Self {
        let plan = ChunkPlan::new(groups, path.device());
        let weight = peak_space_weight(path, "weight", groups, &plan, width);
        let bias = path.var("bias", &[groups.len() as i64 * width], nn::Init::Const(0.0));
        Self {
            plan,
            weight,
            bias,
            group_of: groups.group_of().to_vec(),
            n_groups: groups.len() as i64,
            width,
            kernel,
        }
    }

    /// An ordinary (dense-weight) `Linear(input -> output)` with a sparse input.
    pub fn dense(path: &nn::Path, input: i64, output: i64, kernel: SparseKernel) -> Self {
        Self::new(path, &ChromGroups::single(input as usize), output, kernel)
    }

    /// The weight parameter as stored: `[slots, width]` (`[n_peaks, width]` for one
    /// group).
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The weight as `[n_peaks, width]`, row `p` the weights from peak `p` to its
    /// group's units (a differentiable gather of [`weight`](Self::weight)).
    pub fn peak_weight(&self) -> Tensor {
        self.peak_rows(&self.weight)
    }

    /// Any `[slots, k]` tensor laid out like the weight (e.g. its gradient) as
    /// `[n_peaks, k]` rows in peak order.
    pub fn peak_rows(&self, slots: &Tensor) -> Tensor {
        self.plan.peak_rows(slots)
    }

    /// `[G * width]`.
    pub fn bias(&self) -> &Tensor {
        &self.bias
    }

    pub fn input_dim(&self) -> i64 {
        self.group_of.len() as i64
    }

    /// `G * width`.
    pub fn output_dim(&self) -> i64 {
        self.n_groups * self.width
    }

    pub fn kernel(&self) -> SparseKernel {
        self.kernel
    }

    /// Switches the sparse kernel (same parameters, same results).
    pub fn set_kernel(&mut self, kernel: SparseKernel) {
        self.kernel = kernel;
    }

    /// The layer on CSR rows: `[x.nrows, G * width]`. Cost O(nnz * width) plus
    /// O(nnz + nrows * G) on the CPU to sort each row's entries by group (skipped for
    /// one group). Values are cast to the weight's kind and moved to its device.
    ///
    /// # Panics
    /// If `x.ncols` is not the layer's input width.
    pub fn forward_csr(&self, x: &CsrBatch<'_>) -> Tensor {
        assert_eq!(
            x.ncols as i64,
            self.input_dim(),
            "CSR batch has {} columns, the sparse layer {} inputs",
            x.ncols,
            self.input_dim()
        );
        let b = x.nrows as i64;
        let (kind, device) = (self.weight.kind(), self.weight.device());
        let bags;
        let (indices, values, offsets) = if self.n_groups == 1 {
            (x.indices, x.values, x.indptr)
        } else {
            bags = Bags::build(
                x,
                &self.group_of,
                self.n_groups as usize,
                &self.plan.position_cpu,
            );
            (&bags.indices[..], &bags.values[..], &bags.offsets[..])
        };
        let n_bags = b * self.n_groups;
        let y = if indices.is_empty() || n_bags == 0 {
            Tensor::zeros([n_bags, self.width], (kind, device))
        } else {
            let idx = i64_tensor(indices, device);
            let vals = value_tensor(values, kind, device);
            let size = [n_bags, self.plan.slots];
            match self.kernel {
                SparseKernel::EmbeddingBag => {
                    let offsets = i64_tensor(offsets, device);
                    Tensor::embedding_bag(
                        &self.weight,
                        &idx,
                        &offsets,
                        false,
                        0,
                        false,
                        Some(&vals),
                        true,
                    )
                    .0
                }
                SparseKernel::CooMm => {
                    let coalesced = sorted_within_bags(indices, offsets);
                    let rows = i64_tensor(&row_ids(offsets), device);
                    let coords = Tensor::stack(&[rows, idx], 0);
                    Tensor::sparse_coo_tensor_indices_size(
                        &coords,
                        &vals,
                        size,
                        (kind, device),
                        coalesced,
                    )
                    .mm(&self.weight)
                }
                SparseKernel::CsrMm => {
                    let crow = i64_tensor(offsets, device);
                    Tensor::sparse_csr_tensor_crow_col_value_size(
                        &crow,
                        &idx,
                        &vals,
                        size,
                        (kind, device),
                    )
                    .mm(&self.weight)
                }
            }
        };
        y.view([b, self.output_dim()]) + &self.bias
    }

    /// The same layer on dense rows `[B, n_peaks]`: one `mm` for one group, otherwise
    /// one `bmm` over the padded chunks of every group (see the `blocks` module) and an
    /// `index_add` of the chunks into their groups.
    pub fn forward_dense(&self, x: &Tensor) -> Tensor {
        let plan = &self.plan;
        if plan.n_groups == 1 {
            return x.matmul(&self.weight) + &self.bias;
        }
        let b = x.size()[0];
        let zero = Tensor::zeros([b, 1], (x.kind(), x.device()));
        let xp = Tensor::cat(&[x, &zero], 1)
            .index_select(1, &plan.gather)
            .view([b, plan.n_chunks, plan.chunk])
            .transpose(0, 1);
        let y = xp.bmm(&plan.chunked(&self.weight));
        let y = if plan.one_chunk_per_group {
            y
        } else {
            Tensor::zeros([plan.n_groups, b, self.width], (y.kind(), y.device())).index_add(
                0,
                &plan.chunk_group,
                &y,
            )
        };
        y.transpose(0, 1).reshape([b, self.output_dim()]) + &self.bias
    }
}

/// Whether the columns strictly increase within every bag (then the COO tensor built
/// from the bags is already coalesced).
fn sorted_within_bags(indices: &[i64], offsets: &[i64]) -> bool {
    offsets.windows(2).all(|w| {
        indices[w[0] as usize..w[1] as usize]
            .windows(2)
            .all(|p| p[0] < p[1])
    })
}
