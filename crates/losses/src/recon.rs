//! Reconstruction negative log-likelihoods, one per decoder head.
//!
//! Conventions, shared by every head:
//! - `log_*` functions return the element-wise log-likelihood, the shape of the
//!   broadcast of their arguments (e.g. B x G), for callers that reduce differently (per
//!   cell, masked, weighted).
//! - `*_sum` functions return the negative log-likelihood summed over all elements (cells
//!   and features), like [`bernoulli_sum`]: the scale of the summed KL in the ELBO.
//!   Divide by B for the mean over cells.
//! - Arguments are the distribution's parameters first and the observed target last, as
//!   in [`bernoulli_sum`] and [`mse`]. Parameters broadcast against the target, so a
//!   per-feature dispersion of shape `[G]` works with B x G counts.
//! - The count likelihoods (NB, ZINB, Poisson) follow scvi-tools
//!   (`scvi/distributions/_negative_binomial.py`: `log_nb_positive`, `log_zinb_positive`),
//!   with the same stabilising constant [`EPS`] inside the logarithms, and accept
//!   non-integer targets through `lgamma`.

use tch::{Reduction, Tensor};

/// The constant scvi-tools adds inside logarithms of non-negative parameters
/// (`log(mu + EPS)`, `log(theta + EPS)`), so a mean or rate of exactly 0 stays finite.
pub const EPS: f64 = 1e-8;

/// Element-wise Bernoulli log-likelihood from logits:
/// `x log sigmoid(l) + (1 - x) log(1 - sigmoid(l)) = -(x softplus(-l) + (1 - x) softplus(l))`,
/// computed stably (`binary_cross_entropy_with_logits`, no reduction).
pub fn log_bernoulli(logits: &Tensor, target: &Tensor) -> Tensor {
    -logits.binary_cross_entropy_with_logits::<&Tensor>(target, None, None, Reduction::None)
}

/// Bernoulli NLL of binary targets from logits, summed over cells and features:
/// `-sum [x log sigmoid(l) + (1 - x) log(1 - sigmoid(l))]`, computed stably.
pub fn bernoulli_sum(logits: &Tensor, target: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<&Tensor>(target, None, None, Reduction::Sum)
}

/// The same, averaged over all elements (the SAILERX warm-up uses the mean).
pub fn bernoulli_mean(logits: &Tensor, target: &Tensor) -> Tensor {
    logits.binary_cross_entropy_with_logits::<&Tensor>(target, None, None, Reduction::Mean)
}

/// Mean squared error, averaged over elements.
pub fn mse(pred: &Tensor, target: &Tensor) -> Tensor {
    (pred - target).square().mean(pred.kind())
}

/// Element-wise negative binomial (NB2) log-likelihood with mean `mu >= 0` and inverse
/// dispersion `theta > 0` (variance `mu + mu^2 / theta`):
///
/// `log NB(x; mu, theta) = lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)
///   + theta (log(theta + eps) - log(theta + mu + eps)) + x (log(mu + eps) - log(theta + mu + eps))`,
///
/// scvi-tools' `log_nb_positive` (Lopez et al. 2018, Nature Methods 15:1053), eps =
/// [`EPS`]. `mu` is the mean of the counts themselves: a decoder that outputs normalised
/// expression (e.g. a softmax over genes) multiplies by the cell's library size / size
/// factor before calling this (as scVI and BABEL do); nothing is rescaled here. The first
/// log-difference is evaluated as `-theta log1p(mu / (theta + eps))`, which is the same
/// number without the cancellation of two nearly equal logarithms when `theta >> mu`.
/// (`lgamma(x + theta) - lgamma(theta)` still cancels for very large `theta` in f32, as in
/// scvi-tools; clamp `theta`, e.g. to <= 1e4, in f32 models.)
pub fn log_nb(mu: &Tensor, theta: &Tensor, target: &Tensor) -> Tensor {
    let log_theta_mu_eps = (theta + mu + EPS).log();
    nb_log_zero(mu, theta)
        + target * ((mu + EPS).log() - log_theta_mu_eps)
        + lgamma_ratio(target, theta)
}

/// Negative binomial NLL summed over all elements: `-sum log NB(x; mu, theta)` ([`log_nb`]).
pub fn nb_sum(mu: &Tensor, theta: &Tensor, target: &Tensor) -> Tensor {
    -log_nb(mu, theta, target).sum(mu.kind())
}

/// Element-wise zero-inflated negative binomial log-likelihood. `pi_logits` is the logit
/// of the zero-inflation (dropout) probability `pi = sigmoid(pi_logits)`:
///
/// `p(x) = pi [x = 0] + (1 - pi) NB(x; mu, theta)`.
///
/// As in scvi-tools' `log_zinb_positive`, with `l = pi_logits` and
/// `t = theta (log(theta + eps) - log(theta + mu + eps)) = log NB(0)`:
/// - `x = 0` (here `x < eps`): `log(pi + (1 - pi) e^t) = softplus(t - l) - softplus(-l)`;
/// - `x > 0`: `log(1 - pi) + log NB(x) = -softplus(-l) - l + log NB(x; mu, theta)`,
///
/// using `log sigmoid(l) = -softplus(-l)` and `log(1 - sigmoid(l)) = -l - softplus(-l)`,
/// so it is stable for any logit. The two cases are selected with `where` (scvi-tools
/// multiplies by masks), so the branch not taken contributes neither value nor gradient. `mu` is scaled as in [`log_nb`].
pub fn log_zinb(mu: &Tensor, theta: &Tensor, pi_logits: &Tensor, target: &Tensor) -> Tensor {
    let softplus_neg_pi = (-pi_logits).softplus();
    let pi_theta_log = nb_log_zero(mu, theta) - pi_logits;
    let case_zero = pi_theta_log.softplus() - &softplus_neg_pi;
    let log_theta_mu_eps = (theta + mu + EPS).log();
    let case_non_zero = pi_theta_log - softplus_neg_pi
        + target * ((mu + EPS).log() - log_theta_mu_eps)
        + lgamma_ratio(target, theta);
    case_zero.where_self(&target.lt(EPS), &case_non_zero)
}

