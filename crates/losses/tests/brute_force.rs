//! Every loss added for the SAILERX issue against a brute-force f64 loop or a closed-form
//! log-pmf / log-pdf written out here (the NB and Poisson references for whole-number
//! counts use products of logarithms, no Gamma function; non-integer counts use the
//! Lanczos `lgamma` of `common`), and its gradient against central finite differences.

mod common;

use common::{F64, check_gradients, cos, lgamma, ln_factorial, logsumexp, rows, to_vec};
use crossomics_losses::{alignment, recon, similarity};
use tch::{Kind, Tensor};

fn close(got: f64, want: f64, tol: f64) {
    assert!(
        (got - want).abs() <= tol * (1.0 + want.abs()),
        "got {got}, want {want}"
    );
}

fn randn(shape: &[i64], seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randn(shape, F64)
}

/// Uniform in `[lo, hi)`.
fn uniform(shape: &[i64], lo: f64, hi: f64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::rand(shape, F64) * (hi - lo) + lo
}

/// Whole-number counts in `0..max`, with some zeros.
fn counts(shape: &[i64], max: i64, seed: i64) -> Tensor {
    tch::manual_seed(seed);
    Tensor::randint(max, shape, F64)
}

// ---------- structural similarity, softmax-KL ----------

fn brute_structural_kl(p: &[Vec<f64>], z: &[Vec<f64>], tau: f64, w: &[f64]) -> f64 {
    let b = p.len();
    let mut total = 0.0;
    for i in 0..b {
        let lp: Vec<f64> = (0..b)
            .filter(|&j| j != i)
            .map(|j| cos(&p[i], &p[j]) / tau)
            .collect();
        let lq: Vec<f64> = (0..b)
            .filter(|&j| j != i)
            .map(|j| cos(&z[i], &z[j]) / tau)
            .collect();
        let (np, nq) = (logsumexp(&lp), logsumexp(&lq));
        let kl: f64 = lp
            .iter()
            .zip(&lq)
            .map(|(a, c)| (a - np).exp() * ((a - np) - (c - nq)))
            .sum();
        total += w[i] * kl;
    }
    total / b as f64
}

#[test]
fn structural_kl_matches_a_brute_force_loop() {
    let p = randn(&[7, 5], 10);
    let z = randn(&[7, 3], 11);
    let w = uniform(&[7], 0.0, 1.0, 12);
    let (pr, zr, wv) = (rows(&p), rows(&z), to_vec(&w));
    for tau in [0.1, 0.5, 2.0] {
        let got = similarity::structural_kl(&p, &z, tau, Some(&w)).double_value(&[]);
        close(got, brute_structural_kl(&pr, &zr, tau, &wv), 1e-12);
        let got = similarity::structural_kl(&p, &z, tau, None).double_value(&[]);
        close(got, brute_structural_kl(&pr, &zr, tau, &[1.0; 7]), 1e-12);
    }
    // a minibatch of one cell has no pairs
    let one = similarity::structural_kl(&p.narrow(0, 0, 1), &z.narrow(0, 0, 1), 0.5, None);
    assert_eq!(one.double_value(&[]), 0.0);
    // two cells: each row is a distribution over one cell, always KL 0
    let two = similarity::structural_kl(&p.narrow(0, 0, 2), &z.narrow(0, 0, 2), 0.5, None);
    assert!(two.double_value(&[]).abs() < 1e-15);
}

#[test]
fn structural_kl_is_stable_at_small_temperature_in_f32() {
    let p = randn(&[50, 20], 13).to_kind(Kind::Float);
    let z = randn(&[50, 10], 14).to_kind(Kind::Float);
    let zv = z.set_requires_grad(true);
    let loss = similarity::structural_kl(&p, &zv, 1e-3, None);
    assert!(loss.double_value(&[]).is_finite() && loss.double_value(&[]) >= 0.0);
    loss.backward();
    assert!(to_vec(&zv.grad()).iter().all(|g| g.is_finite()));
}

