//! Multi-layer perceptron blocks: Linear - Norm - Activation - Dropout, repeated.

use serde::{Deserialize, Serialize};
use tch::Tensor;
use tch::nn::{self, Module, ModuleT};

use crate::init;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Norm {
    Batch,
    Layer,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    /// Learned negative slope, one per layer (initial 0.25), as SAILERX and BABEL use.
    Prelu,
    /// Negative slope 0.2, as SAILER.
    LeakyRelu,
    Relu,
    Gelu,
}

/// Widths and layer types of an MLP; `hidden = [64, 32]` is two hidden layers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpConfig {
    pub hidden: Vec<i64>,
    pub norm: Norm,
    pub activation: Activation,
    pub dropout: f64,
}

impl Default for MlpConfig {
    fn default() -> Self {
        Self {
            hidden: vec![128, 64],
            norm: Norm::Batch,
            activation: Activation::Prelu,
            dropout: 0.0,
        }
    }
}

#[derive(Debug)]
enum NormLayer {
    Batch(nn::BatchNorm),
    Layer(nn::LayerNorm),
    None,
}

#[derive(Debug)]
struct Layer {
    linear: nn::Linear,
    norm: NormLayer,
    prelu: Option<Tensor>,
}

/// The hidden layers of an MLP (no output layer): `input -> hidden[0] -> ... -> hidden[n-1]`.
#[derive(Debug)]
pub struct Mlp {
    layers: Vec<Layer>,
    activation: Activation,
    dropout: f64,
    out_dim: i64,
}

impl Mlp {
    pub fn new(path: &nn::Path, input: i64, config: &MlpConfig) -> Self {
        let mut layers = Vec::with_capacity(config.hidden.len());
        let mut width = input;
        for (i, &h) in config.hidden.iter().enumerate() {
            let p = path / format!("layer{i}");
            let linear = init::linear(&p / "linear", width, h);
            let norm = match config.norm {
                Norm::Batch => {
                    NormLayer::Batch(nn::batch_norm1d(&p / "norm", h, Default::default()))
                }
                Norm::Layer => {
                    NormLayer::Layer(nn::layer_norm(&p / "norm", vec![h], Default::default()))
                }
                Norm::None => NormLayer::None,
            };
            let prelu = (config.activation == Activation::Prelu)
                .then(|| (&p / "prelu").var("weight", &[1], nn::Init::Const(0.25)));
            layers.push(Layer {
                linear,
                norm,
                prelu,
            });
            width = h;
        }
        Self {
            layers,
            activation: config.activation,
            dropout: config.dropout,
            out_dim: width,
        }
    }

    /// Width of the last hidden layer (the input width when there are none).
    pub fn out_dim(&self) -> i64 {
        self.out_dim
    }
}

impl ModuleT for Mlp {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut x = xs.shallow_clone();
        for layer in &self.layers {
            x = layer.linear.forward(&x);
            x = match &layer.norm {
                NormLayer::Batch(bn) => bn.forward_t(&x, train),
                NormLayer::Layer(ln) => ln.forward(&x),
                NormLayer::None => x,
            };
            x = match (self.activation, &layer.prelu) {
                (Activation::Prelu, Some(w)) => x.prelu(w),
                (Activation::LeakyRelu, _) => x.leaky_relu_(),
                (Activation::Relu, _) => x.relu(),
                (Activation::Gelu, _) => x.gelu("none"),
                (Activation::Prelu, None) => unreachable!("PReLU layers are built with a weight"),
            };
            if self.dropout > 0.0 {
                x = x.dropout(self.dropout, train);
            }
        }
        x
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn shapes_and_train_eval_modes() {
        tch::manual_seed(0);
        let vs = nn::VarStore::new(Device::Cpu);
        for norm in [Norm::Batch, Norm::Layer, Norm::None] {
            for activation in [
                Activation::Prelu,
                Activation::LeakyRelu,
                Activation::Relu,
                Activation::Gelu,
            ] {
                let cfg = MlpConfig {
                    hidden: vec![8, 4],
                    norm,
                    activation,
                    dropout: 0.1,
                };
                let mlp = Mlp::new(&(vs.root() / format!("{norm:?}{activation:?}")), 5, &cfg);
                let x = Tensor::randn([6, 5], (Kind::Float, Device::Cpu));
                assert_eq!(mlp.forward_t(&x, true).size(), vec![6, 4]);
                let a = mlp.forward_t(&x, false);
                let b = mlp.forward_t(&x, false);
                assert!(
                    a.allclose(&b, 0.0, 0.0, false),
                    "eval mode must be deterministic"
                );
            }
        }
    }

    #[test]
    fn prelu_matches_its_definition() {
        let vs = nn::VarStore::new(Device::Cpu);
        let cfg = MlpConfig {
            hidden: vec![3],
            norm: Norm::None,
            activation: Activation::Prelu,
            dropout: 0.0,
        };
        let mlp = Mlp::new(&vs.root(), 2, &cfg);
        let x = Tensor::from_slice(&[1.0f32, -2.0, 0.5, 3.0]).view([2, 2]);
        let lin = mlp.layers[0].linear.forward(&x);
        let want = lin.clamp_min(0.0) + 0.25 * lin.clamp_max(0.0);
        assert!(mlp.forward_t(&x, true).allclose(&want, 1e-6, 1e-6, false));
    }

    #[test]
    fn config_rejects_unknown_keys() {
        let err = toml::from_str::<MlpConfig>("hiden = [3]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("hiden"), "{err}");
        let c: MlpConfig = toml::from_str("hidden = [3]\nactivation = \"gelu\"").unwrap();
        assert_eq!(c.activation, Activation::Gelu);
    }
}