/// Zero-inflated NB NLL summed over all elements: `-sum log ZINB(x)` ([`log_zinb`]).
pub fn zinb_sum(mu: &Tensor, theta: &Tensor, pi_logits: &Tensor, target: &Tensor) -> Tensor {
    -log_zinb(mu, theta, pi_logits, target).sum(mu.kind())
}

/// Element-wise Poisson log-likelihood with rate `rate >= 0` (the expected count, scaled
/// by the library size by the caller as for [`log_nb`]):
/// `log Poisson(x; r) = x log(r + eps) - r - lgamma(x + 1)`, eps = [`EPS`] (the limit of
/// [`log_nb`] as `theta -> inf`). Unlike torch's `poisson_nll_loss(full = true)`, the
/// `lgamma(x + 1)` term is exact, not Stirling's approximation, so this is a normalised
/// log-pmf.
pub fn log_poisson(rate: &Tensor, target: &Tensor) -> Tensor {
    target * (rate + EPS).log() - rate - (target + 1.0).lgamma()
}

/// Poisson NLL summed over all elements: `-sum log Poisson(x; r)` ([`log_poisson`]).
pub fn poisson_sum(rate: &Tensor, target: &Tensor) -> Tensor {
    -log_poisson(rate, target).sum(rate.kind())
}

/// Element-wise Gaussian log-density with mean `mean` and log-variance `logvar`
/// (heteroscedastic head; `logvar` may be per element, per feature `[G]`, or a scalar
/// tensor, e.g. a learned parameter):
/// `log N(x; m, e^lv) = -1/2 (log(2 pi) + lv + (x - m)^2 e^(-lv))`.
pub fn log_gaussian(mean: &Tensor, logvar: &Tensor, target: &Tensor) -> Tensor {
    ((target - mean).square() * (-logvar).exp() + logvar + LOG_2PI) * -0.5
}

/// Gaussian NLL summed over all elements: `-sum log N(x; m, e^lv)` ([`log_gaussian`]).
pub fn gaussian_sum(mean: &Tensor, logvar: &Tensor, target: &Tensor) -> Tensor {
    -log_gaussian(mean, logvar, target).sum(mean.kind())
}

/// Gaussian NLL with a fixed variance `var > 0`, summed over all `n` elements:
/// `sum (x - m)^2 / (2 var) + n/2 log(2 pi var)`. With `var = 1/2` the data term is the
/// summed squared error; the constant does not affect gradients.
pub fn gaussian_fixed_var_sum(mean: &Tensor, var: f64, target: &Tensor) -> Tensor {
    assert!(var > 0.0, "variance must be positive, got {var}");
    let sq = (target - mean).square();
    let n = sq.numel() as f64;
    sq.sum(mean.kind()) / (2.0 * var) + 0.5 * n * (LOG_2PI + var.ln())
}

/// `ln(2 pi)`.
const LOG_2PI: f64 = 1.837_877_066_409_345_5;

/// `log NB(0; mu, theta) = theta (log(theta + eps) - log(theta + mu + eps))`, evaluated as
/// `-theta log1p(mu / (theta + eps))` (the same quantity, without cancellation).
fn nb_log_zero(mu: &Tensor, theta: &Tensor) -> Tensor {
    -(theta * (mu / (theta + EPS)).log1p())
}

/// `lgamma(x + theta) - lgamma(theta) - lgamma(x + 1)`, the log binomial coefficient of NB.
fn lgamma_ratio(target: &Tensor, theta: &Tensor) -> Tensor {
    (target + theta).lgamma() - theta.lgamma() - (target + 1.0).lgamma()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn bernoulli_matches_the_formula() {
        let logits = [2.0f64, -1.0, 0.0, 30.0, -30.0];
        let target = [1.0f64, 0.0, 1.0, 0.0, 0.0];
        let want: f64 = logits
            .iter()
            .zip(&target)
            .map(|(l, x)| {
                // ln sigmoid(l) = -ln(1 + e^-l), ln(1 - sigmoid(l)) = -ln(1 + e^l)
                x * (-l).exp().ln_1p() + (1.0 - x) * l.exp().ln_1p()
            })
            .sum();
        let l = Tensor::from_slice(&logits);
        let x = Tensor::from_slice(&target);
        assert!((bernoulli_sum(&l, &x).double_value(&[]) - want).abs() < 1e-9);
        assert!((bernoulli_mean(&l, &x).double_value(&[]) - want / 5.0).abs() < 1e-9);
        let a = Tensor::from_slice(&[1.0f64, 2.0]).to_device(Device::Cpu);
        assert!(
            (mse(&a, &Tensor::from_slice(&[0.0f64, 0.0])).double_value(&[]) - 2.5).abs() < 1e-12
        );
    }
}
