//! The chromosome-split encoder and decoder: shapes, equality with an explicit loop of
//! independent per-chromosome layers, sparse == dense input, the contig merge rule and
//! conditioning on covariates.

mod common;

use std::collections::HashMap;

use common::{Rng, interleaved_peaks, random_csr};
use crossomics_encoders::{
    Activation, ChromGroups, ChromSplitConfig, ChromSplitDecoder, ChromSplitEncoder, Decoder,
    Encoder, LikelihoodDecoder, LikelihoodKind, Norm, OTHER_GROUP, SparseEncoder, SparseKernel,
};
use tch::nn::OptimizerConfig;
use tch::{Device, Kind, Tensor, nn};

fn close(a: &Tensor, b: &Tensor, tol: f64, what: &str) {
    assert_eq!(a.size(), b.size(), "{what}: shapes");
    let diff = (a - b).abs().max().double_value(&[]);
    assert!(diff <= tol, "{what}: max abs difference {diff}");
}

fn cols_tensor(cols: &[usize]) -> Tensor {
    Tensor::from_slice(&cols.iter().map(|&c| c as i64).collect::<Vec<_>>())
}

/// BatchNorm in training mode (batch statistics, biased variance, eps 1e-5).
fn bn_train(h: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
    let mean = h.mean_dim(0, true, Kind::Float);
    let var = h.var_dim(0, false, true);
    (h - mean) / (var + 1e-5).sqrt() * gamma + beta
}

fn prelu(h: &Tensor, slope: &Tensor) -> Tensor {
    h.clamp_min(0.0) + slope * h.clamp_max(0.0)
}

/// Uneven chromosomes plus small contigs that merge into `other` at 10 peaks.
fn toy_groups() -> ChromGroups {
    let names = interleaved_peaks(&[
        ("chr1", 60),
        ("chr2", 35),
        ("chrUn_KI270742v1", 4),
        ("chr3", 22),
        ("GL000220.1", 7),
        ("chrY", 2),
    ]);
    let groups = ChromGroups::from_peak_names(&names, 10).unwrap();
    assert_eq!(groups.widths(), vec![60, 35, 22, 13]);
    groups
}

#[test]
fn encoder_equals_a_loop_of_per_chromosome_layers() {
    check_encoder(&toy_groups());
    check_encoder(&even_groups());
}

fn check_encoder(groups: &ChromGroups) {
    tch::manual_seed(7);
    let n = groups.n_peaks();
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ChromSplitConfig {
        hidden: vec![12, 5],
        ..Default::default()
    };
    let mut enc = ChromSplitEncoder::new(&(vs.root() / "enc"), groups, 2, 3, &config).unwrap();
    // move BN and PReLU away from their identity-like initial values
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.contains("norm") || name.contains("prelu") {
                let _ = t.g_add_(&(t.rand_like() * 0.5));
            }
        }
    });
    let v: HashMap<String, Tensor> = vs.variables();
    let p = |name: &str| v[&format!("enc.{name}")].shallow_clone();

    let mut rng = Rng::new(3);
    let csr = random_csr(&mut rng, 16, n, 0.15, true, false);
    let x = csr.batch().to_dense(Device::Cpu);
    let cov = Tensor::randn([16, 2], (Kind::Float, Device::Cpu));

    let (h0, h1) = (12, 5);
    let peak_weight = enc.input_layer().peak_weight();
    let mut blocks = Vec::new();
    for (g, group) in groups.groups().iter().enumerate() {
        let g = g as i64;
        let cols = cols_tensor(&group.columns);
        let a = x
            .index_select(1, &cols)
            .matmul(&peak_weight.index_select(0, &cols))
            + p("block0.linear.bias").narrow(0, g * h0, h0);
        let a = bn_train(
            &a,
            &p("block0.norm.weight").narrow(0, g * h0, h0),
            &p("block0.norm.bias").narrow(0, g * h0, h0),
        );
        let a = prelu(&a, &p("block0.prelu.weight").get(g));
        let a = a.matmul(&p("block1.linear.weight").get(g)) + p("block1.linear.bias").get(g);
        let a = bn_train(
            &a,
            &p("block1.norm.weight").narrow(0, g * h1, h1),
            &p("block1.norm.bias").narrow(0, g * h1, h1),
        );
        blocks.push(prelu(&a, &p("block1.prelu.weight").get(g)));
    }
    let h = Tensor::cat(&[Tensor::cat(&blocks, 1), cov.shallow_clone()], 1);
    let mu = h.matmul(&p("mu.weight").tr()) + p("mu.bias");
    let logvar = h.matmul(&p("logvar.weight").tr()) + p("logvar.bias");

    let q = enc.encode(&x, Some(&cov), true);
    close(&q.mu, &mu, 1e-5, "dense mu");
    close(&q.logvar, &logvar, 1e-5, "dense logvar");
    for kernel in [
        SparseKernel::EmbeddingBag,
        SparseKernel::CooMm,
        SparseKernel::CsrMm,
    ] {
        enc.input_layer_mut().set_kernel(kernel);
        let q = enc.encode_csr(&csr.batch(), Some(&cov), true);
        close(&q.mu, &mu, 1e-5, &format!("{kernel:?} mu"));
        close(&q.logvar, &logvar, 1e-5, &format!("{kernel:?} logvar"));
    }
}

