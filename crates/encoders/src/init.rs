//! Weight initialisation.

use tch::nn;

/// Xavier/Glorot uniform: U(-b, b) with b = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010),
/// as SAILERX initialises its linear layers.
pub fn xavier_uniform(fan_in: i64, fan_out: i64) -> nn::Init {
    let bound = (6.0 / (fan_in + fan_out) as f64).sqrt();
    nn::Init::Uniform {
        lo: -bound,
        up: bound,
    }
}

/// A linear layer with Xavier weights and zero bias.
pub fn linear(path: nn::Path, fan_in: i64, fan_out: i64) -> nn::Linear {
    nn::linear(
        path,
        fan_in,
        fan_out,
        nn::LinearConfig {
            ws_init: xavier_uniform(fan_in, fan_out),
            bs_init: Some(nn::Init::Const(0.0)),
            bias: true,
        },
    )
}