#[test]
fn structural_kl_gradients_match_finite_differences() {
    let p = randn(&[5, 4], 15);
    let z = randn(&[5, 3], 16);
    let w = uniform(&[5], 0.1, 1.0, 17);
    check_gradients(
        |x| similarity::structural_kl(&x[0], &x[1], 0.3, Some(&w)),
        &[p.shallow_clone(), z.shallow_clone()],
        1e-6,
    );
    check_gradients(
        |x| similarity::structural_kl(&x[0], &x[1], 1.0, None),
        &[p, z],
        1e-6,
    );
}

#[test]
fn cosine_between_matches_the_loop_and_the_square_case() {
    let a = randn(&[4, 3], 18);
    let b = randn(&[6, 3], 19);
    let got = to_vec(&similarity::cosine_between(&a, &b));
    let (ar, br) = (rows(&a), rows(&b));
    for i in 0..4 {
        for j in 0..6 {
            close(got[i * 6 + j], cos(&ar[i], &br[j]), 1e-13);
        }
    }
    let m1 = to_vec(&similarity::cosine_between(&a, &a));
    let m2 = to_vec(&similarity::cosine_matrix(&a));
    for (x, y) in m1.iter().zip(&m2) {
        close(*x, *y, 1e-14);
    }
}

// ---------- alignment ----------

fn brute_info_nce(a: &[Vec<f64>], b: &[Vec<f64>], tau: f64) -> f64 {
    let n = a.len();
    let l: Vec<Vec<f64>> = (0..n)
        .map(|i| (0..n).map(|j| cos(&a[i], &b[j]) / tau).collect())
        .collect();
    let mut rows_ce = 0.0;
    let mut cols_ce = 0.0;
    for (i, row) in l.iter().enumerate() {
        rows_ce += logsumexp(row) - row[i];
        let col: Vec<f64> = l.iter().map(|r| r[i]).collect();
        cols_ce += logsumexp(&col) - row[i];
    }
    (rows_ce / n as f64 + cols_ce / n as f64) / 2.0
}

#[test]
fn info_nce_matches_a_brute_force_loop() {
    let a = randn(&[8, 4], 20);
    let b = randn(&[8, 4], 21);
    for tau in [0.05, 0.2, 1.0] {
        let got = alignment::info_nce(&a, &b, tau).double_value(&[]);
        close(got, brute_info_nce(&rows(&a), &rows(&b), tau), 1e-12);
    }
    // from logits: the same with an arbitrary (non-symmetric) logit matrix
    let logits = randn(&[5, 5], 22) * 3.0;
    let l = rows(&logits);
    let mut want = 0.0;
    for (i, row) in l.iter().enumerate() {
        let col: Vec<f64> = l.iter().map(|r| r[i]).collect();
        want += (logsumexp(row) - row[i] + logsumexp(&col) - row[i]) / 10.0;
    }
    close(
        alignment::info_nce_from_logits(&logits).double_value(&[]),
        want,
        1e-12,
    );
}

#[test]
fn info_nce_gradients_match_finite_differences() {
    let a = randn(&[5, 3], 23);
    let b = randn(&[5, 3], 24);
    check_gradients(|x| alignment::info_nce(&x[0], &x[1], 0.25), &[a, b], 1e-6);
    check_gradients(
        |x| alignment::info_nce_from_logits(&x[0]),
        &[randn(&[4, 4], 25)],
        1e-6,
    );
}

#[test]
fn hard_alignment_matches_the_loop_and_its_gradient() {
    let a = randn(&[6, 3], 26);
    let b = randn(&[6, 3], 27);
    let want: f64 = to_vec(&a)
        .iter()
        .zip(to_vec(&b))
        .map(|(x, y)| (x - y).powi(2))
        .sum();
    close(alignment::hard_sum(&a, &b).double_value(&[]), want, 1e-13);
    close(
        alignment::hard_mean(&a, &b).double_value(&[]),
        want / 18.0,
        1e-13,
    );
    check_gradients(
        |x| alignment::hard_sum(&x[0], &x[1]) + alignment::hard_mean(&x[0], &x[1]),
        &[a, b],
        1e-6,
    );
}

