//! Reconstruction negative log-likelihoods.

use tch::{Reduction, Tensor};

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