/// Three groups of 30 peaks (one chunk each, no `index_add` of chunks).
fn even_groups() -> ChromGroups {
    let names = interleaved_peaks(&[("chr1", 30), ("chr2", 30), ("chr3", 30)]);
    ChromGroups::from_peak_names(&names, 10).unwrap()
}

#[test]
fn decoder_equals_a_loop_of_per_chromosome_layers() {
    check_decoder(&toy_groups());
    check_decoder(&even_groups());
}

fn check_decoder(groups: &ChromGroups) {
    tch::manual_seed(8);
    let n = groups.n_peaks() as i64;
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ChromSplitConfig {
        hidden: vec![9, 4],
        ..Default::default()
    };
    let dec = ChromSplitDecoder::new(&(vs.root() / "dec"), groups, 3, 2, &config).unwrap();
    tch::no_grad(|| {
        for (name, mut t) in vs.variables() {
            if name.contains("norm") || name.contains("prelu") || name.contains("bias") {
                let _ = t.g_add_(&(t.rand_like() * 0.5));
            }
        }
    });
    let v: HashMap<String, Tensor> = vs.variables();
    let p = |name: &str| v[&format!("dec.{name}")].shallow_clone();
    let z = Tensor::randn([11, 3], (Kind::Float, Device::Cpu));
    let cov = Tensor::randn([11, 2], (Kind::Float, Device::Cpu));

    let zc = Tensor::cat(&[&z, &cov], 1);
    let h = zc.matmul(&p("input.layer0.linear.weight").tr()) + p("input.layer0.linear.bias");
    let h = bn_train(
        &h,
        &p("input.layer0.norm.weight"),
        &p("input.layer0.norm.bias"),
    );
    let h = prelu(&h, &p("input.layer0.prelu.weight"));
    let (h_last, h_first) = (4, 9);
    let mut want = Tensor::zeros([11, n], (Kind::Float, Device::Cpu));
    for (g, group) in groups.groups().iter().enumerate() {
        let g = g as i64;
        let a = h.narrow(1, g * h_last, h_last);
        let a = a.matmul(&p("block1.linear.weight").get(g)) + p("block1.linear.bias").get(g);
        let a = bn_train(
            &a,
            &p("block1.norm.weight").narrow(0, g * h_first, h_first),
            &p("block1.norm.bias").narrow(0, g * h_first, h_first),
        );
        let a = prelu(&a, &p("block1.prelu.weight").get(g));
        let cols = cols_tensor(&group.columns);
        let out = a.matmul(&dec.output_weight().0.index_select(0, &cols).tr())
            + p("out.bias").index_select(0, &cols);
        want = want.index_copy(1, &cols, &out);
    }
    let got = dec.decode(&z, Some(&cov), true);
    close(&got, &want, 1e-5, "decoder logits");
    let lik = dec.decode_likelihood(&z, Some(&cov), None, true);
    assert_eq!(lik.kind(), LikelihoodKind::Bernoulli);
    close(
        lik.param("logits").unwrap(),
        &want,
        1e-5,
        "likelihood logits",
    );
}

