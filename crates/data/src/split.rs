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
    /// BABEL's out-of-distribution split: the cells are clustered (k-means on the RNA PCA,
    /// `n_clusters`, with its own `cluster_seed` so that every run holds out the same
    /// cells), clusters numbered by size (0 the largest), and the cells of
    /// `test_clusters` are the test set; validation is a random part of the rest.
    HeldOutCluster {
        n_clusters: usize,
        test_clusters: Vec<usize>,
        #[serde(default)]
        cluster_seed: u64,
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

/// Cluster labels renumbered by cluster size, largest first (ties by first cell), so that
/// `test_clusters` names the same cells whatever numbering the clustering produced.
pub fn number_by_size(labels: &[usize]) -> Vec<usize> {
    let mut stats: std::collections::HashMap<usize, (usize, usize)> = Default::default();
    for (i, &l) in labels.iter().enumerate() {
        stats.entry(l).or_insert((0, i)).0 += 1;
    }
    let mut order: Vec<(usize, (usize, usize))> = stats.into_iter().collect();
    order.sort_by_key(|&(_, (count, first))| (std::cmp::Reverse(count), first));
    let rank: std::collections::HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(r, &(l, _))| (l, r))
        .collect();
    labels.iter().map(|l| rank[l]).collect()
}

/// Test = cells of the clusters `test_clusters` (labels numbered by [`number_by_size`]);
/// validation a seeded random part of the rest.
pub fn held_out_clusters(
    labels: &[usize],
    test_clusters: &[usize],
    val_fraction: f64,
    seed: u64,
) -> Result<Split> {
    let n_clusters = labels.iter().max().map_or(0, |m| m + 1);
    if let Some(bad) = test_clusters.iter().find(|&&c| c >= n_clusters) {
        return Err(DataError::invalid(
            "held-out cluster split",
            format!(
                "test cluster {bad} does not exist: there are {n_clusters} clusters (0..{n_clusters})"
            ),
        ));
    }
    let groups: Vec<String> = labels.iter().map(usize::to_string).collect();
    let test: Vec<String> = test_clusters.iter().map(usize::to_string).collect();
    held_out(&groups, &test, val_fraction, seed)
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

    #[test]
    fn clusters_are_numbered_by_size_and_held_out_whole() {
        let labels = [7, 3, 3, 9, 3, 7, 9, 9, 9];
        assert_eq!(number_by_size(&labels), vec![2, 1, 1, 0, 1, 2, 0, 0, 0]);
        // equal sizes: the cluster seen first comes first
        assert_eq!(number_by_size(&[5, 1, 1, 5]), vec![0, 1, 1, 0]);
        let numbered = number_by_size(&labels);
        let s = held_out_clusters(&numbered, &[1], 0.0, 0).unwrap();
        assert_eq!(s.test, vec![1, 2, 4]);
        assert_eq!(s.train, vec![0, 3, 5, 6, 7, 8]);
        let err = held_out_clusters(&numbered, &[3], 0.0, 0).unwrap_err();
        assert!(
            err.to_string().contains("test cluster 3 does not exist"),
            "{err}"
        );
        assert!(held_out_clusters(&numbered, &[0, 1, 2], 0.0, 0).is_err());
        let c: SplitConfig =
            toml::from_str("kind = \"held_out_cluster\"\nn_clusters = 8\ntest_clusters = [2]")
                .unwrap();
        assert_eq!(
            c,
            SplitConfig::HeldOutCluster {
                n_clusters: 8,
                test_clusters: vec![2],
                cluster_seed: 0,
                val_fraction: 0.15
            }
        );
    }

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