// ---------- reconstruction: closed forms ----------

const EPS: f64 = recon::EPS;

/// NB2 log-pmf for a whole-number x: `ln prod_{k<x} (theta + k) - ln x!
/// + theta ln(theta / (theta + mu)) + x ln(mu / (theta + mu))`, with scvi-tools' eps in
/// the logarithms when `eps` is set.
fn nb_ref(x: f64, mu: f64, theta: f64, eps: f64) -> f64 {
    let rising: f64 = (0..x as u64).map(|k| (theta + k as f64).ln()).sum();
    rising - ln_factorial(x)
        + theta * ((theta + eps).ln() - (theta + mu + eps).ln())
        + x * ((mu + eps).ln() - (theta + mu + eps).ln())
}

fn zinb_ref(x: f64, mu: f64, theta: f64, logit: f64) -> f64 {
    let pi = 1.0 / (1.0 + (-logit).exp());
    let nb = nb_ref(x, mu, theta, EPS).exp();
    if x == 0.0 {
        (pi + (1.0 - pi) * nb).ln()
    } else {
        ((1.0 - pi) * nb).ln()
    }
}

fn poisson_ref(x: f64, rate: f64) -> f64 {
    x * (rate + EPS).ln() - rate - ln_factorial(x)
}

fn gaussian_ref(x: f64, m: f64, lv: f64) -> f64 {
    let var = lv.exp();
    -0.5 * (2.0 * std::f64::consts::PI * var).ln() - (x - m).powi(2) / (2.0 * var)
}

/// Counts (B x G), means, per-gene inverse dispersions `[G]` and zero-inflation logits.
fn count_head(seed: i64) -> (Tensor, Tensor, Tensor, Tensor) {
    (
        counts(&[6, 5], 15, seed),
        uniform(&[6, 5], 0.05, 12.0, seed + 1),
        uniform(&[5], 0.1, 20.0, seed + 2),
        randn(&[6, 5], seed + 3) * 3.0,
    )
}

#[test]
fn nb_matches_the_closed_form_pmf() {
    let (x, mu, theta, _) = count_head(30);
    let got = to_vec(&recon::log_nb(&mu, &theta, &x));
    let (xv, mv, tv) = (to_vec(&x), to_vec(&mu), to_vec(&theta));
    let mut total = 0.0;
    for (n, g) in got.iter().enumerate() {
        let (xx, m, t) = (xv[n], mv[n], tv[n % 5]);
        close(*g, nb_ref(xx, m, t, EPS), 1e-12);
        // scvi-tools' eps moves the value by O(eps) only
        close(*g, nb_ref(xx, m, t, 0.0), 1e-6);
        total += g;
    }
    close(
        recon::nb_sum(&mu, &theta, &x).double_value(&[]),
        -total,
        1e-12,
    );
}

#[test]
fn nb_is_a_distribution_with_nb2_moments() {
    // sum_x p(x) = 1, E[x] = mu, Var[x] = mu + mu^2 / theta
    for (mu, theta) in [(3.0, 2.0), (0.5, 0.3), (20.0, 50.0)] {
        let x = Tensor::arange(2000, F64);
        let p = to_vec(&recon::log_nb(
            &Tensor::from(mu).to_kind(Kind::Double),
            &Tensor::from(theta).to_kind(Kind::Double),
            &x,
        ))
        .into_iter()
        .map(f64::exp)
        .collect::<Vec<_>>();
        let total: f64 = p.iter().sum();
        let mean: f64 = p.iter().enumerate().map(|(k, q)| k as f64 * q).sum();
        let var: f64 = p
            .iter()
            .enumerate()
            .map(|(k, q)| (k as f64 - mean).powi(2) * q)
            .sum();
        close(total, 1.0, 1e-7);
        close(mean, mu, 1e-6);
        close(var, mu + mu * mu / theta, 1e-6);
    }
}

