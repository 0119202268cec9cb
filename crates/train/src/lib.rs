//! The one training loop every model uses.
//!
//! Per epoch: shuffle the training cells into minibatches, take an optimiser step per
//! batch (Adam with L2 weight decay, optional gradient-norm clipping), then decay the
//! learning rate, compute the validation loss (evaluation mode, no gradients) and keep
//! the best weights for early stopping. An optional warm-up phase runs first; its epochs
//! neither decay the lr nor count for early stopping.
//!
//! Minibatches come from a `crossomics_data::loader::Loader` over the CSR matrices the
//! model names ([`Trainable::sources`]): a background thread densifies the next batches
//! (same seeded order as [`crossomics_data::batches::shuffled`]) while the model trains
//! on the current one, and the model wraps each buffer as a tensor with one copy.

use std::time::Instant;

use crossomics_data::batches;
use crossomics_data::loader::{Batch, CsrRows, DenseRows, Loader, Prefetch, Source};
use crossomics_losses::KlSchedule;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Tensor};

pub mod error;
pub mod tensor;

pub use error::{ModelError, ParamError, Result};

/// Where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// The first CUDA GPU when there is one, else the CPU.
    #[default]
    Auto,
    Cpu,
    Cuda,
}

impl DeviceChoice {
    pub fn resolve(self) -> Result<Device> {
        match self {
            Self::Auto => Ok(Device::cuda_if_available()),
            Self::Cpu => Ok(Device::Cpu),
            Self::Cuda if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
            Self::Cuda => Err(ModelError::Device("cuda".into())),
        }
    }
}

/// Optimisation settings (the `[training]` config section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainOptions {
    pub epochs: usize,
    /// Epochs of the model's warm-up objective before the main one.
    pub warmup_epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Multiplies the lr after every main-phase epoch (SAILERX: 0.995).
    pub lr_decay: f64,
    /// Clip the global gradient norm to this value.
    pub grad_clip: Option<f64>,
    /// Stop when the validation loss has not improved for this many epochs.
    pub patience: Option<usize>,
    /// Multiply the lr by `factor` when the validation loss has not improved for
    /// `patience` epochs (PyTorch's `ReduceLROnPlateau`, mode min, relative threshold
    /// 1e-4; BABEL: factor 0.1, patience 15). Applied after `lr_decay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lr_plateau: Option<Plateau>,
    pub device: DeviceChoice,
}

/// `[training.lr_plateau]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plateau {
    pub factor: f64,
    pub patience: usize,
}

/// The state of [`Plateau`] over epochs.
#[derive(Debug, Clone, Copy)]
struct PlateauState {
    best: f64,
    bad_epochs: usize,
}

impl PlateauState {
    /// Takes the epoch's validation loss; true when the lr should be reduced now.
    fn step(&mut self, loss: f64, p: &Plateau) -> bool {
        if loss < self.best * (1.0 - 1e-4) {
            self.best = loss;
            self.bad_epochs = 0;
            return false;
        }
        self.bad_epochs += 1;
        if self.bad_epochs > p.patience {
            self.bad_epochs = 0;
            return true;
        }
        false
    }
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            epochs: 400,
            warmup_epochs: 10,
            batch_size: 200,
            lr: 1e-4,
            weight_decay: 5e-4,
            lr_decay: 0.995,
            grad_clip: None,
            patience: None,
            lr_plateau: None,
            device: DeviceChoice::Auto,
        }
    }
}

