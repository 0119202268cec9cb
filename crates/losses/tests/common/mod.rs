//! Helpers shared by the integration tests: f64 conversions, a reference `lgamma`, and a
//! central finite-difference gradient check.

#![allow(dead_code)]

use tch::{Device, Kind, Tensor};

pub const F64: (Kind, Device) = (Kind::Double, Device::Cpu);

pub fn to_vec(t: &Tensor) -> Vec<f64> {
    Vec::<f64>::try_from(t.to_kind(Kind::Double).flatten(0, -1)).unwrap()
}

/// Row-major B x d rows of a 2-d tensor.
pub fn rows(t: &Tensor) -> Vec<Vec<f64>> {
    let d = t.size()[1] as usize;
    to_vec(t).chunks(d).map(<[f64]>::to_vec).collect()
}

pub fn tensor(rows: &[Vec<f64>]) -> Tensor {
    Tensor::from_slice(&rows.concat()).view([rows.len() as i64, -1])
}

pub fn cos(a: &[f64], b: &[f64]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-8);
    let nb = b.iter().map(|x| x * x).sum::<f64>().sqrt().max(1e-8);
    dot / (na * nb)
}

/// `ln sum exp` of a slice, shifted by its maximum.
pub fn logsumexp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// `ln Gamma(x)` for `x > 0`: Lanczos approximation (g = 7, 9 coefficients, relative error
/// about 1e-15), with the reflection formula below 1/2. Independent of libtorch's lgamma.
pub fn lgamma(x: f64) -> f64 {
    const G: f64 = 7.0;
    const C: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if x < 0.5 {
        let pi = std::f64::consts::PI;
        return (pi / (pi * x).sin()).ln() - lgamma(1.0 - x);
    }
    let x = x - 1.0;
    let mut a = C[0];
    let t = x + G + 0.5;
    for (i, c) in C.iter().enumerate().skip(1) {
        a += c / (x + i as f64);
    }
    0.5 * (2.0 * std::f64::consts::PI).ln() + (x + 0.5) * t.ln() - t + a.ln()
}

/// `ln x!` for a whole number `x`, as a sum of logarithms (no Gamma function at all).
pub fn ln_factorial(x: f64) -> f64 {
    (1..=x as u64).map(|k| (k as f64).ln()).sum()
}

/// Central finite differences of the scalar `f` against its autograd gradient, for every
/// element of every input (f64 tensors): `|fd - g| <= tol (1 + |fd|)`.
pub fn check_gradients(f: impl Fn(&[Tensor]) -> Tensor, inputs: &[Tensor], tol: f64) {
    let vars: Vec<Tensor> = inputs
        .iter()
        .map(|t| t.copy().set_requires_grad(true))
        .collect();
    f(&vars).backward();
    let eps = 1e-6;
    for (k, var) in vars.iter().enumerate() {
        let grad = to_vec(&var.grad());
        for (idx, g) in grad.iter().enumerate() {
            let bump = |s: f64| {
                let xs: Vec<Tensor> = inputs.iter().map(Tensor::copy).collect();
                let _ = xs[k].flatten(0, -1).get(idx as i64).g_add_scalar_(s);
                f(&xs).double_value(&[])
            };
            let fd = (bump(eps) - bump(-eps)) / (2.0 * eps);
            assert!(
                (fd - g).abs() <= tol * (1.0 + fd.abs()),
                "input {k} element {idx}: finite difference {fd} vs autograd {g}"
            );
        }
    }
}
