//! Likelihood heads: the decoder's output layers, from the last hidden layer to the
//! parameters of a distribution over the observed features.
//!
//! The negative log-likelihoods live in `crossomics-losses` (`recon`): the parameters
//! here are named and ordered as those functions take them (`nb_sum(mu, theta, x)`,
//! `zinb_sum(mu, theta, pi_logits, x)`, `poisson_sum(rate, x)`,
//! `gaussian_sum(mean, logvar, x)`, `bernoulli_sum(logits, x)`).

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::mlp::{Mlp, MlpConfig};
use crate::{EncoderError, LikelihoodDecoder, init, with_covariates};

/// The distribution family of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LikelihoodKind {
    /// Binary features (binarized peaks): logits.
    Bernoulli,
    /// Counts: mean and inverse dispersion (NB2, variance `mu + mu^2 / theta`).
    Nb,
    /// Counts with extra zeros: NB plus the logits of the zero-inflation probability.
    Zinb,
    /// Counts: rate.
    Poisson,
    /// Continuous features: mean and log-variance.
    Gaussian,
}

/// How the mean (NB, ZINB) or rate (Poisson) is made positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeanLink {
    /// `softmax` over features (expression proportions, scVI), times the scale
    /// (library size): the mean counts sum to the library size.
    Softmax,
    /// `exp`, clipped to `[mean_min, mean_max]` (BABEL's `MeanAct`), times the scale
    /// (size factor).
    Exp,
}

/// Where the NB/ZINB inverse dispersion `theta` (or the Gaussian log-variance) comes
/// from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dispersion {
    /// One free parameter per feature (scVI's `dispersion = "gene"`).
    Feature,
    /// Per cell and feature, a linear output of the hidden layer (BABEL).
    Cell,
}

/// A head's distribution and parameterisation. Defaults are BABEL's RNA head: NB with
/// mean `clamp(exp(.), 1e-5, 1e6) * size factor` and per-cell `theta =
/// clamp(softplus(.), 1e-4, 1e4)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HeadConfig {
    pub likelihood: LikelihoodKind,
    /// NB, ZINB and Poisson.
    pub mean: MeanLink,
    /// NB and ZINB `theta`, Gaussian log-variance.
    pub dispersion: Dispersion,
    /// `theta = clamp(softplus(.), theta_min, theta_max)`.
    pub theta_min: f64,
    pub theta_max: f64,
    /// Clip of `exp` under [`MeanLink::Exp`], before scaling.
    pub mean_min: f64,
    pub mean_max: f64,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            likelihood: LikelihoodKind::Nb,
            mean: MeanLink::Exp,
            dispersion: Dispersion::Cell,
            theta_min: 1e-4,
            theta_max: 1e4,
            mean_min: 1e-5,
            mean_max: 1e6,
        }
    }
}

impl HeadConfig {
    /// A head of `likelihood` with the other settings at their defaults.
    pub fn of(likelihood: LikelihoodKind) -> Self {
        Self {
            likelihood,
            ..Self::default()
        }
    }

    /// `0 < theta_min < theta_max`, `0 < mean_min < mean_max`.
    pub fn check(&self) -> Result<(), EncoderError> {
        let err = |key, msg| Err(EncoderError::Config { key, msg });
        if !(self.theta_min > 0.0 && self.theta_min < self.theta_max) {
            return err(
                "theta_min",
                format!(
                    "need 0 < theta_min < theta_max, got {} and {}",
                    self.theta_min, self.theta_max
                ),
            );
        }
        if !(self.mean_min > 0.0 && self.mean_min < self.mean_max) {
            return err(
                "mean_min",
                format!(
                    "need 0 < mean_min < mean_max, got {} and {}",
                    self.mean_min, self.mean_max
                ),
            );
        }
        Ok(())
    }
}