impl TrainOptions {
    /// Checks the options; errors name the key below `[training]`.
    pub fn check(&self) -> Result<(), ParamError> {
        let bad = |name: &str, reason: String| Err(ParamError::new(name, reason));
        if self.batch_size < 2 {
            return bad(
                "batch_size",
                format!("{} < 2 (BatchNorm needs 2 cells)", self.batch_size),
            );
        }
        if !(self.lr > 0.0 && self.lr.is_finite()) {
            return bad("lr", format!("{} is not a positive number", self.lr));
        }
        if !(self.lr_decay > 0.0 && self.lr_decay <= 1.0) {
            return bad("lr_decay", format!("{} is not in (0, 1]", self.lr_decay));
        }
        if let Some(p) = &self.lr_plateau
            && !(p.factor > 0.0 && p.factor < 1.0)
        {
            return bad(
                "lr_plateau.factor",
                format!("{} is not in (0, 1)", p.factor),
            );
        }
        if self.weight_decay < 0.0 {
            return bad("weight_decay", format!("{} is negative", self.weight_decay));
        }
        Ok(())
    }
}

/// What a model needs to know about where training is.
#[derive(Debug, Clone, Copy)]
pub struct StepContext {
    pub epoch: usize,
    /// Optimiser steps taken in the main phase so far.
    pub step: u64,
    pub steps_per_epoch: u64,
    pub warmup: bool,
    /// Validation: the model should use fixed weights (e.g. KL weight 1) so that
    /// validation losses are comparable across epochs.
    pub validation: bool,
    /// The batch holds cells of the extra pool ([`ExtraCells`]: single-modality cells of
    /// a hybrid run), not of the main training cells.
    pub extra: bool,
    /// The weight of the KL terms at this step: the model's [`Trainable::kl_schedule`]
    /// over main-phase steps, 1 for validation (so that validation losses compare across
    /// epochs) and for models without a schedule.
    pub kl_weight: f64,
}

impl StepContext {
    /// A validation step: fixed weights.
    pub fn validation() -> Self {
        Self {
            epoch: 0,
            step: 0,
            steps_per_epoch: 1,
            warmup: false,
            validation: true,
            extra: false,
            kl_weight: 1.0,
        }
    }
}

/// A second pool of training cells interleaved with the main ones: every `every`-th
/// optimiser step takes a batch from `cells` (SAILERX's hybrid mode: ATAC-only cells
/// every 3rd step). The pool is reshuffled whenever it is used up.
#[derive(Debug, Clone, Copy)]
pub struct ExtraCells<'c> {
    pub cells: &'c [usize],
    pub every: usize,
}

/// Whether each step of an epoch takes an extra batch, for `n_main` main batches: after
/// every `every - 1` main batches comes one extra batch (none without extra cells).
fn epoch_pattern(n_main: usize, extra: Option<&ExtraCells<'_>>) -> Vec<bool> {
    let mut pattern = Vec::with_capacity(n_main * 2);
    for i in 0..n_main {
        pattern.push(false);
        if let Some(e) = extra
            && !e.cells.is_empty()
            && (i + 1) % (e.every - 1) == 0
        {
            pattern.push(true);
        }
    }
    pattern
}

/// One minibatch's loss: the total that is optimised and its named parts for the log.
#[derive(Debug)]
pub struct LossOutput {
    pub total: Tensor,
    pub parts: Vec<(&'static str, Tensor)>,
}

/// One minibatch as a model sees it: the cells, and the rows of the model's
/// [`Trainable::sources`] already loaded (dense and/or CSR) when the loop prefetched them.
#[derive(Debug, Clone, Copy)]
pub struct Minibatch<'b> {
    /// Row indices into every matrix of the input, in batch order.
    pub cells: &'b [usize],
    loaded: Option<&'b Batch>,
}

impl<'b> Minibatch<'b> {
    /// Cells without loaded rows (the model reads its inputs itself).
    pub fn new(cells: &'b [usize]) -> Self {
        Self {
            cells,
            loaded: None,
        }
    }

    /// A loader batch: its cells and the rows it loaded.
    pub fn loaded(batch: &'b Batch) -> Self {
        Self {
            cells: batch.cells(),
            loaded: Some(batch),
        }
    }