#[test]
fn nb_with_non_integer_counts_matches_lanczos_lgamma() {
    for (lg, want) in [
        (lgamma(1.0), 0.0),
        (lgamma(0.5), std::f64::consts::PI.sqrt().ln()),
        (lgamma(10.0), 362_880f64.ln()),
        (lgamma(0.1), 2.252_712_651_734_206),
    ] {
        close(lg, want, 1e-13);
    }
    let x = uniform(&[4, 3], 0.0, 30.0, 31);
    let mu = uniform(&[4, 3], 0.1, 10.0, 32);
    let theta = uniform(&[4, 3], 0.05, 100.0, 33);
    let got = to_vec(&recon::log_nb(&mu, &theta, &x));
    for (n, g) in got.iter().enumerate() {
        let (x, m, t) = (to_vec(&x)[n], to_vec(&mu)[n], to_vec(&theta)[n]);
        let want = lgamma(x + t) - lgamma(t) - lgamma(x + 1.0)
            + t * ((t + EPS).ln() - (t + m + EPS).ln())
            + x * ((m + EPS).ln() - (t + m + EPS).ln());
        close(*g, want, 1e-11);
    }
}

#[test]
fn nb_tends_to_poisson_and_zinb_to_nb() {
    let (x, mu, _, _) = count_head(34);
    // log NB - log Poisson = O((x - mu)^2 / theta)
    let big = Tensor::full([5], 1e8, F64);
    let nb = to_vec(&recon::log_nb(&mu, &big, &x));
    let po = to_vec(&recon::log_poisson(&mu, &x));
    for (a, b) in nb.iter().zip(&po) {
        close(*a, *b, 1e-5);
    }
    let theta = uniform(&[5], 0.1, 20.0, 35);
    let no_dropout = Tensor::full([6, 5], -40.0, F64);
    let zinb = to_vec(&recon::log_zinb(&mu, &theta, &no_dropout, &x));
    let nb = to_vec(&recon::log_nb(&mu, &theta, &x));
    for (a, b) in zinb.iter().zip(&nb) {
        close(*a, *b, 1e-12);
    }
}

#[test]
fn zinb_matches_the_closed_form_pmf_and_sums_to_one() {
    let (x, mu, theta, logits) = count_head(40);
    let got = to_vec(&recon::log_zinb(&mu, &theta, &logits, &x));
    let (xv, mv, tv, lv) = (to_vec(&x), to_vec(&mu), to_vec(&theta), to_vec(&logits));
    assert!(xv.contains(&0.0) && xv.iter().any(|v| *v > 0.0));
    for (n, g) in got.iter().enumerate() {
        close(*g, zinb_ref(xv[n], mv[n], tv[n % 5], lv[n]), 1e-12);
    }
    close(
        recon::zinb_sum(&mu, &theta, &logits, &x).double_value(&[]),
        -got.iter().sum::<f64>(),
        1e-12,
    );
    // a distribution, with mean (1 - pi) mu
    let k = Tensor::arange(1500, F64);
    let (m, t, l) = (4.0f64, 1.5f64, 0.7f64);
    let p: Vec<f64> = to_vec(&recon::log_zinb(
        &Tensor::from(m).to_kind(Kind::Double),
        &Tensor::from(t).to_kind(Kind::Double),
        &Tensor::from(l).to_kind(Kind::Double),
        &k,
    ))
    .into_iter()
    .map(f64::exp)
    .collect();
    close(p.iter().sum(), 1.0, 1e-7);
    let mean: f64 = p.iter().enumerate().map(|(k, q)| k as f64 * q).sum();
    close(mean, m / (1.0 + l.exp()), 1e-6);
}

