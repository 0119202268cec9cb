//! SAILERX's training plan (scvi-tools' split of module and plan): each minibatch goes
//! through [`Sailerx::inference`] (encoders: the latent distribution and a sample),
//! [`Sailerx::generative`] (decoders: the reconstruction's parameters), then the loss
//! terms; the KL annealing is declared by [`Trainable::kl_schedule`] and applied by the
//! training loop. The definitions are in `docs/models.md` (section "SAILERX").

use crossomics_data::loader::{DenseSource, RowSource, Source};
use crossomics_encoders::{CsrBatch, Encoder, Gaussian, Likelihood, LikelihoodDecoder};
use crossomics_losses::{KlSchedule, kl, recon};
use tch::{Tensor, nn};

use super::module::RnaVae;
use super::{KlAnnealing, Sailerx, SailerxInput};
use crate::data::csr_batch;
use crate::error::Result;
use crate::tensor;
use crate::train::{LossOutput, Minibatch, StepContext, Trainable};

/// The loader sources of a minibatch, in [`Trainable::sources`] order.
const ATAC: usize = 0;
const RNA_PCA: usize = 1;
const COVARIATES: usize = 2;
const WEIGHTS: usize = 3;
/// The symmetric variant's RNA VAE.
const RNA_VALUES: usize = 4;
const RNA_COUNTS: usize = 5;
const RNA_COVARIATES: usize = 6;

/// Source `k`'s rows of the minibatch, as loaded ahead by the training loop, else read
/// from `source` (a minibatch without loaded rows).
fn rows(batch: &Minibatch<'_>, k: usize, source: &dyn RowSource, device: tch::Device) -> Tensor {
    match batch.dense(k) {
        Some(rows) => tensor::from_dense_rows(rows, device),
        None => tensor::rows_of(source, batch.cells, device),
    }
}

/// The encoder's output for a minibatch.
struct Inference {
    q: Gaussian,
    z: Tensor,
}

/// One minibatch through the RNA VAE.
struct RnaPass {
    q: Gaussian,
    counts: Tensor,
    /// `-sum log NB(counts; mu, theta)` over the batch.
    nb_sum: Tensor,
}

impl Sailerx {
    /// The ATAC encoder on the rows `x` (or their CSR form): `q(z|x)` and a sample
    /// (the published code's sampling quirk when `faithful`).
    fn inference(&self, x: &Tensor, csr: Option<&CsrBatch<'_>>, train: bool) -> Inference {
        let q = self.encoder.encode(x, csr, train);
        let z = if self.config.faithful {
            q.sample_published(train)
        } else {
            q.sample(train)
        };
        Inference { q, z }
    }

    /// The ATAC decoder's peak logits at `z` with confounders `c`.
    fn generative(&self, z: &Tensor, c: &Tensor, train: bool) -> Tensor {
        self.decoder.decode(z, Some(c), train)
    }

    /// The RNA VAE (symmetric variant): inference, generative pass and its NB term.
    fn rna_pass(
        &self,
        vae: &RnaVae,
        input: &SailerxInput<'_>,
        batch: &Minibatch<'_>,
        train: bool,
    ) -> Result<RnaPass> {
        let device = self.vs.device();
        let rna = self.rna_input(input)?;
        let values = rows(batch, RNA_VALUES, rna.values, device);
        let counts = rows(batch, RNA_COUNTS, rna.counts, device);
        let covariates = rows(
            batch,
            RNA_COVARIATES,
            &DenseSource::from(rna.covariates),
            device,
        );
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

    /// The alignment term between target rows `p` and latent means `mu`.
    fn align(
        &self,
        p: &Tensor,
        mu: &Tensor,
        weights: Option<&Tensor>,
        mean: bool,
    ) -> Option<Tensor> {
        self.aligner.as_ref().map(|a| a.align(p, mu, weights, mean))
    }
}

impl Trainable for Sailerx {
    type Input<'a> = SailerxInput<'a>;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Every per-cell input, loaded ahead by the training loop: the binarized peaks (the
    /// reconstruction target; as CSR rows too for a sparse first layer), the RNA PCA, the
    /// decoder's confounders, the cell weights; the symmetric variant adds the RNA values,
    /// counts and confounders.
    fn sources<'a>(&self, input: &Self::Input<'a>) -> Vec<Source<'a>> {
        let mut sources = vec![
            Source::new(input.atac).with_sparse(self.sparse_input()),
            Source::dense(input.rna_pca),
            Source::dense(input.covariates),
            Source::new(DenseSource::column(input.cell_weights)),
        ];
        if let (Some(_), Some(rna)) = (&self.rna, &input.rna) {
            sources.push(Source::new(rna.values));
            sources.push(Source::new(rna.counts));
            sources.push(Source::dense(rna.covariates));
        }
        sources
    }

    /// The configured schedule over main-phase steps (`kl_schedule`, `kl_period_epochs`).
    fn kl_schedule(&self, steps_per_epoch: u64) -> Option<KlSchedule> {
        let period_steps = self.config.kl_period_epochs * steps_per_epoch;
        Some(match self.config.kl_schedule {
            KlAnnealing::Cyclical => KlSchedule::Cyclical { period_steps },
            KlAnnealing::Linear => KlSchedule::Linear {
                warmup_steps: period_steps,
                weight: 1.0,
            },
            KlAnnealing::Constant => KlSchedule::Constant { weight: 1.0 },
        })
    }

    fn loss(
        &self,
        input: &SailerxInput<'_>,
        batch: &Minibatch<'_>,
        ctx: &StepContext,
        train: bool,
    ) -> Result<LossOutput> {
        let device = self.vs.device();
        let x = rows(batch, ATAC, input.atac, device);
        let c = rows(
            batch,
            COVARIATES,
            &DenseSource::from(input.covariates),
            device,
        );
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
            None => Some(rows(
                batch,
                RNA_PCA,
                &DenseSource::from(input.rna_pca),
                device,
            )),
        };
        let csr = csr_batch(batch, ATAC)?;
        let Inference { q, z } = self.inference(&x, csr.as_ref(), train);
        let logits = self.generative(&z, &c, train);

        if ctx.warmup {
            let bce = recon::bernoulli_mean(&logits, &x);
            let mut parts = vec![("recon", bce.shallow_clone())];
            let mut total = bce;
            if let Some(r) = &rna {
                let nb = &r.nb_sum / r.counts.numel() as f64;
                total += &nb;
                parts.push(("rna_recon", nb));
            }
            if let Some(align) = p.and_then(|p| self.align(&p, &q.mu, None, true)) {
                total += &align * gamma;
                parts.push(("align", align));
            }
            return Ok(LossOutput { total, parts });
        }
        let w_kl = ctx.kl_weight;
        let weights = self.config.cell_weights.then(|| {
            rows(
                batch,
                WEIGHTS,
                &DenseSource::column(input.cell_weights),
                device,
            )
            .view([-1])
        });
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
        if let Some(align) = p.and_then(|p| self.align(&p, &q.mu, weights.as_ref(), false)) {
            total += &align * gamma;
            parts.push(("align", align));
        }
        Ok(LossOutput { total, parts })
    }
}
