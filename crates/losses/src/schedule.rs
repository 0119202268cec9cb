//! KL weight schedules.

use serde::{Deserialize, Serialize};

/// How the KL weight `w_kl` evolves with the training step `t`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum KlSchedule {
    Constant {
        weight: f64,
    },
    /// `min(t / warmup_steps, 1) * weight`.
    Linear {
        warmup_steps: u64,
        weight: f64,
    },
    /// SAILERX: `min(2 (t mod period) / period, 1)`: rises over half a cycle, then holds
    /// (Fu et al. 2019, cyclical annealing).
    Cyclical {
        period_steps: u64,
    },
}

impl KlSchedule {
    pub fn weight(&self, step: u64) -> f64 {
        match *self {
            Self::Constant { weight } => weight,
            Self::Linear {
                warmup_steps,
                weight,
            } => {
                if warmup_steps == 0 {
                    weight
                } else {
                    weight * (step as f64 / warmup_steps as f64).min(1.0)
                }
            }
            Self::Cyclical { period_steps } => {
                let c = period_steps.max(1);
                (2.0 * (step % c) as f64 / c as f64).min(1.0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_follow_their_formulas() {
        let c = KlSchedule::Cyclical { period_steps: 100 };
        assert_eq!(c.weight(0), 0.0);
        assert_eq!(c.weight(25), 0.5);
        assert_eq!(c.weight(50), 1.0);
        assert_eq!(c.weight(99), 1.0);
        assert_eq!(c.weight(100), 0.0);
        let l = KlSchedule::Linear {
            warmup_steps: 10,
            weight: 2.0,
        };
        assert_eq!(l.weight(5), 1.0);
        assert_eq!(l.weight(50), 2.0);
        assert_eq!(KlSchedule::Constant { weight: 0.3 }.weight(7), 0.3);
    }
}
