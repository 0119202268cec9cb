use super::*;
use crate::train::{Minibatch, StepContext, TrainOptions, Trainable, fit};
use crossomics_data::Csr;
use crossomics_data::loader::Loader;
use crossomics_encoders::ChromGroups;
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::Array2;
use tch::Device;

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

/// Trains `model` on the first `n_train` of `n` cells (the rest validate) for `epochs`
/// main epochs after `warmup` ones, and checks that the validation loss falls from the
/// first main epoch to the last.
fn train_and_check(
    model: &Sailerx,
    input: &SailerxInput<'_>,
    n: usize,
    n_train: usize,
    (warmup, epochs, batch_size): (usize, usize, usize),
) -> crate::train::TrainHistory {
    let cells: Vec<usize> = (0..n).collect();
    let opts = TrainOptions {
        epochs,
        warmup_epochs: warmup,
        batch_size,
        lr: 1e-2,
        ..Default::default()
    };
    let h = fit(
        model,
        input,
        &cells[..n_train],
        &cells[n_train..],
        &opts,
        0,
        &mut |_| {},
    )
    .unwrap();
    let first = h.epochs[warmup].val_loss.unwrap();
    let last = h.epochs.last().unwrap().val_loss.unwrap();
    assert!(last < first, "validation loss {first} -> {last}");
    h
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
    train_and_check(&model, &input, 64, 48, (3, 40, 32));
    let cells: Vec<usize> = (0..64).collect();
    let z = model.embed_input(&input, &cells).unwrap();
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
        assert_eq!(
            projection,
            matches!(alignment, Alignment::Contrastive | Alignment::Hard),
            "{alignment:?}"
        );
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
    assert!(err.to_string().contains("temperature"), "{err}");
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
    let ctx = StepContext::validation();
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
    train_and_check(&model, &input, 48, 36, (2, 30, 16));
    let all: Vec<usize> = (0..48).collect();
    assert_eq!(model.embed_input(&input, &all).unwrap().dim(), (48, 4));
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
    assert!(err.to_string().contains("chrom_split"), "{err}");
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
        // what the training loop sets: the schedule's weight, 1 for validation
        let schedule = model.kl_schedule(5).unwrap();
        if validation {
            1.0
        } else {
            schedule.weight(step)
        }
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
    assert!(err.to_string().contains("symmetric"), "{err}");
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
    let z = model.embed_input(&input, &all).unwrap();
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
    let err = model.embed_input(&input, &all).unwrap_err().to_string();
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
    a.save_weights(&path).unwrap();
    let mut b = Sailerx::new(cfg, 10, 1, 3, Device::Cpu).unwrap();
    let cells: Vec<usize> = (0..16).collect();
    assert_ne!(
        a.embed_input(&input, &cells).unwrap(),
        b.embed_input(&input, &cells).unwrap()
    );
    b.load_weights(&path).unwrap();
    assert_eq!(
        a.embed_input(&input, &cells).unwrap(),
        b.embed_input(&input, &cells).unwrap()
    );
    let missing = b
        .load_weights(&dir.path().join("none.safetensors"))
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
    assert!(err.contains("alignment_weight"), "{err}");
}