    /// The rows of source `source` (its index in [`Trainable::sources`]) as a row-major
    /// `cells x columns` buffer (`tensor::from_dense_rows`), when loaded.
    pub fn dense(&self, source: usize) -> Option<DenseRows<'b>> {
        self.loaded?.dense(source)
    }

    /// The rows of source `source` as CSR slices (`tensor::from_csr_rows`), when loaded.
    pub fn sparse(&self, source: usize) -> Option<CsrRows<'b>> {
        self.loaded?.sparse(source)
    }
}

/// A model the generic loop can train.
pub trait Trainable {
    type Input<'a>;
    fn var_store(&self) -> &nn::VarStore;
    /// CSR matrices of `input` (rows = cells) whose rows every minibatch needs: the loop
    /// loads them on a background thread ahead of [`Trainable::loss`], where
    /// `batch.dense(i)` / `batch.sparse(i)` hold the rows of the `i`-th. Default: none.
    fn sources<'a>(&self, input: &Self::Input<'a>) -> Vec<Source<'a>> {
        let _ = input;
        Vec::new()
    }
    /// How the KL weight evolves over the main phase's optimiser steps (the training
    /// plan's annealing, applied by the loop into [`StepContext::kl_weight`]), for
    /// `steps_per_epoch` steps an epoch. Default: none (weight 1).
    fn kl_schedule(&self, steps_per_epoch: u64) -> Option<KlSchedule> {
        let _ = steps_per_epoch;
        None
    }
    fn loss(
        &self,
        input: &Self::Input<'_>,
        batch: &Minibatch<'_>,
        ctx: &StepContext,
        train: bool,
    ) -> Result<LossOutput>;
}

/// One epoch's record (a row of the run's `losses.csv`).
#[derive(Debug, Clone, Serialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub phase: &'static str,
    pub lr: f64,
    /// mean over the epoch's batches, per loss part, then the total
    pub train: Vec<(String, f64)>,
    pub val_loss: Option<f64>,
    pub cells_per_second: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrainHistory {
    pub epochs: Vec<EpochRecord>,
    pub best_epoch: Option<usize>,
    pub stopped_early: bool,
}

/// Trains `model` on `split.train`, validating on `split.val` (may be empty).
pub fn fit<'i, M: Trainable>(
    model: &M,
    input: &M::Input<'i>,
    train_cells: &[usize],
    val_cells: &[usize],
    opts: &TrainOptions,
    seed: u64,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainHistory> {
    fit_with_extra(
        model,
        input,
        train_cells,
        None,
        val_cells,
        opts,
        seed,
        observer,
    )
}

