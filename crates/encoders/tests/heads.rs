//! Likelihood heads produce valid parameters, scaled and conditioned as documented.

use crossomics_encoders::{
    Decoder, Dispersion, HeadConfig, HeadDecoder, Likelihood, LikelihoodDecoder, LikelihoodHead,
    LikelihoodKind, MeanLink, MlpConfig, MlpDecoder,
};
use tch::{Device, Kind, Tensor, nn};

fn min(t: &Tensor) -> f64 {
    t.min().double_value(&[])
}

fn max(t: &Tensor) -> f64 {
    t.max().double_value(&[])
}

fn finite(t: &Tensor) -> bool {
    t.isfinite().all().int64_value(&[]) == 1
}

const KINDS: [LikelihoodKind; 5] = [
    LikelihoodKind::Bernoulli,
    LikelihoodKind::Nb,
    LikelihoodKind::Zinb,
    LikelihoodKind::Poisson,
    LikelihoodKind::Gaussian,
];

#[test]
fn every_head_gives_valid_parameters() {
    tch::manual_seed(0);
    let (b, width, genes) = (9, 6, 11);
    // large hidden values push the raw outputs into the clipping ranges
    let h = Tensor::randn([b, width], (Kind::Float, Device::Cpu)) * 30.0;
    let library = Tensor::from_slice(&[100f32, 2000., 5., 1., 30., 400., 8., 60., 900.]);
    for kind in KINDS {
        for mean in [MeanLink::Softmax, MeanLink::Exp] {
            for dispersion in [Dispersion::Feature, Dispersion::Cell] {
                let vs = nn::VarStore::new(Device::Cpu);
                let config = HeadConfig {
                    likelihood: kind,
                    mean,
                    dispersion,
                    ..Default::default()
                };
                let head = LikelihoodHead::new(&vs.root(), width, genes, &config).unwrap();
                let out = head.forward(&h, Some(&library));
                let what = format!("{kind:?} {mean:?} {dispersion:?}");
                assert_eq!(out.kind(), kind, "{what}");
                for (name, t) in out.params() {
                    assert_eq!(t.size(), vec![b, genes], "{what} {name}");
                    assert!(finite(t), "{what} {name}");
                    assert!(out.param(name).is_some());
                }
                let p = out.mean();
                assert_eq!(p.size(), vec![b, genes]);
                match &out {
                    Likelihood::Bernoulli { logits } => {
                        let prob = logits.sigmoid();
                        assert!(min(&p) >= 0.0 && max(&p) <= 1.0, "{what}");
                        assert!(prob.allclose(&p, 0.0, 0.0, false));
                    }
                    Likelihood::Nb { mu, theta } | Likelihood::Zinb { mu, theta, .. } => {
                        // exp is clipped at 1e-5; a softmax may underflow to 0 (the
                        // losses add eps inside their logarithms)
                        let floor = if mean == MeanLink::Exp {
                            1e-5 * 0.99
                        } else {
                            0.0
                        };
                        assert!(min(mu) >= floor, "{what} mu");
                        assert!(min(theta) >= 0.999e-4 && max(theta) <= 1e4, "{what} theta");
                        assert!(min(theta) > 0.0);
                        if let Likelihood::Zinb { pi_logits, .. } = &out {
                            let pi = pi_logits.sigmoid();
                            assert!(min(&pi) >= 0.0 && max(&pi) <= 1.0);
                            assert!(max(&(&p - mu)) <= 0.0, "zero inflation lowers the mean");
                        }
                    }
                    Likelihood::Poisson { rate } => assert!(min(rate) >= 0.0, "{what}"),
                    Likelihood::Gaussian { logvar, .. } => {
                        assert!(min(logvar) >= -15.0 && max(logvar) <= 15.0, "{what}");
                    }
                }
            }
        }
    }
}

#[test]
fn probabilities_are_strictly_inside_the_unit_interval_for_moderate_logits() {
    let vs = nn::VarStore::new(Device::Cpu);
    let head =
        LikelihoodHead::new(&vs.root(), 4, 7, &HeadConfig::of(LikelihoodKind::Zinb)).unwrap();
    let out = head.forward(&Tensor::randn([5, 4], (Kind::Float, Device::Cpu)), None);
    let pi = out.param("pi_logits").unwrap().sigmoid();
    assert!(min(&pi) > 0.0 && max(&pi) < 1.0);
    let theta = out.param("theta").unwrap();
    assert!(min(theta) > 0.0);
}