/// The parameters a head produced, each `[B, features]` (a per-feature parameter is
/// expanded, without copying, to the batch).
#[derive(Debug)]
pub enum Likelihood {
    Bernoulli {
        logits: Tensor,
    },
    Nb {
        /// Mean counts, already scaled by the library size / size factor; `>= 1e-5 *
        /// scale` under [`MeanLink::Exp`], `>= 0` under [`MeanLink::Softmax`] (a
        /// softmax can underflow to 0: the losses add `EPS` inside their logarithms).
        mu: Tensor,
        /// Inverse dispersion, `> 0`.
        theta: Tensor,
    },
    Zinb {
        mu: Tensor,
        theta: Tensor,
        /// Logits of the zero-inflation probability `pi`.
        pi_logits: Tensor,
    },
    Poisson {
        /// Made positive and scaled like the NB `mu`.
        rate: Tensor,
    },
    Gaussian {
        mean: Tensor,
        /// Clamped to `[-15, 15]`.
        logvar: Tensor,
    },
}

impl Likelihood {
    pub fn kind(&self) -> LikelihoodKind {
        match self {
            Self::Bernoulli { .. } => LikelihoodKind::Bernoulli,
            Self::Nb { .. } => LikelihoodKind::Nb,
            Self::Zinb { .. } => LikelihoodKind::Zinb,
            Self::Poisson { .. } => LikelihoodKind::Poisson,
            Self::Gaussian { .. } => LikelihoodKind::Gaussian,
        }
    }

    /// The parameters by name, in the argument order of the matching loss.
    pub fn params(&self) -> Vec<(&'static str, &Tensor)> {
        match self {
            Self::Bernoulli { logits } => vec![("logits", logits)],
            Self::Nb { mu, theta } => vec![("mu", mu), ("theta", theta)],
            Self::Zinb {
                mu,
                theta,
                pi_logits,
            } => vec![("mu", mu), ("theta", theta), ("pi_logits", pi_logits)],
            Self::Poisson { rate } => vec![("rate", rate)],
            Self::Gaussian { mean, logvar } => vec![("mean", mean), ("logvar", logvar)],
        }
    }

    /// One parameter by name.
    pub fn param(&self, name: &str) -> Option<&Tensor> {
        self.params()
            .into_iter()
            .find_map(|(n, t)| (n == name).then_some(t))
    }

    /// The expected value of the features: `sigmoid(logits)`, `mu`, `(1 - pi) mu`,
    /// `rate`, `mean` (the prediction that cross-modal metrics score).
    pub fn mean(&self) -> Tensor {
        match self {
            Self::Bernoulli { logits } => logits.sigmoid(),
            Self::Nb { mu, .. } => mu.shallow_clone(),
            Self::Zinb { mu, pi_logits, .. } => mu * (-pi_logits).sigmoid(),
            Self::Poisson { rate } => rate.shallow_clone(),
            Self::Gaussian { mean, .. } => mean.shallow_clone(),
        }
    }
}

#[derive(Debug)]
enum Spread {
    None,
    Feature(Tensor),
    Cell(nn::Linear),
}

/// The output layers of one likelihood: Xavier `nn::Linear`s from the hidden width.
///
/// Parameters: `out` (logits, log-mean, mean), then per kind `theta` (NB, ZINB: a
/// linear layer, or a `[features]` vector under [`Dispersion::Feature`]), `pi` (ZINB),
/// `logvar` (Gaussian, linear or `[features]`). The raw theta starts at 0.5413
/// (softplus = 1) under [`Dispersion::Feature`]; the Gaussian log-variance at 0.
#[derive(Debug)]
pub struct LikelihoodHead {
    config: HeadConfig,
    out: nn::Linear,
    spread: Spread,
    pi: Option<nn::Linear>,
    n_features: i64,
}

impl LikelihoodHead {
    pub fn new(
        path: &nn::Path,
        width: i64,
        n_features: i64,
        config: &HeadConfig,
    ) -> Result<Self, EncoderError> {
        config.check()?;
        let kind = config.likelihood;
        let spread_name = match kind {
            LikelihoodKind::Nb | LikelihoodKind::Zinb => Some(("theta", 0.5413)),
            LikelihoodKind::Gaussian => Some(("logvar", 0.0)),
            _ => None,
        };
        let spread = match (spread_name, config.dispersion) {
            (None, _) => Spread::None,
            (Some((name, init)), Dispersion::Feature) => {
                Spread::Feature(path.var(name, &[n_features], nn::Init::Const(init)))
            }
            (Some((name, _)), Dispersion::Cell) => {
                Spread::Cell(init::linear(path / name, width, n_features))
            }
        };
        Ok(Self {
            out: init::linear(path / "out", width, n_features),
            spread,
            pi: (kind == LikelihoodKind::Zinb)
                .then(|| init::linear(path / "pi", width, n_features)),
            config: config.clone(),
            n_features,
        })
    }