/// [`fit`] with a second pool of training cells interleaved with the main ones (their
/// batches reach the model with [`StepContext::extra`] set).
#[allow(clippy::too_many_arguments)]
pub fn fit_with_extra<'i, M: Trainable>(
    model: &M,
    input: &M::Input<'i>,
    train_cells: &[usize],
    extra: Option<ExtraCells<'_>>,
    val_cells: &[usize],
    opts: &TrainOptions,
    seed: u64,
    observer: &mut dyn FnMut(&EpochRecord),
) -> Result<TrainHistory> {
    opts.check()?;
    if let Some(e) = &extra {
        if e.every < 2 {
            return Err(ModelError::Input(format!(
                "every {}: fewer than 2 steps between extra batches",
                e.every
            )));
        }
        if e.cells.len() == 1 {
            return Err(ModelError::Input(
                "one extra cell: an extra batch needs at least 2 (BatchNorm)".into(),
            ));
        }
    }
    if train_cells.len() < 2 {
        return Err(ModelError::Input(format!(
            "{} training cells; need at least 2",
            train_cells.len()
        )));
    }
    let vs = model.var_store();
    let mut opt = nn::Adam {
        wd: opts.weight_decay,
        ..Default::default()
    }
    .build(vs, opts.lr)?;
    let loader = Loader::new(model.sources(input)).map_err(|e| ModelError::Input(e.to_string()))?;
    let prefetch = prefetch_for(&loader);
    let main_batches = batches::count(train_cells.len(), opts.batch_size);
    let pattern = epoch_pattern(main_batches, extra.as_ref());
    let batches_per_epoch = pattern.len();
    // (without an extra pool: the number of batches counting a merged single-cell batch,
    // as the KL schedules of the committed results were computed)
    let steps_per_epoch = if extra.is_some_and(|e| !e.cells.is_empty()) {
        batches_per_epoch as u64
    } else {
        train_cells.len().div_ceil(opts.batch_size) as u64
    };
    let epoch_cells = train_cells.len() + pattern.iter().filter(|e| **e).count() * opts.batch_size;
    let kl_schedule = model.kl_schedule(steps_per_epoch);
    let mut lr = opts.lr;
    let mut step = 0u64;
    let mut history = TrainHistory::default();
    let mut best: Option<(f64, Vec<(String, Tensor)>)> = None;
    let mut since_best = 0usize;
    let mut plateau = PlateauState {
        best: f64::INFINITY,
        bad_epochs: 0,
    };

    let total_epochs = opts.warmup_epochs + opts.epochs;
    // every epoch's shuffle from one seeded generator, in order: the batches the loader
    // prepares ahead are exactly those `batches::shuffled` gave epoch by epoch
    let plan = {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        // the extra pool has its own generator, so that a run without one draws the same
        // main batches as before
        let mut extra_rng = ChaCha8Rng::seed_from_u64(seed ^ 0x6879_6272_6964);
        let batch_size = opts.batch_size;
        let pattern = pattern.clone();
        let extra_cells: &[usize] = extra.map_or(&[], |e| e.cells);
        let mut extra_queue: std::collections::VecDeque<Vec<usize>> = Default::default();
        (0..total_epochs).flat_map(move |_| {
            let mut main = batches::shuffled(train_cells, batch_size, &mut rng).into_iter();
            let mut epoch = Vec::with_capacity(pattern.len());
            for &is_extra in &pattern {
                if is_extra {
                    if extra_queue.is_empty() {
                        extra_queue.extend(batches::shuffled(
                            extra_cells,
                            batch_size,
                            &mut extra_rng,
                        ));
                    }
                    epoch.push(extra_queue.pop_front().expect("a non-empty pool"));
                } else {
                    epoch.push(main.next().expect("one main batch per pattern slot"));
                }
            }
            epoch
        })
    };
    loader.run(plan, prefetch, |loaded| -> Result<()> {
        for epoch in 0..total_epochs {
            let warmup = epoch < opts.warmup_epochs;
            let started = Instant::now();
            let mut sums: Vec<(String, f64, usize)> = Vec::new();
            for &is_extra in &pattern {
                let batch = loaded.next().ok_or_else(|| {
                    ModelError::Input(format!("the minibatch loader ended in epoch {epoch}"))
                })?;
                let ctx = StepContext {
                    epoch,
                    step,
                    steps_per_epoch,
                    warmup,
                    validation: false,
                    extra: is_extra,
                    kl_weight: kl_schedule.as_ref().map_or(1.0, |k| k.weight(step)),
                };
                let out = model.loss(input, &Minibatch::loaded(&batch), &ctx, true)?;
                match opts.grad_clip {
                    Some(c) => opt.backward_step_clip_norm(&out.total, c),
                    None => opt.backward_step(&out.total),
                }
                if !warmup {
                    step += 1;
                }
                accumulate(&mut sums, &out, epoch)?;
            }
            // each part's mean over the batches that had it (a hybrid run's extra batches
            // have no alignment term)
            let train: Vec<(String, f64)> = sums
                .into_iter()
                .map(|(k, v, n)| (k, v / n as f64))
                .collect();
            let cells_per_second = epoch_cells as f64 / started.elapsed().as_secs_f64().max(1e-9);

            let val_loss = if val_cells.is_empty() {
                None
            } else {
                Some(validation_loss(
                    model,
                    input,
                    &loader,
                    val_cells,
                    opts.batch_size,
                    &StepContext {
                        epoch,
                        step,
                        steps_per_epoch,
                        warmup,
                        validation: true,
                        extra: false,
                        kl_weight: 1.0,
                    },
                )?)
            };
            let record = EpochRecord {
                epoch,
                phase: if warmup { "warmup" } else { "main" },
                lr,
                train,
                val_loss,
                cells_per_second,
            };
            observer(&record);
            history.epochs.push(record);

            if !warmup {
                lr *= opts.lr_decay;
                if let (Some(p), Some(v)) = (&opts.lr_plateau, val_loss)
                    && plateau.step(v, p)
                {
                    lr *= p.factor;
                }
                opt.set_lr(lr);
                if let Some(v) = val_loss {
                    if best.as_ref().is_none_or(|(b, _)| v < *b) {
                        best = Some((v, snapshot(vs)));
                        history.best_epoch = Some(epoch);
                        since_best = 0;
                    } else {
                        since_best += 1;
                    }
                    if opts.patience.is_some_and(|p| since_best >= p) {
                        history.stopped_early = true;
                        break;
                    }
                }
            }
        }
        Ok(())
    })?;
    if let Some((_, weights)) = best.filter(|_| opts.patience.is_some()) {
        restore(vs, &weights);
    }
    Ok(history)
}

