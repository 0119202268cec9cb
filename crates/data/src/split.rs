//! Train / validation / test partitions of cells. Validation and test are always
//! disjoint (the published CrossMP code early-stopped on its test set; we never do).

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};

/// Cell indices of each part; every cell is in exactly one part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    pub train: Vec<usize>,
    pub val: Vec<usize>,
    pub test: Vec<usize>,
}

/// How to split, as written in a config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum SplitConfig {
    /// Random cells (the field's 70/15/15 by default).
    Random {
        #[serde(default = "default_val")]
        val_fraction: f64,
        #[serde(default = "default_val")]
        test_fraction: f64,
    },
    /// Cells whose `column` takes one of `test_values` are the test set (held-out
    /// donor batch, time point or cluster); validation is a random part of the rest.
    HeldOut {
        column: String,
        test_values: Vec<String>,
        #[serde(default = "default_val")]
        val_fraction: f64,
    },
}

fn default_val() -> f64 {
    0.15
}

impl Default for SplitConfig {
    fn default() -> Self {
        Self::Random {
            val_fraction: default_val(),
            test_fraction: default_val(),
        }
    }
}

fn check_fraction(name: &str, f: f64) -> Result<()> {
    if !(0.0..1.0).contains(&f) {
        return Err(DataError::invalid(
            format!("split {name}"),
            format!("{f} is not in [0, 1)"),
        ));
    }
    Ok(())
}

/// A seeded random split of `n` cells.
pub fn random(n: usize, val_fraction: f64, test_fraction: f64, seed: u64) -> Result<Split> {
    check_fraction("val_fraction", val_fraction)?;
    check_fraction("test_fraction", test_fraction)?;
    if val_fraction + test_fraction >= 1.0 {
        return Err(DataError::invalid(
            "split",
            format!(
                "val_fraction + test_fraction = {} leaves no training cells",
                val_fraction + test_fraction
            ),
        ));
    }
    let mut cells: Vec<usize> = (0..n).collect();
    cells.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_test = (test_fraction * n as f64).round() as usize;
    let n_val = (val_fraction * n as f64).round() as usize;
    let test = cells[..n_test].to_vec();
    let val = cells[n_test..n_test + n_val].to_vec();
    let train = cells[n_test + n_val..].to_vec();
    finish(train, val, test)
}

/// Test = cells whose group is in `test_groups`; validation a seeded random part of the rest.
pub fn held_out(
    groups: &[String],
    test_groups: &[String],
    val_fraction: f64,
    seed: u64,
) -> Result<Split> {
    check_fraction("val_fraction", val_fraction)?;
    let (test, mut rest): (Vec<usize>, Vec<usize>) =
        (0..groups.len()).partition(|&i| test_groups.contains(&groups[i]));
    if test.is_empty() {
        return Err(DataError::invalid(
            "held-out split",
            format!("no cell has any of the test values {test_groups:?}"),
        ));
    }
    rest.shuffle(&mut ChaCha8Rng::seed_from_u64(seed));
    let n_val = (val_fraction * rest.len() as f64).round() as usize;
    let val = rest[..n_val].to_vec();
    let train = rest[n_val..].to_vec();
    finish(train, val, test)
}

fn finish(mut train: Vec<usize>, mut val: Vec<usize>, mut test: Vec<usize>) -> Result<Split> {
    if train.is_empty() {
        return Err(DataError::invalid("split", "no training cells"));
    }
    train.sort_unstable();
    val.sort_unstable();
    test.sort_unstable();
    Ok(Split { train, val, test })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn random_split_is_a_partition(n in 2usize..300, v in 0.0f64..0.4, t in 0.0f64..0.4, seed in 0u64..1000) {
            let n_test = (t * n as f64).round() as usize;
            let n_val = (v * n as f64).round() as usize;
            let result = random(n, v, t, seed);
            if n_test + n_val >= n {
                // rounding leaves no training cell: a clear error, not an empty split
                prop_assert!(result.is_err());
                return Ok(());
            }
            let s = result.unwrap();
            prop_assert_eq!((s.test.len(), s.val.len()), (n_test, n_val));
            let mut all: Vec<usize> = s.train.iter().chain(&s.val).chain(&s.test).copied().collect();
            all.sort_unstable();
            prop_assert_eq!(all, (0..n).collect::<Vec<_>>());
            prop_assert_eq!(random(n, v, t, seed).unwrap(), s);
        }
    }

    #[test]
    fn held_out_keeps_the_group_out_of_training() {
        let groups: Vec<String> = ["a", "b", "a", "b", "c"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let s = held_out(&groups, &["b".into()], 0.0, 1).unwrap();
        assert_eq!(s.test, vec![1, 3]);
        assert_eq!(s.train, vec![0, 2, 4]);
        assert!(held_out(&groups, &["z".into()], 0.1, 1).is_err());
        assert!(random(10, 0.5, 0.5, 0).is_err());
    }
}