    pub fn kind(&self) -> LikelihoodKind {
        self.config.likelihood
    }

    pub fn n_features(&self) -> i64 {
        self.n_features
    }

    /// The parameters for hidden features `h` `[B, width]`. `scale` `[B]` or `[B, 1]`
    /// multiplies the NB/ZINB mean and the Poisson rate: the library size under
    /// [`MeanLink::Softmax`], the size factor under [`MeanLink::Exp`] (BABEL); `None`
    /// means 1. Bernoulli and Gaussian ignore it.
    pub fn forward(&self, h: &Tensor, scale: Option<&Tensor>) -> Likelihood {
        let raw = self.out.forward(h);
        let b = raw.size()[0];
        let spread = |h: &Tensor| match &self.spread {
            Spread::Feature(v) => v.unsqueeze(0).expand([b, self.n_features], false),
            Spread::Cell(lin) => lin.forward(h),
            Spread::None => unreachable!("heads with a theta or logvar are built with one"),
        };
        let theta = |h: &Tensor| {
            spread(h)
                .softplus()
                .clamp(self.config.theta_min, self.config.theta_max)
        };
        let mean = |raw: Tensor| {
            let m = match self.config.mean {
                MeanLink::Softmax => raw.softmax(-1, raw.kind()),
                MeanLink::Exp => raw.exp().clamp(self.config.mean_min, self.config.mean_max),
            };
            match scale {
                Some(s) => m * s.reshape([-1, 1]),
                None => m,
            }
        };
        match self.config.likelihood {
            LikelihoodKind::Bernoulli => Likelihood::Bernoulli { logits: raw },
            LikelihoodKind::Nb => Likelihood::Nb {
                mu: mean(raw),
                theta: theta(h),
            },
            LikelihoodKind::Zinb => Likelihood::Zinb {
                mu: mean(raw),
                theta: theta(h),
                pi_logits: self
                    .pi
                    .as_ref()
                    .expect("ZINB heads are built with a pi layer")
                    .forward(h),
            },
            LikelihoodKind::Poisson => Likelihood::Poisson { rate: mean(raw) },
            LikelihoodKind::Gaussian => Likelihood::Gaussian {
                mean: raw,
                logvar: spread(h).clamp(-15.0, 15.0),
            },
        }
    }
}

/// An MLP over `[z, covariates]` and a [`LikelihoodHead`]: BABEL's RNA decoder
/// (`hidden = [64]`, NB head) or an scVI-style decoder (softmax mean, per-feature theta).
///
/// Parameters: `body/layer{i}/...`, `head/...`.
#[derive(Debug)]
pub struct HeadDecoder {
    body: Mlp,
    head: LikelihoodHead,
}

impl HeadDecoder {
    pub fn new(
        path: &nn::Path,
        latent_dim: i64,
        n_covariates: i64,
        n_features: i64,
        body: &MlpConfig,
        head: &HeadConfig,
    ) -> Result<Self, EncoderError> {
        let body = Mlp::new(&(path / "body"), latent_dim + n_covariates, body);
        let head = LikelihoodHead::new(&(path / "head"), body.out_dim(), n_features, head)?;
        Ok(Self { body, head })
    }

    pub fn head(&self) -> &LikelihoodHead {
        &self.head
    }
}

impl LikelihoodDecoder for HeadDecoder {
    fn decode_likelihood(
        &self,
        z: &Tensor,
        covariates: Option<&Tensor>,
        scale: Option<&Tensor>,
        train: bool,
    ) -> Likelihood {
        let h = self.body.forward_t(&with_covariates(z, covariates), train);
        self.head.forward(&h, scale)
    }
}
