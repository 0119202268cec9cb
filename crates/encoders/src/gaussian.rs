//! Diagonal Gaussian latent distributions and the MLP encoder that produces them.

use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::mlp::{Mlp, MlpConfig};
use crate::{Encoder, init, with_covariates};

/// q(z | x) = N(mu, diag(exp(logvar))), one row per cell.
#[derive(Debug)]
pub struct Gaussian {
    pub mu: Tensor,
    pub logvar: Tensor,
}

impl Gaussian {
    /// Reparameterised sample `mu + exp(logvar / 2) * eps` in training, the mean otherwise.
    /// (The published SAILERX code samples with std = exp(logvar), inconsistent with its
    /// KL term; this uses the standard deviation the KL assumes.)
    /// The published SAILERX sampling, `mu + exp(logvar) * eps` in training (std =
    /// variance), for `faithful = true` reproductions only.
    pub fn sample_published(&self, train: bool) -> Tensor {
        if train {
            &self.mu + self.logvar.exp() * self.mu.randn_like()
        } else {
            self.mu.shallow_clone()
        }
    }

    pub fn sample(&self, train: bool) -> Tensor {
        if train {
            &self.mu + (&self.logvar * 0.5).exp() * self.mu.randn_like()
        } else {
            self.mu.shallow_clone()
        }
    }
}

/// MLP body, then two linear heads for the mean and the log-variance.
#[derive(Debug)]
pub struct GaussianEncoder {
    body: Mlp,
    mu: nn::Linear,
    logvar: nn::Linear,
    latent_dim: i64,
}

impl GaussianEncoder {
    pub fn new(
        path: &nn::Path,
        input: i64,
        n_covariates: i64,
        latent_dim: i64,
        config: &MlpConfig,
    ) -> Self {
        let body = Mlp::new(&(path / "body"), input + n_covariates, config);
        let width = body.out_dim();
        Self {
            mu: init::linear(path / "mu", width, latent_dim),
            logvar: init::linear(path / "logvar", width, latent_dim),
            body,
            latent_dim,
        }
    }
}

impl Encoder for GaussianEncoder {
    fn encode(&self, x: &Tensor, covariates: Option<&Tensor>, train: bool) -> Gaussian {
        let h = self.body.forward_t(&with_covariates(x, covariates), train);
        Gaussian {
            mu: self.mu.forward(&h),
            // bounded for numerical safety: exp(+-15) spans any sensible variance
            logvar: self.logvar.forward(&h).clamp(-15.0, 15.0),
        }
    }

    fn latent_dim(&self) -> i64 {
        self.latent_dim
    }
}

/// MLP body over `[z, covariates]`, then a linear layer to `output` parameters.
#[derive(Debug)]
pub struct MlpDecoder {
    body: Mlp,
    out: nn::Linear,
}

impl MlpDecoder {
    pub fn new(
        path: &nn::Path,
        latent_dim: i64,
        n_covariates: i64,
        output: i64,
        config: &MlpConfig,
    ) -> Self {
        let body = Mlp::new(&(path / "body"), latent_dim + n_covariates, config);
        let width = body.out_dim();
        Self {
            out: init::linear(path / "out", width, output),
            body,
        }
    }
}

impl crate::Decoder for MlpDecoder {
    fn decode(&self, z: &Tensor, covariates: Option<&Tensor>, train: bool) -> Tensor {
        self.out
            .forward(&self.body.forward_t(&with_covariates(z, covariates), train))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Decoder;
    use tch::{Device, Kind};

    #[test]
    fn samples_have_the_kl_std_and_the_published_quirk_the_variance() {
        tch::manual_seed(0);
        // variance 4: std 2 (correct), exp(logvar) = 4 (the published code)
        let q = Gaussian {
            mu: Tensor::zeros([200_000, 1], (Kind::Float, Device::Cpu)),
            logvar: Tensor::full([200_000, 1], 4f64.ln(), (Kind::Float, Device::Cpu)),
        };
        let std = |t: Tensor| t.std(true).double_value(&[]);
        assert!((std(q.sample(true)) - 2.0).abs() < 0.02);
        assert!((std(q.sample_published(true)) - 4.0).abs() < 0.04);
        assert_eq!(std(q.sample(false)), 0.0, "the mean outside training");
        assert_eq!(std(q.sample_published(false)), 0.0);
    }

    #[test]
    fn encoder_and_decoder_shapes_with_covariates() {
        tch::manual_seed(1);
        let vs = nn::VarStore::new(Device::Cpu);
        let enc = GaussianEncoder::new(&(vs.root() / "enc"), 10, 2, 3, &MlpConfig::default());
        let dec = MlpDecoder::new(&(vs.root() / "dec"), 3, 2, 10, &MlpConfig::default());
        let x = Tensor::rand([7, 10], (Kind::Float, Device::Cpu));
        let c = Tensor::randn([7, 2], (Kind::Float, Device::Cpu));
        let q = enc.encode(&x, Some(&c), true);
        assert_eq!(q.mu.size(), vec![7, 3]);
        assert_eq!(q.logvar.size(), vec![7, 3]);
        assert_eq!(
            dec.decode(&q.sample(true), Some(&c), true).size(),
            vec![7, 10]
        );
        assert!(q.sample(false).equal(&q.mu));
    }

    #[test]
    fn samples_have_the_encoded_moments() {
        tch::manual_seed(2);
        let mu = Tensor::from_slice(&[1.0f32, -2.0])
            .view([1, 2])
            .expand([20000, 2], false)
            .contiguous();
        let logvar = Tensor::from_slice(&[0.0f32, (4.0f32).ln()])
            .view([1, 2])
            .expand([20000, 2], false)
            .contiguous();
        let s = Gaussian { mu, logvar }.sample(true);
        let mean = Vec::<f32>::try_from(s.mean_dim(0, false, Kind::Float)).unwrap();
        let std = Vec::<f32>::try_from(s.std_dim(0, true, false)).unwrap();
        assert!(
            (mean[0] - 1.0).abs() < 0.05 && (mean[1] + 2.0).abs() < 0.05,
            "{mean:?}"
        );
        assert!(
            (std[0] - 1.0).abs() < 0.05 && (std[1] - 2.0).abs() < 0.05,
            "{std:?}"
        );
    }

    #[test]
    fn xavier_bounds_hold() {
        let vs = nn::VarStore::new(Device::Cpu);
        let lin = init::linear(vs.root() / "l", 100, 50);
        let bound = (6.0f64 / 150.0).sqrt();
        assert!(lin.ws.abs().max().double_value(&[]) <= bound);
        assert!(lin.ws.abs().max().double_value(&[]) > 0.9 * bound);
    }
}