#[test]
fn shapes_with_the_published_widths() {
    tch::manual_seed(1);
    let groups = toy_groups();
    let n = groups.n_peaks();
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ChromSplitConfig::default();
    assert_eq!(config.hidden, vec![64, 32]);
    let enc = ChromSplitEncoder::new(&(vs.root() / "enc"), &groups, 0, 50, &config).unwrap();
    let dec = ChromSplitDecoder::new(&(vs.root() / "dec"), &groups, 50, 3, &config).unwrap();
    let mut rng = Rng::new(1);
    let csr = random_csr(&mut rng, 20, n, 0.1, true, false);
    let q = enc.encode_csr(&csr.batch(), None, true);
    assert_eq!(q.mu.size(), vec![20, 50]);
    assert_eq!(q.logvar.size(), vec![20, 50]);
    assert_eq!(enc.latent_dim(), 50);
    let cov = Tensor::randn([20, 3], (Kind::Float, Device::Cpu));
    assert_eq!(
        dec.decode(&q.sample(true), Some(&cov), true).size(),
        vec![20, n as i64]
    );
    assert_eq!(enc.input_layer().peak_weight().size(), vec![n as i64, 64]);
    assert_eq!(dec.output_weight().0.size(), vec![n as i64, 64]);
    // eval mode: sparse and dense input give the same means
    let qd = enc.encode(&csr.batch().to_dense(Device::Cpu), None, false);
    let qs = enc.encode_csr(&csr.batch(), None, false);
    close(&qd.mu, &qs.mu, 1e-5, "eval mu");
    // parameter shapes
    let v = vs.variables();
    assert_eq!(v["enc.block1.linear.weight"].size(), vec![4, 64, 32]);
    assert_eq!(v["enc.block1.prelu.weight"].size(), vec![4]);
    assert_eq!(v["enc.mu.weight"].size(), vec![50, 4 * 32]);
    assert_eq!(v["dec.input.layer0.linear.weight"].size(), vec![4 * 32, 53]);
    assert_eq!(v["dec.block1.linear.weight"].size(), vec![4, 32, 64]);
    assert_eq!(v["dec.out.bias"].size(), vec![n as i64]);
}

#[test]
fn other_norms_activations_and_one_layer() {
    let groups = toy_groups();
    let n = groups.n_peaks();
    let mut rng = Rng::new(2);
    let csr = random_csr(&mut rng, 8, n, 0.2, true, false);
    let x = csr.batch().to_dense(Device::Cpu);
    for (i, (norm, activation, hidden)) in [
        (Norm::Layer, Activation::Gelu, vec![6, 3]),
        (Norm::None, Activation::LeakyRelu, vec![5]),
        (Norm::Batch, Activation::Relu, vec![8, 4, 2]),
        (Norm::Layer, Activation::Prelu, vec![4, 4]),
    ]
    .into_iter()
    .enumerate()
    {
        let vs = nn::VarStore::new(Device::Cpu);
        let config = ChromSplitConfig {
            hidden,
            norm,
            activation,
            dropout: 0.1,
            ..Default::default()
        };
        let enc = ChromSplitEncoder::new(&vs.root(), &groups, 0, 2, &config).unwrap();
        let dec = ChromSplitDecoder::new(&(vs.root() / "d"), &groups, 2, 0, &config).unwrap();
        let a = enc.encode(&x, None, false);
        let b = enc.encode_csr(&csr.batch(), None, false);
        close(&a.mu, &b.mu, 1e-5, &format!("config {i}"));
        assert_eq!(dec.decode(&a.mu, None, true).size(), vec![8, n as i64]);
    }
}

#[test]
fn scicar_contigs_merge_into_other() {
    // the 47 chromosome names of scicar_a549's peaks with their peak counts
    let counts: Vec<(String, usize)> = [
        ("1", 4385),
        ("2", 4376),
        ("17", 3401),
        ("19", 2954),
        ("12", 2931),
        ("7", 2741),
        ("11", 2684),
        ("5", 2651),
        ("3", 2587),
        ("10", 2440),
        ("8", 2396),
        ("9", 2269),
        ("6", 2162),
        ("16", 2131),
        ("15", 2024),
        ("14", 1682),
        ("20", 1647),
        ("4", 1622),
        ("X", 1341),
        ("hs37d5", 1283),
        ("22", 939),
        ("13", 748),
        ("18", 737),
        ("21", 420),
        ("Y", 52),
        ("GL000220.1", 41),
        ("GL000225.1", 18),
        ("GL000195.1", 17),
        ("GL000205.1", 15),
        ("GL000214.1", 13),
        ("GL000224.1", 6),
        ("GL000219.1", 6),
        ("GL000212.1", 6),
        ("GL000204.1", 5),
        ("GL000194.1", 5),
        ("GL000228.1", 4),
        ("GL000218.1", 4),
        ("GL000202.1", 3),
        ("GL000199.1", 3),
        ("GL000192.1", 3),
        ("GL000237.1", 2),
        ("GL000208.1", 2),
        ("GL000227.1", 1),
        ("GL000221.1", 1),
        ("GL000216.1", 1),
        ("GL000193.1", 1),
        ("GL000191.1", 1),
    ]
    .iter()
    .map(|&(c, n)| (c.to_string(), n))
    .collect();
    assert_eq!(counts.len(), 47);
    let names: Vec<String> = counts
        .iter()
        .enumerate()
        .flat_map(|(i, (c, n))| {
            (0..*n)
                .map(move |k| format!("{c}-{}-{}", i * 100_000 + k * 10, i * 100_000 + k * 10 + 5))
        })
        .collect();
    assert_eq!(names.len(), 52761);
    let config = ChromSplitConfig::default();
    assert_eq!(config.min_peaks_per_group, 100);
    let groups = config.groups(&names).unwrap();
    assert_eq!(groups.len(), 25, "22 autosomes, X, hs37d5, other");
    let other = groups.groups().last().unwrap();
    assert_eq!(other.name, OTHER_GROUP);
    assert_eq!(
        other.columns.len(),
        52 + 41 + 18 + 17 + 15 + 13 + 6 * 3 + 5 * 2 + 4 * 2 + 3 * 3 + 2 * 2 + 5
    );
    assert!(groups.groups()[..24].iter().all(|g| g.columns.len() >= 100));
    assert_eq!(groups.n_peaks(), 52761);
}