#[test]
fn zinb_matches_a_transcription_of_scvi_tools() {
    // log_zinb_positive, element by element, literally (masks x < eps and x > eps)
    let (x, mu, theta, pi) = count_head(50);
    let got = to_vec(&recon::log_zinb(&mu, &theta, &pi, &x));
    let sp = |v: f64| if v > 20.0 { v } else { v.exp().ln_1p() };
    let (xv, mv, tv, pv) = (to_vec(&x), to_vec(&mu), to_vec(&theta), to_vec(&pi));
    for (n, g) in got.iter().enumerate() {
        let (x, mu, theta, pi) = (xv[n], mv[n], tv[n % 5], pv[n]);
        let softplus_pi = sp(-pi);
        let log_theta_eps = (theta + EPS).ln();
        let log_theta_mu_eps = (theta + mu + EPS).ln();
        let pi_theta_log = -pi + theta * (log_theta_eps - log_theta_mu_eps);
        let case_zero = sp(pi_theta_log) - softplus_pi;
        let case_non_zero = -softplus_pi
            + pi_theta_log
            + x * ((mu + EPS).ln() - log_theta_mu_eps)
            + lgamma(x + theta)
            - lgamma(theta)
            - lgamma(x + 1.0);
        let zero_part = if x < EPS { case_zero } else { 0.0 };
        let non_zero_part = if x > EPS { case_non_zero } else { 0.0 };
        let want = zero_part + non_zero_part;
        close(*g, want, 1e-11);
    }
}

#[test]
fn poisson_matches_the_closed_form_and_sums_to_one() {
    let x = counts(&[4, 6], 20, 60);
    let rate = uniform(&[4, 6], 0.01, 15.0, 61);
    let got = to_vec(&recon::log_poisson(&rate, &x));
    for (n, g) in got.iter().enumerate() {
        close(*g, poisson_ref(to_vec(&x)[n], to_vec(&rate)[n]), 1e-12);
    }
    close(
        recon::poisson_sum(&rate, &x).double_value(&[]),
        -got.iter().sum::<f64>(),
        1e-12,
    );
    let k = Tensor::arange(200, F64);
    let p: Vec<f64> = to_vec(&recon::log_poisson(&Tensor::full([1], 7.5, F64), &k))
        .into_iter()
        .map(f64::exp)
        .collect();
    // eps in log(rate + eps) adds about E[x] eps / rate = 1e-8 of mass
    close(p.iter().sum(), 1.0, 1e-7);
    // a zero rate: all mass on zero, finite everywhere
    let zero = Tensor::zeros([3], F64);
    let v = to_vec(&recon::log_poisson(
        &zero,
        &Tensor::from_slice(&[0.0f64, 1.0, 2.0]),
    ));
    assert!(v[0].abs() < 1e-15 && v[1] < -18.0 && v.iter().all(|x| x.is_finite()));
}

#[test]
fn gaussian_matches_the_closed_form() {
    let x = randn(&[4, 5], 70);
    let m = randn(&[4, 5], 71);
    let lv = randn(&[4, 5], 72);
    let got = to_vec(&recon::log_gaussian(&m, &lv, &x));
    let (xv, mv, lvv) = (to_vec(&x), to_vec(&m), to_vec(&lv));
    for (n, g) in got.iter().enumerate() {
        close(*g, gaussian_ref(xv[n], mv[n], lvv[n]), 1e-13);
    }
    close(
        recon::gaussian_sum(&m, &lv, &x).double_value(&[]),
        -got.iter().sum::<f64>(),
        1e-13,
    );
    // per-feature log-variance broadcasts
    let lv_g = randn(&[5], 73);
    let got = to_vec(&recon::log_gaussian(&m, &lv_g, &x));
    for (n, g) in got.iter().enumerate() {
        close(*g, gaussian_ref(xv[n], mv[n], to_vec(&lv_g)[n % 5]), 1e-13);
    }
    // fixed variance: the same with log(var) everywhere
    for var in [0.5, 2.0] {
        let want: f64 = (0..20)
            .map(|n| -gaussian_ref(xv[n], mv[n], f64::ln(var)))
            .sum();
        close(
            recon::gaussian_fixed_var_sum(&m, var, &x).double_value(&[]),
            want,
            1e-13,
        );
    }
}