/// Densify on a thread only when there is something to densify.
fn prefetch_for(loader: &Loader<'_>) -> Prefetch {
    if loader.n_sources() == 0 {
        Prefetch::Inline
    } else {
        Prefetch::Background
    }
}

/// Mean loss over `cells` in evaluation mode, in consecutive chunks of `batch_size`.
fn validation_loss<M: Trainable>(
    model: &M,
    input: &M::Input<'_>,
    loader: &Loader<'_>,
    cells: &[usize],
    batch_size: usize,
    ctx: &StepContext,
) -> Result<f64> {
    let chunks = cells.chunks(batch_size).map(<[usize]>::to_vec);
    tch::no_grad(|| {
        loader.run(chunks, prefetch_for(loader), |loaded| {
            let mut total = 0.0;
            for batch in loaded {
                let out = model.loss(input, &Minibatch::loaded(&batch), ctx, false)?;
                total += out.total.double_value(&[]) * batch.len() as f64;
            }
            Ok(total / cells.len() as f64)
        })
    })
}

/// Every loss part (and `total`) of `model` on `cells`, summed over minibatches of
/// `batch_size`, without gradients and with the validation settings of the validation
/// loss. A part that is a sum over its batch's cells (SAILERX's reconstruction) sums to
/// its total over `cells`: divide by their number for a per-cell value. Errors: no
/// cells, a non-finite part.
pub fn evaluate<M: Trainable>(
    model: &M,
    input: &M::Input<'_>,
    cells: &[usize],
    batch_size: usize,
) -> Result<Vec<(String, f64)>> {
    if cells.is_empty() {
        return Err(ModelError::Input(
            "no cells to evaluate the model on".into(),
        ));
    }
    let ctx = StepContext::validation();
    let loader = Loader::new(model.sources(input)).map_err(|e| ModelError::Input(e.to_string()))?;
    let mut sums = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for chunk in cells.chunks(batch_size.max(1)) {
            let batch = loader.load(chunk.to_vec());
            let out = model.loss(input, &Minibatch::loaded(&batch), &ctx, false)?;
            accumulate(&mut sums, &out, 0)?;
        }
        Ok(())
    })?;
    Ok(sums.into_iter().map(|(k, s, _)| (k, s)).collect())
}