#[test]
fn softmax_means_sum_to_the_library_size_and_exp_means_scale() {
    tch::manual_seed(1);
    let vs = nn::VarStore::new(Device::Cpu);
    let h = Tensor::randn([4, 5], (Kind::Float, Device::Cpu));
    let library = Tensor::from_slice(&[10f32, 200., 3000., 1.]);
    let config = HeadConfig {
        likelihood: LikelihoodKind::Nb,
        mean: MeanLink::Softmax,
        dispersion: Dispersion::Feature,
        ..Default::default()
    };
    let head = LikelihoodHead::new(&(vs.root() / "a"), 5, 8, &config).unwrap();
    let out = head.forward(&h, Some(&library.view([4, 1])));
    let sums = out
        .param("mu")
        .unwrap()
        .sum_dim_intlist(1, false, Kind::Float);
    assert!(sums.allclose(&library, 1e-5, 1e-3, false), "{sums:?}");
    // a per-feature theta is shared by every cell, softplus(0.5413) = 1 at the start
    let theta = out.param("theta").unwrap();
    assert!(theta.allclose(
        &theta.get(0).unsqueeze(0).expand([4, 8], false),
        0.0,
        0.0,
        false
    ));
    assert!((theta.mean(Kind::Float).double_value(&[]) - 1.0).abs() < 1e-3);

    let head = LikelihoodHead::new(
        &(vs.root() / "b"),
        5,
        8,
        &HeadConfig::of(LikelihoodKind::Poisson),
    )
    .unwrap();
    let one = head.forward(&h, None);
    let scaled = head.forward(&h, Some(&library));
    let want = one.param("rate").unwrap() * library.view([4, 1]);
    assert!(
        scaled
            .param("rate")
            .unwrap()
            .allclose(&want, 1e-5, 1e-5, false)
    );
}

#[test]
fn head_parameters_get_gradients() {
    let vs = nn::VarStore::new(Device::Cpu);
    let config = HeadConfig {
        likelihood: LikelihoodKind::Zinb,
        dispersion: Dispersion::Feature,
        ..Default::default()
    };
    let head = LikelihoodHead::new(&vs.root(), 3, 4, &config).unwrap();
    let out = head.forward(&Tensor::randn([6, 3], (Kind::Float, Device::Cpu)), None);
    let total = out
        .params()
        .iter()
        .map(|(_, t)| t.sum(Kind::Float))
        .fold(Tensor::from(0f32), |a, b| a + b);
    total.backward();
    for (name, t) in vs.variables() {
        assert!(
            t.grad().defined() && t.grad().abs().sum(Kind::Float).double_value(&[]) > 0.0,
            "{name} has no gradient"
        );
    }
}

#[test]
fn head_config_from_toml_and_errors() {
    let c: HeadConfig =
        toml::from_str("likelihood = \"zinb\"\nmean = \"softmax\"\ndispersion = \"feature\"")
            .unwrap();
    assert_eq!(c.likelihood, LikelihoodKind::Zinb);
    assert_eq!(c.theta_max, 1e4);
    assert!(toml::from_str::<HeadConfig>("likelihod = \"nb\"").is_err());
    let bad = HeadConfig {
        theta_min: 0.0,
        ..Default::default()
    };
    let vs = nn::VarStore::new(Device::Cpu);
    let err = LikelihoodHead::new(&vs.root(), 2, 2, &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("theta_min"), "{err}");
}

#[test]
fn decoders_conditioned_on_covariates_change_with_them() {
    tch::manual_seed(2);
    let vs = nn::VarStore::new(Device::Cpu);
    let body = MlpConfig {
        hidden: vec![16],
        ..Default::default()
    };
    let dec =
        HeadDecoder::new(&(vs.root() / "nb"), 3, 2, 10, &body, &HeadConfig::default()).unwrap();
    let mlp = MlpDecoder::new(&(vs.root() / "mlp"), 3, 2, 10, &body);
    let z = Tensor::randn([5, 3], (Kind::Float, Device::Cpu));
    let c1 = Tensor::randn([5, 2], (Kind::Float, Device::Cpu));
    let c2 = &c1 + Tensor::from_slice(&[0.5f32, 0.0]);
    let sf = Tensor::ones([5], (Kind::Float, Device::Cpu));
    for (name, a, b) in [
        (
            "head decoder",
            dec.decode_likelihood(&z, Some(&c1), Some(&sf), false)
                .mean(),
            dec.decode_likelihood(&z, Some(&c2), Some(&sf), false)
                .mean(),
        ),
        (
            "mlp decoder",
            mlp.decode(&z, Some(&c1), false),
            mlp.decode(&z, Some(&c2), false),
        ),
    ] {
        assert!((a - b).abs().max().double_value(&[]) > 1e-4, "{name}");
    }
    assert_eq!(dec.head().n_features(), 10);
}