#[test]
fn covariates_change_the_decoded_output() {
    tch::manual_seed(4);
    let groups = toy_groups();
    let vs = nn::VarStore::new(Device::Cpu);
    let dec =
        ChromSplitDecoder::new(&vs.root(), &groups, 4, 3, &ChromSplitConfig::default()).unwrap();
    let z = Tensor::randn([6, 4], (Kind::Float, Device::Cpu));
    // standardized log depth + a two-batch one-hot
    let depth = Tensor::randn([6, 1], (Kind::Float, Device::Cpu));
    let batch_a = Tensor::from_slice(&[1f32, 0.])
        .view([1, 2])
        .expand([6, 2], false);
    let batch_b = Tensor::from_slice(&[0f32, 1.])
        .view([1, 2])
        .expand([6, 2], false);
    let ca = Tensor::cat(&[&depth, &batch_a], 1);
    let cb = Tensor::cat(&[&depth, &batch_b], 1);
    let cd = Tensor::cat(&[&(&depth + 1.0), &batch_a], 1);
    let a = dec.decode(&z, Some(&ca), false);
    let b = dec.decode(&z, Some(&cb), false);
    let d = dec.decode(&z, Some(&cd), false);
    assert!(
        (&a - &b).abs().max().double_value(&[]) > 1e-3,
        "batch changes the output"
    );
    assert!(
        (&a - &d).abs().max().double_value(&[]) > 1e-3,
        "depth changes the output"
    );
    close(
        &a,
        &dec.decode(&z, Some(&ca), false),
        0.0,
        "deterministic in eval mode",
    );
}

#[test]
fn sparse_encoder_trains() {
    tch::manual_seed(5);
    let groups = toy_groups();
    let n = groups.n_peaks();
    let vs = nn::VarStore::new(Device::Cpu);
    let config = ChromSplitConfig::default();
    let enc = ChromSplitEncoder::new(&(vs.root() / "enc"), &groups, 0, 4, &config).unwrap();
    let dec = ChromSplitDecoder::new(&(vs.root() / "dec"), &groups, 4, 0, &config).unwrap();
    let mut opt = nn::Adam::default().build(&vs, 1e-2).unwrap();
    let mut rng = Rng::new(9);
    let csr = random_csr(&mut rng, 64, n, 0.1, true, false);
    let x = csr.batch().to_dense(Device::Cpu);
    let mut losses = Vec::new();
    for _ in 0..30 {
        let q = enc.encode_csr(&csr.batch(), None, true);
        let logits = dec.decode(&q.mu, None, true);
        let loss =
            logits.binary_cross_entropy_with_logits::<Tensor>(&x, None, None, tch::Reduction::Mean);
        opt.backward_step(&loss);
        losses.push(loss.double_value(&[]));
    }
    assert!(losses[29] < 0.8 * losses[0], "{losses:?}");
}

#[test]
fn config_defaults_and_errors() {
    let c: ChromSplitConfig = toml::from_str("").unwrap();
    assert_eq!(c, ChromSplitConfig::default());
    assert_eq!(c.sparse_kernel, SparseKernel::EmbeddingBag);
    let c: ChromSplitConfig =
        toml::from_str("hidden = [32, 16]\nsparse_kernel = \"csr_mm\"\nmin_peaks_per_group = 5")
            .unwrap();
    assert_eq!(c.hidden, vec![32, 16]);
    let err = toml::from_str::<ChromSplitConfig>("hiden = [3]")
        .unwrap_err()
        .to_string();
    assert!(err.contains("hiden"), "{err}");
    let bad = ChromSplitConfig {
        hidden: vec![],
        ..Default::default()
    };
    assert!(bad.check().unwrap_err().to_string().contains("hidden"));
    let bad = ChromSplitConfig {
        hidden: vec![4, 0],
        ..Default::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let err = ChromSplitEncoder::new(&vs.root(), &toy_groups(), 0, 2, &bad).unwrap_err();
    assert!(err.to_string().contains("hidden"), "{err}");
    let bad = ChromSplitConfig {
        dropout: 1.0,
        ..Default::default()
    };
    assert!(bad.check().unwrap_err().to_string().contains("dropout"));
}