#[test]
fn bernoulli_log_prob_is_minus_the_elementwise_bce() {
    let logits = randn(&[3, 4], 74) * 4.0;
    let x = counts(&[3, 4], 2, 75);
    let got = to_vec(&recon::log_bernoulli(&logits, &x));
    for (n, g) in got.iter().enumerate() {
        let (l, x) = (to_vec(&logits)[n], to_vec(&x)[n]);
        let p = 1.0 / (1.0 + (-l).exp());
        close(*g, x * p.ln() + (1.0 - x) * (1.0 - p).ln(), 1e-12);
    }
    close(
        recon::bernoulli_sum(&logits, &x).double_value(&[]),
        -got.iter().sum::<f64>(),
        1e-12,
    );
}

// ---------- reconstruction: gradients and stability ----------

#[test]
fn count_likelihood_gradients_match_finite_differences() {
    let (x, mu, theta, pi) = count_head(80);
    let theta_full = uniform(&[6, 5], 0.2, 8.0, 84);
    check_gradients(
        |v| recon::nb_sum(&v[0], &v[1], &x),
        &[mu.shallow_clone(), theta.shallow_clone()],
        1e-6,
    );
    check_gradients(
        |v| recon::zinb_sum(&v[0], &v[1], &v[2], &x),
        &[mu.shallow_clone(), theta_full, pi],
        1e-6,
    );
    check_gradients(|v| recon::poisson_sum(&v[0], &x), &[mu], 1e-6);
}

#[test]
fn gaussian_and_bernoulli_gradients_match_finite_differences() {
    let x = randn(&[4, 3], 85);
    check_gradients(
        |v| recon::gaussian_sum(&v[0], &v[1], &x),
        &[randn(&[4, 3], 86), randn(&[4, 3], 87) * 0.5],
        1e-6,
    );
    check_gradients(
        |v| recon::gaussian_fixed_var_sum(&v[0], 0.7, &x),
        &[randn(&[4, 3], 88)],
        1e-6,
    );
    let b = counts(&[4, 3], 2, 89);
    check_gradients(
        |v| recon::log_bernoulli(&v[0], &b).sum(Kind::Double),
        &[randn(&[4, 3], 90)],
        1e-6,
    );
}

#[test]
fn count_likelihoods_stay_finite_at_extreme_parameters_in_f32() {
    let f = |v: &[f64]| Tensor::from_slice(v).to_kind(Kind::Float);
    let x = f(&[0.0, 0.0, 1.0, 1e4, 3.0, 0.0, 50.0, 2.0]);
    let mu = f(&[0.0, 1e-12, 1e6, 1e4, 1e-6, 1e6, 0.5, 2.0]);
    let theta = f(&[1e-4, 1e4, 1e-4, 1e4, 0.01, 1e-3, 1e4, 1.0]);
    let pi = f(&[-100.0, 100.0, 30.0, -30.0, 0.0, 100.0, -100.0, 5.0]);
    let (mu, theta, pi) = (
        mu.set_requires_grad(true),
        theta.set_requires_grad(true),
        pi.set_requires_grad(true),
    );
    let total = recon::nb_sum(&mu, &theta, &x)
        + recon::zinb_sum(&mu, &theta, &pi, &x)
        + recon::poisson_sum(&mu, &x);
    let v = total.double_value(&[]);
    assert!(v.is_finite(), "{v}");
    total.backward();
    for g in [mu.grad(), theta.grad(), pi.grad()] {
        assert!(to_vec(&g).iter().all(|v| v.is_finite()), "{g:?}");
    }
    // in f32, the log1p form keeps NB(0) accurate when theta >> mu (two logs would cancel)
    let lp0 = recon::log_nb(&f(&[0.01]), &f(&[1e4]), &f(&[0.0])).double_value(&[0]);
    close(lp0, -1e4 * (0.01f64 / 1e4).ln_1p(), 1e-6);
}
