//! Training with the background minibatch loader is bit-identical to a model that reads
//! its CSR rows itself. Its own test binary with one test: torch's global generator is
//! shared by the threads of a test process, so exact comparisons need it alone.

use crossomics_data::Csr;
use crossomics_models::sailerx::{Sailerx, SailerxConfig, SailerxInput};
use crossomics_models::train::{LossOutput, Minibatch, StepContext, fit};
use crossomics_models::{TrainHistory, TrainOptions, Trainable};
use nalgebra_sparse::CooMatrix;
use ndarray::Array2;
use tch::{Device, nn};

/// SAILERX without prefetching: `loss` gets bare cells and densifies them itself.
struct Unloaded(Sailerx);

impl Trainable for Unloaded {
    type Input<'a> = SailerxInput<'a>;
    fn var_store(&self) -> &nn::VarStore {
        self.0.var_store()
    }
    fn kl_schedule(&self, steps_per_epoch: u64) -> Option<crossomics_losses::KlSchedule> {
        self.0.kl_schedule(steps_per_epoch)
    }
    fn loss(
        &self,
        input: &SailerxInput<'_>,
        batch: &Minibatch<'_>,
        ctx: &StepContext,
        train: bool,
    ) -> crossomics_models::error::Result<LossOutput> {
        assert!(batch.dense(0).is_none(), "nothing is prefetched");
        self.0.loss(input, &Minibatch::new(batch.cells), ctx, train)
    }
}

type Losses = Vec<(Vec<(String, f64)>, Option<f64>)>;

fn losses(h: &TrainHistory) -> Losses {
    h.epochs
        .iter()
        .map(|e| (e.train.clone(), e.val_loss))
        .collect()
}

#[test]
fn background_loading_is_bit_identical_to_reading_the_csr() {
    let (n, peaks) = (70, 30);
    let mut coo = CooMatrix::new(n, peaks);
    for i in 0..n {
        for j in 0..peaks {
            if (i * 7 + j * 3) % 5 < 2 + i % 2 {
                coo.push(i, j, 1.0);
            }
        }
    }
    let atac = Csr::from(&coo);
    let pca = Array2::from_shape_fn((n, 3), |(i, k)| ((i * 3 + k) % 7) as f32 * 0.3);
    let cov = Array2::from_shape_fn((n, 1), |(i, _)| (i % 3) as f32 - 1.0);
    let w: Vec<f32> = (0..n).map(|i| 0.5 + (i % 4) as f32 * 0.25).collect();
    let input = SailerxInput {
        atac: &atac,
        rna_pca: pca.view(),
        covariates: cov.view(),
        cell_weights: &w,
        rna: None,
    };
    let cells: Vec<usize> = (0..n).collect();
    // 57 training cells in batches of 8: the last batch of one cell is merged
    let opts = TrainOptions {
        epochs: 8,
        warmup_epochs: 2,
        batch_size: 8,
        lr: 1e-2,
        device: crossomics_models::DeviceChoice::Cpu,
        ..Default::default()
    };
    let cfg = SailerxConfig {
        latent_dim: 3,
        kl_period_epochs: 4,
        ..Default::default()
    };
    let (train, val) = cells.split_at(57);

    tch::manual_seed(5);
    let a = Sailerx::new(cfg.clone(), peaks, 1, 3, Device::Cpu).unwrap();
    let ha = fit(&a, &input, train, val, &opts, 3, &mut |_| {}).unwrap();
    tch::manual_seed(5);
    let b = Unloaded(Sailerx::new(cfg, peaks, 1, 3, Device::Cpu).unwrap());
    let hb = fit(&b, &input, train, val, &opts, 3, &mut |_| {}).unwrap();

    assert_eq!(ha.epochs.len(), 10);
    assert_eq!(losses(&ha), losses(&hb));
    assert_eq!(
        a.embed_input(&input, &cells).unwrap(),
        b.0.embed_input(&input, &cells).unwrap()
    );
}