fn accumulate(sums: &mut Vec<(String, f64, usize)>, out: &LossOutput, epoch: usize) -> Result<()> {
    let parts = out
        .parts
        .iter()
        .map(|(k, t)| (*k, t))
        .chain(std::iter::once(("total", &out.total)));
    for (name, t) in parts {
        let v = t.double_value(&[]);
        if !v.is_finite() {
            return Err(ModelError::Diverged {
                epoch,
                part: name.to_string(),
                value: v,
            });
        }
        match sums.iter_mut().find(|(k, _, _)| k == name) {
            Some((_, s, n)) => {
                *s += v;
                *n += 1;
            }
            None => sums.push((name.to_string(), v, 1)),
        }
    }
    Ok(())
}

fn snapshot(vs: &nn::VarStore) -> Vec<(String, Tensor)> {
    vs.variables()
        .into_iter()
        .map(|(k, v)| (k, v.detach().copy()))
        .collect()
}

fn restore(vs: &nn::VarStore, weights: &[(String, Tensor)]) {
    let vars = vs.variables();
    tch::no_grad(|| {
        for (name, saved) in weights {
            if let Some(v) = vars.get(name) {
                let mut v = v.shallow_clone();
                v.copy_(saved);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Kind, nn::Module};

    /// Linear regression y = 3x - 1 as a Trainable: the loop must fit it.
    struct Line {
        vs: nn::VarStore,
        lin: nn::Linear,
    }

    impl Trainable for Line {
        type Input<'a> = (Tensor, Tensor);
        fn var_store(&self) -> &nn::VarStore {
            &self.vs
        }
        fn loss(
            &self,
            input: &(Tensor, Tensor),
            batch: &Minibatch<'_>,
            _: &StepContext,
            _: bool,
        ) -> Result<LossOutput> {
            let idx =
                Tensor::from_slice(&batch.cells.iter().map(|&c| c as i64).collect::<Vec<_>>());
            let pred = self.lin.forward(&input.0.index_select(0, &idx));
            let mse = (pred - input.1.index_select(0, &idx))
                .square()
                .mean(Kind::Float);
            Ok(LossOutput {
                total: mse.shallow_clone(),
                parts: vec![("mse", mse)],
            })
        }
    }

    fn line() -> (Line, (Tensor, Tensor)) {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = nn::linear(vs.root(), 1, 1, Default::default());
        let x = Tensor::linspace(-1.0, 1.0, 64, (Kind::Float, Device::Cpu)).view([64, 1]);
        let y = &x * 3.0 - 1.0;
        (Line { vs, lin }, (x, y))
    }

    #[test]
    fn evaluate_sums_each_part_over_the_batches_of_the_given_cells() {
        let (m, data) = line();
        // brute force: the batch mean squared error of the untrained line, per batch of 5
        let cells: Vec<usize> = (3..20).collect();
        let (w, b) = (m.lin.ws.double_value(&[0, 0]), {
            let bs = m.lin.bs.as_ref().unwrap();
            bs.double_value(&[0])
        });
        let mut want = 0.0;
        for chunk in cells.chunks(5) {
            let mut s = 0.0;
            for &c in chunk {
                let x = data.0.double_value(&[c as i64, 0]);
                let y = data.1.double_value(&[c as i64, 0]);
                s += (w * x + b - y).powi(2);
            }
            want += s / chunk.len() as f64;
        }
        let got = evaluate(&m, &data, &cells, 5).unwrap();
        let part = |k: &str| got.iter().find(|(n, _)| n == k).unwrap().1;
        assert!(
            (part("mse") - want).abs() < 1e-4 * want.max(1.0),
            "{got:?} vs {want}"
        );
        assert!((part("total") - want).abs() < 1e-4 * want.max(1.0));
        assert!(evaluate(&m, &data, &[], 5).is_err());
    }

    #[test]
    fn fits_a_line_and_records_every_epoch() {
        let (m, data) = line();
        let cells: Vec<usize> = (0..64).collect();
        let opts = TrainOptions {
            epochs: 200,
            warmup_epochs: 2,
            batch_size: 16,
            lr: 0.05,
            weight_decay: 0.0,
            lr_decay: 0.99,
            ..Default::default()
        };
        let mut seen = 0;
        let h = fit(&m, &data, &cells[..48], &cells[48..], &opts, 1, &mut |_| {
            seen += 1
        })
        .unwrap();
        assert_eq!(seen, 202);
        assert_eq!(h.epochs[0].phase, "warmup");
        assert_eq!(h.epochs[2].phase, "main");
        assert!(
            (h.epochs[3].lr - 0.05 * 0.99).abs() < 1e-12,
            "lr decays after main epochs only"
        );
        assert!(h.epochs.last().unwrap().val_loss.unwrap() < 1e-3);
        assert!((m.lin.ws.double_value(&[0, 0]) - 3.0).abs() < 0.05);
    }

    #[test]
    fn early_stopping_restores_the_best_weights() {
        let (m, data) = line();
        let cells: Vec<usize> = (0..64).collect();
        // a huge lr makes the validation loss bounce: patience must stop it and restore the best
        let opts = TrainOptions {
            epochs: 500,
            warmup_epochs: 0,
            batch_size: 8,
            lr: 0.9,
            weight_decay: 0.0,
            lr_decay: 1.0,
            patience: Some(5),
            ..Default::default()
        };
        let h = fit(&m, &data, &cells[..48], &cells[48..], &opts, 1, &mut |_| {}).unwrap();
        let best = h.best_epoch.unwrap();
        let best_val = h.epochs[best].val_loss.unwrap();
        assert!(h.epochs.iter().all(|e| e.val_loss.unwrap() >= best_val));
        if h.stopped_early {
            assert_eq!(h.epochs.len(), best + 6);
        }
        let ctx = StepContext::validation();
        let none = Loader::new([]).unwrap();
        let restored = validation_loss(&m, &data, &none, &cells[48..], 8, &ctx).unwrap();
        assert!(
            (restored - best_val).abs() < 1e-6 * best_val.max(1.0),
            "{restored} vs {best_val}"
        );
    }

    #[test]
    fn bad_options_are_rejected_by_name() {
        let (m, data) = line();
        let opts = TrainOptions {
            batch_size: 1,
            ..Default::default()
        };
        let err = fit(&m, &data, &[0, 1, 2], &[], &opts, 0, &mut |_| {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("batch_size"), "{err}");
    }

    /// Records which cells each step saw and whether it was an extra batch.
    struct Recorder {
        vs: nn::VarStore,
        w: Tensor,
        seen: std::cell::RefCell<Vec<(bool, bool, Vec<usize>)>>,
    }

    impl Trainable for Recorder {
        type Input<'a> = ();
        fn var_store(&self) -> &nn::VarStore {
            &self.vs
        }
        fn loss(
            &self,
            _: &(),
            batch: &Minibatch<'_>,
            ctx: &StepContext,
            train: bool,
        ) -> Result<LossOutput> {
            if train {
                self.seen
                    .borrow_mut()
                    .push((ctx.extra, ctx.warmup, batch.cells.to_vec()));
            }
            let loss = self.w.square().sum(Kind::Float);
            let mut parts = vec![("always", loss.shallow_clone())];
            if !ctx.extra {
                // a part only the main batches have: its mean must count only them
                parts.push(("main_only", loss.ones_like() * 2.0));
            }
            Ok(LossOutput { total: loss, parts })
        }
    }

    #[test]
    fn every_third_step_takes_an_extra_batch_and_parts_average_over_their_batches() {
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        let model = Recorder {
            vs,
            w,
            seen: Default::default(),
        };
        let main: Vec<usize> = (0..40).collect(); // 4 batches of 10
        let extra: Vec<usize> = (100..115).collect(); // 2 batches (10 + 5) per pass
        let opts = TrainOptions {
            epochs: 3,
            warmup_epochs: 1,
            batch_size: 10,
            lr: 1e-3,
            ..Default::default()
        };
        let h = fit_with_extra(
            &model,
            &(),
            &main,
            Some(ExtraCells {
                cells: &extra,
                every: 3,
            }),
            &[],
            &opts,
            5,
            &mut |_| {},
        )
        .unwrap();
        let seen = model.seen.borrow();
        // per epoch: main, main, extra, main, main, extra
        assert_eq!(seen.len(), 4 * 6);
        let pattern: Vec<bool> = seen.iter().map(|s| s.0).collect();
        assert_eq!(pattern[..6], [false, false, true, false, false, true]);
        assert_eq!(pattern[..6], pattern[6..12]);
        for (extra_flag, _, cells) in seen.iter() {
            let from_extra = cells.iter().all(|c| *c >= 100);
            let from_main = cells.iter().all(|c| *c < 100);
            assert!(
                if *extra_flag { from_extra } else { from_main },
                "{cells:?}"
            );
        }
        // each epoch sees every main cell once; the extra pool is used up every epoch
        for epoch in seen.chunks(6) {
            let mut m: Vec<usize> = epoch
                .iter()
                .filter(|s| !s.0)
                .flat_map(|s| s.2.clone())
                .collect();
            m.sort_unstable();
            assert_eq!(m, main);
            let mut e: Vec<usize> = epoch
                .iter()
                .filter(|s| s.0)
                .flat_map(|s| s.2.clone())
                .collect();
            e.sort_unstable();
            assert_eq!(e, extra);
        }
        assert!(seen[..6].iter().all(|s| s.1) && seen[6..].iter().all(|s| !s.1));
        // "main_only" (2.0 in every main batch) averages to 2.0, not 2.0 * 4 / 6
        let part = |name: &str| h.epochs[1].train.iter().find(|(k, _)| k == name).unwrap().1;
        assert_eq!(part("main_only"), 2.0);
        assert!(part("always") > 0.0);

        // the same main batches as a run without the extra pool (own generator)
        let vs = nn::VarStore::new(Device::Cpu);
        let w = vs.root().ones("w", &[1]);
        let plain = Recorder {
            vs,
            w,
            seen: Default::default(),
        };
        fit(&plain, &(), &main, &[], &opts, 5, &mut |_| {}).unwrap();
        let mains: Vec<Vec<usize>> = seen.iter().filter(|s| !s.0).map(|s| s.2.clone()).collect();
        let plain_batches: Vec<Vec<usize>> =
            plain.seen.borrow().iter().map(|s| s.2.clone()).collect();
        assert_eq!(mains, plain_batches);

        let bad = fit_with_extra(
            &model,
            &(),
            &main,
            Some(ExtraCells {
                cells: &extra,
                every: 1,
            }),
            &[],
            &opts,
            5,
            &mut |_| {},
        );
        assert!(
            format!("{:?}", bad.unwrap_err()).contains("fewer than 2 steps between extra batches")
        );
    }

    #[test]
    fn the_plateau_schedule_reduces_after_patience_bad_epochs() {
        let p = Plateau {
            factor: 0.1,
            patience: 2,
        };
        let mut st = PlateauState {
            best: f64::INFINITY,
            bad_epochs: 0,
        };
        // improvement, then 3 epochs without: the third bad one (> patience) reduces
        let losses = [1.0, 0.5, 0.5, 0.49999, 0.6, 0.4, 0.41];
        let reduced: Vec<bool> = losses.iter().map(|&l| st.step(l, &p)).collect();
        assert_eq!(reduced, [false, false, false, false, true, false, false]);
        let bad = TrainOptions {
            lr_plateau: Some(Plateau {
                factor: 1.5,
                patience: 1,
            }),
            ..TrainOptions::default()
        };
        assert!(format!("{:?}", bad.check().unwrap_err()).contains("lr_plateau.factor"));
    }
}
