//! Agreement between two labelings (ARI, NMI, AMI) and k-means.
//!
//! Labels are arbitrary `usize` codes; only equality matters, so every score here is
//! invariant to renaming either labeling. Graph clustering (Leiden, Louvain and the
//! resolution search) lives in [`crate::community`] and is re-exported here.

use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::MetricError;
use crate::util::{check_len, dense_codes, ln_factorial, row, sq_dist, to_f64};

pub use crate::community::{
    ClusterParams, CommunityResult, GraphAlgorithm, ResolutionSearch, WeightedGraph, leiden,
    louvain, modularity, search_resolution,
};

/// Sparse contingency table of two labelings.
#[derive(Debug, Clone)]
pub struct Contingency {
    /// Number of items.
    pub n: u64,
    /// Class sizes of the first labeling (rows), in increasing label order.
    pub row_sums: Vec<u64>,
    /// Cluster sizes of the second labeling (columns), in increasing label order.
    pub col_sums: Vec<u64>,
    /// Non-zero cells `(row, col, count)`.
    pub cells: Vec<(usize, usize, u64)>,
}

impl Contingency {
    /// Builds the table; errors on different lengths or no items.
    pub fn new(labels_true: &[usize], labels_pred: &[usize]) -> Result<Self, MetricError> {
        check_len("labels_pred", labels_true.len(), labels_pred.len())?;
        if labels_true.is_empty() {
            return Err(MetricError::Empty { what: "labels" });
        }
        let (r, nr) = dense_codes(labels_true);
        let (c, nc) = dense_codes(labels_pred);
        let mut row_sums = vec![0u64; nr];
        let mut col_sums = vec![0u64; nc];
        let mut keys: Vec<u64> = r
            .iter()
            .zip(&c)
            .map(|(&i, &j)| {
                row_sums[i] += 1;
                col_sums[j] += 1;
                (i as u64) * (nc as u64) + j as u64
            })
            .collect();
        keys.sort_unstable();
        let mut cells = Vec::new();
        let mut s = 0;
        while s < keys.len() {
            let mut e = s + 1;
            while e < keys.len() && keys[e] == keys[s] {
                e += 1;
            }
            let k = keys[s];
            cells.push((
                (k / nc as u64) as usize,
                (k % nc as u64) as usize,
                (e - s) as u64,
            ));
            s = e;
        }
        Ok(Self {
            n: labels_true.len() as u64,
            row_sums,
            col_sums,
            cells,
        })
    }

    /// Mutual information in nats, as `sklearn.metrics.mutual_info_score`
    /// (0 when either labeling has a single class; negative round-off clipped to 0).
    pub fn mutual_info(&self) -> f64 {
        if self.row_sums.len() == 1 || self.col_sums.len() == 1 {
            return 0.0;
        }
        let n = self.n as f64;
        let mut mi = 0.0;
        for &(i, j, nij) in &self.cells {
            let nij = nij as f64;
            let a = self.row_sums[i] as f64;
            let b = self.col_sums[j] as f64;
            let term = nij / n * ((n * nij).ln() - (a * b).ln());
            if term.abs() >= f64::EPSILON {
                mi += term;
            }
        }
        mi.max(0.0)
    }

    /// Entropies (nats) of the row and column labelings.
    pub fn entropies(&self) -> (f64, f64) {
        (
            entropy(&self.row_sums, self.n),
            entropy(&self.col_sums, self.n),
        )
    }

    /// Expected mutual information under the hypergeometric (permutation) model,
    /// as sklearn's `expected_mutual_information` (Vinh, Epps & Bailey 2010, eq. 24a):
    /// `EMI = sum_ij sum_nij nij/N log(N nij / (a_i b_j)) * a_i! b_j! (N-a_i)! (N-b_j)! /
    /// (N! nij! (a_i-nij)! (b_j-nij)! (N-a_i-b_j+nij)!)`, factorials in log space.
    pub fn expected_mutual_info(&self) -> f64 {
        if self.row_sums.len() == 1 || self.col_sums.len() == 1 {
            return 0.0;
        }
        let n = self.n;
        let nf = n as f64;
        let ln_n_fact = ln_factorial(n);
        let mut emi = 0.0;
        for &a in &self.row_sums {
            let ln_a = (a as f64).ln();
            let fa = ln_factorial(a) + ln_factorial(n - a);
            for &b in &self.col_sums {
                let ln_b = (b as f64).ln();
                let fab = fa + ln_factorial(b) + ln_factorial(n - b) - ln_n_fact;
                let start = (a + b).saturating_sub(n).max(1);
                let end = a.min(b);
                for nij in start..=end {
                    let x = nij as f64;
                    let term2 = nf.ln() + x.ln() - ln_a - ln_b;
                    let gln = fab
                        - ln_factorial(nij)
                        - ln_factorial(a - nij)
                        - ln_factorial(b - nij)
                        - ln_factorial(n + nij - a - b);
                    emi += x / nf * term2 * gln.exp();
                }
            }
        }
        emi
    }
}

fn entropy(counts: &[u64], n: u64) -> f64 {
    if counts.len() <= 1 {
        return 0.0;
    }
    let n = n as f64;
    -counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let c = c as f64;
            c / n * (c.ln() - n.ln())
        })
        .sum::<f64>()
}

/// Adjusted Rand index (Hubert & Arabie 1985).
///
/// With pair counts from the contingency table,
/// `ARI = (sum_ij C(n_ij,2) - E) / (1/2 (sum_i C(a_i,2) + sum_j C(b_j,2)) - E)`,
/// `E = sum_i C(a_i,2) sum_j C(b_j,2) / C(n,2)`; computed exactly in integers via the
/// pair confusion matrix as `sklearn.metrics.adjusted_rand_score` (1.0 when both
/// labelings put every pair the same way, e.g. one item or identical partitions).
/// Range [-0.5, 1]; 0 is chance.
pub fn adjusted_rand_index(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, MetricError> {
    let c = Contingency::new(labels_true, labels_pred)?;
    let n = i128::from(c.n);
    let sum_sq: i128 = c
        .cells
        .iter()
        .map(|&(_, _, v)| i128::from(v) * i128::from(v))
        .sum();
    // ordered pairs: same in pred but not in true (fp) etc., as sklearn's pair_confusion_matrix
    let sum_a2: i128 = c
        .row_sums
        .iter()
        .map(|&a| i128::from(a) * i128::from(a))
        .sum();
    let sum_b2: i128 = c
        .col_sums
        .iter()
        .map(|&b| i128::from(b) * i128::from(b))
        .sum();
    let tp = sum_sq - n;
    let fp = sum_b2 - sum_sq;
    let fneg = sum_a2 - sum_sq;
    let tn = n * n - fp - fneg - sum_sq;
    if fneg == 0 && fp == 0 {
        return Ok(1.0);
    }
    let (tp, fp, fneg, tn) = (tp as f64, fp as f64, fneg as f64, tn as f64);
    Ok(2.0 * (tp * tn - fneg * fp) / ((tp + fneg) * (fneg + tn) + (tp + fp) * (fp + tn)))
}

/// Normalized mutual information with arithmetic-mean normalisation,
/// `NMI = MI / ((H(true) + H(pred)) / 2)`, as `sklearn.metrics.normalized_mutual_info_score`
/// with its default `average_method="arithmetic"`.
///
/// Both labelings with a single class: 1.0 (a perfect match, as sklearn). Otherwise
/// MI = 0 gives 0.0. Range [0, 1].
pub fn normalized_mutual_info(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, MetricError> {
    let c = Contingency::new(labels_true, labels_pred)?;
    if c.row_sums.len() == 1 && c.col_sums.len() == 1 {
        return Ok(1.0);
    }
    let mi = c.mutual_info();
    if mi == 0.0 {
        return Ok(0.0);
    }
    let (ht, hp) = c.entropies();
    Ok(mi / (0.5 * (ht + hp)))
}

/// Adjusted mutual information (Vinh, Epps & Bailey 2010) with arithmetic-mean
/// normalisation: `AMI = (MI - EMI) / ((H(true) + H(pred)) / 2 - EMI)`, EMI from
/// [`Contingency::expected_mutual_info`], exactly as `sklearn.metrics.adjusted_mutual_info_score`
/// (default `average_method="arithmetic"`), including its guard that keeps the denominator's
/// sign with magnitude at least machine epsilon.
///
/// Both labelings with a single class: 1.0 (as sklearn). Both labelings with every item in
/// its own class: 1.0 as well; there `EMI = MI = H`, the score is 0/0 and sklearn returns
/// rounding noise (0.0 for n = 2 or 4, 1.0 for n = 3 or 5). 0 is chance, 1 is a perfect match.
pub fn adjusted_mutual_info(
    labels_true: &[usize],
    labels_pred: &[usize],
) -> Result<f64, MetricError> {
    let c = Contingency::new(labels_true, labels_pred)?;
    let n = labels_true.len();
    let both_single = c.row_sums.len() == 1 && c.col_sums.len() == 1;
    let both_singletons = c.row_sums.len() == n && c.col_sums.len() == n;
    if both_single || both_singletons {
        return Ok(1.0);
    }
    let mi = c.mutual_info();
    let emi = c.expected_mutual_info();
    let (ht, hp) = c.entropies();
    let mut denom = 0.5 * (ht + hp) - emi;
    if denom < 0.0 {
        denom = denom.min(-f64::EPSILON);
    } else {
        denom = denom.max(f64::EPSILON);
    }
    Ok((mi - emi) / denom)
}

/// Settings of [`kmeans_with`]; defaults follow `sklearn.cluster.KMeans` with
/// `n_init=10` (the classic default).
#[derive(Debug, Clone, PartialEq)]
pub struct KMeansParams {
    /// Number of clusters.
    pub k: usize,
    /// Independent k-means++ restarts; the lowest-inertia run wins.
    pub n_init: usize,
    /// Maximum Lloyd iterations per restart.
    pub max_iter: usize,
    /// Convergence when the summed squared centre shift is at most
    /// `tol * mean per-feature variance of x` (sklearn's relative tolerance).
    pub tol: f64,
    /// Seed of the ChaCha8 generator driving every restart.
    pub seed: u64,
}

impl KMeansParams {
    /// sklearn defaults for `k` clusters and a seed.
    pub fn new(k: usize, seed: u64) -> Self {
        Self {
            k,
            n_init: 10,
            max_iter: 300,
            tol: 1e-4,
            seed,
        }
    }
}

/// Result of [`kmeans_with`].
#[derive(Debug, Clone)]
pub struct KMeansResult {
    /// Cluster of each row, in `0..k`.
    pub labels: Vec<usize>,
    /// Centres, `k x dims`.
    pub centroids: Array2<f64>,
    /// Sum of squared distances of rows to their centre.
    pub inertia: f64,
    /// Lloyd iterations of the winning restart.
    pub n_iter: usize,
}

/// k-means with sklearn's defaults (k-means++ init, Lloyd, 10 restarts); returns labels.
///
/// See [`kmeans_with`] for the algorithm and errors.
pub fn kmeans(x: ArrayView2<f32>, k: usize, seed: u64) -> Result<Vec<usize>, MetricError> {
    Ok(kmeans_with(x, &KMeansParams::new(k, seed))?.labels)
}

/// k-means minimising the within-cluster sum of squares.
///
/// Each restart seeds with greedy k-means++ (Arthur & Vassilvitskii 2007, with
/// `2 + floor(ln k)` candidate centres per step as `sklearn.cluster.kmeans_plusplus`),
/// then runs Lloyd iterations (assignment ties go to the lower cluster index; an empty
/// cluster is moved to the point farthest from its centre) until the summed squared
/// centre shift falls below the relative tolerance. A final assignment step makes labels
/// consistent with centres. Deterministic for a given seed (ChaCha8Rng).
///
/// Errors: `k == 0` or `k > n` (InvalidParameter), empty or non-finite `x`.
/// Fewer than `k` distinct rows is allowed: some clusters then stay empty.
pub fn kmeans_with(x: ArrayView2<f32>, params: &KMeansParams) -> Result<KMeansResult, MetricError> {
    let x = to_f64("x", x)?;
    let n = x.nrows();
    let k = params.k;
    if k == 0 || k > n {
        return Err(MetricError::invalid(
            "k",
            format!("must be in 1..={n}, got {k}"),
        ));
    }
    if params.n_init == 0 {
        return Err(MetricError::invalid("n_init", "must be at least 1"));
    }
    if params.tol.is_nan() || params.tol < 0.0 {
        return Err(MetricError::invalid("tol", "must be non-negative"));
    }
    let d = x.ncols();
    let mean_var = x.var_axis(ndarray::Axis(0), 0.0).mean().unwrap_or(0.0);
    let tol = params.tol * mean_var;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let mut best: Option<KMeansResult> = None;
    for _ in 0..params.n_init {
        let mut centers = kmeans_plusplus(&x, k, &mut rng);
        let mut labels = vec![0usize; n];
        let mut dists = vec![0.0f64; n];
        let mut n_iter = 0;
        for it in 0..params.max_iter.max(1) {
            n_iter = it + 1;
            assign(&x, &centers, &mut labels, &mut dists);
            let mut new = Array2::<f64>::zeros((k, d));
            let mut counts = vec![0usize; k];
            for i in 0..n {
                counts[labels[i]] += 1;
                let mut c = new.row_mut(labels[i]);
                for (cv, xv) in c.iter_mut().zip(row(&x, i)) {
                    *cv += xv;
                }
            }
            let mut taken = vec![false; n];
            for (c, &count) in counts.iter().enumerate() {
                if count > 0 {
                    let inv = 1.0 / count as f64;
                    new.row_mut(c).mapv_inplace(|v| v * inv);
                } else {
                    // relocate an empty cluster to the farthest point not used yet
                    let far = (0..n)
                        .filter(|&i| !taken[i])
                        .max_by(|&a, &b| dists[a].total_cmp(&dists[b]).then(b.cmp(&a)))
                        .unwrap_or(0);
                    taken[far] = true;
                    new.row_mut(c).assign(&x.row(far));
                }
            }
            let shift: f64 = (&new - &centers).mapv(|v| v * v).sum();
            centers = new;
            if shift <= tol {
                break;
            }
        }
        assign(&x, &centers, &mut labels, &mut dists);
        let inertia: f64 = dists.iter().sum();
        if best.as_ref().is_none_or(|b| inertia < b.inertia) {
            best = Some(KMeansResult {
                labels,
                centroids: centers,
                inertia,
                n_iter,
            });
        }
    }
    Ok(best.expect("n_init >= 1"))
}

fn assign(x: &Array2<f64>, centers: &Array2<f64>, labels: &mut [usize], dists: &mut [f64]) {
    let k = centers.nrows();
    let cs = centers.as_standard_layout();
    let cs = cs.as_slice().expect("standard layout");
    let d = x.ncols();
    for i in 0..x.nrows() {
        let xi = row(x, i);
        let mut best = (f64::INFINITY, 0usize);
        for c in 0..k {
            let dist = sq_dist(xi, &cs[c * d..(c + 1) * d]);
            if dist < best.0 {
                best = (dist, c);
            }
        }
        labels[i] = best.1;
        dists[i] = best.0;
    }
}

/// Greedy k-means++ seeding as `sklearn.cluster.kmeans_plusplus`.
fn kmeans_plusplus(x: &Array2<f64>, k: usize, rng: &mut ChaCha8Rng) -> Array2<f64> {
    let n = x.nrows();
    let d = x.ncols();
    let n_trials = 2 + (k as f64).ln().floor() as usize;
    let mut centers = Array2::<f64>::zeros((k, d));
    let first = rng.gen_range(0..n);
    centers.row_mut(0).assign(&x.row(first));
    let mut closest: Vec<f64> = (0..n).map(|i| sq_dist(row(x, i), row(x, first))).collect();
    let mut cand_d = vec![0.0f64; n];
    let mut best_d = vec![0.0f64; n];
    for c in 1..k {
        let pot: f64 = closest.iter().sum();
        let mut best_pot = f64::INFINITY;
        let mut best_idx = 0;
        for _ in 0..n_trials {
            let idx = if pot > 0.0 {
                let r = rng.r#gen::<f64>() * pot;
                let mut acc = 0.0;
                let mut pick = n - 1;
                for (i, &v) in closest.iter().enumerate() {
                    acc += v;
                    if acc > r {
                        pick = i;
                        break;
                    }
                }
                pick
            } else {
                rng.gen_range(0..n)
            };
            let mut p = 0.0;
            for i in 0..n {
                cand_d[i] = closest[i].min(sq_dist(row(x, i), row(x, idx)));
                p += cand_d[i];
            }
            if p < best_pot {
                best_pot = p;
                best_idx = idx;
                best_d.copy_from_slice(&cand_d);
            }
        }
        centers.row_mut(c).assign(&x.row(best_idx));
        closest.copy_from_slice(&best_d);
    }
    centers
}

#[cfg(test)]
mod tests {
    use super::*;
    use approx::assert_abs_diff_eq;
    use ndarray::array;

    #[test]
    fn ari_known_values() {
        // sklearn: adjusted_rand_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
        assert_abs_diff_eq!(
            adjusted_rand_index(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap(),
            0.5714285714285715,
            epsilon = 1e-12
        );
        // sklearn: adjusted_rand_score([0,0,1,2],[0,0,1,1]) = 0.5714285714285715
        assert_abs_diff_eq!(
            adjusted_rand_index(&[0, 0, 1, 2], &[0, 0, 1, 1]).unwrap(),
            0.5714285714285715,
            epsilon = 1e-12
        );
        // sklearn: adjusted_rand_score([0,0,0,0],[0,1,2,3]) = 0.0
        assert_eq!(
            adjusted_rand_index(&[0, 0, 0, 0], &[0, 1, 2, 3]).unwrap(),
            0.0
        );
        // sklearn: adjusted_rand_score([0,0,1,1],[0,1,0,1]) = -0.5
        assert_abs_diff_eq!(
            adjusted_rand_index(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap(),
            -0.5,
            epsilon = 1e-12
        );
    }

    #[test]
    fn nmi_ami_known_values() {
        // sklearn: normalized_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.8
        assert_abs_diff_eq!(
            normalized_mutual_info(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap(),
            0.8,
            epsilon = 1e-12
        );
        // sklearn: adjusted_mutual_info_score([0,0,1,1],[0,0,1,2]) = 0.5714285714285715
        let ami = adjusted_mutual_info(&[0, 0, 1, 1], &[0, 0, 1, 2]).unwrap();
        assert_abs_diff_eq!(ami, 0.5714285714285715, epsilon = 1e-12);
        // sklearn: adjusted_mutual_info_score([0,0,1,1],[0,1,0,1]) = -0.49999999999999944
        let ami = adjusted_mutual_info(&[0, 0, 1, 1], &[0, 1, 0, 1]).unwrap();
        assert_abs_diff_eq!(ami, -0.5, epsilon = 1e-12);
    }

    #[test]
    fn degenerate_labelings() {
        assert_eq!(
            adjusted_rand_index(&[], &[]),
            Err(MetricError::Empty { what: "labels" })
        );
        assert!(matches!(
            normalized_mutual_info(&[0, 1], &[0]),
            Err(MetricError::LengthMismatch { .. })
        ));
        // one item: perfect by definition
        assert_eq!(adjusted_rand_index(&[4], &[9]).unwrap(), 1.0);
        assert_eq!(normalized_mutual_info(&[4], &[9]).unwrap(), 1.0);
        assert_eq!(adjusted_mutual_info(&[4], &[9]).unwrap(), 1.0);
        // both a single cluster: 1.0 (sklearn)
        assert_eq!(adjusted_rand_index(&[1, 1, 1], &[2, 2, 2]).unwrap(), 1.0);
        assert_eq!(normalized_mutual_info(&[1, 1, 1], &[2, 2, 2]).unwrap(), 1.0);
        assert_eq!(adjusted_mutual_info(&[1, 1, 1], &[2, 2, 2]).unwrap(), 1.0);
        // one side a single cluster, the other not: no information
        assert_eq!(normalized_mutual_info(&[1, 1, 1], &[0, 1, 2]).unwrap(), 0.0);
        assert_eq!(
            adjusted_mutual_info(&[1, 1, 1, 1], &[0, 1, 2, 2]).unwrap(),
            0.0
        );
        // every item its own cluster on both sides
        assert_eq!(adjusted_rand_index(&[0, 1, 2], &[5, 6, 7]).unwrap(), 1.0);
        assert_abs_diff_eq!(
            normalized_mutual_info(&[0, 1, 2], &[5, 6, 7]).unwrap(),
            1.0,
            epsilon = 1e-12
        );
        assert_abs_diff_eq!(
            adjusted_mutual_info(&[0, 1, 2], &[5, 6, 7]).unwrap(),
            1.0,
            epsilon = 1e-12
        );
    }

    #[test]
    fn kmeans_separates_blobs() {
        let x = array![
            [0.0f32, 0.0],
            [0.1, 0.0],
            [0.0, 0.1],
            [10.0, 10.0],
            [10.1, 10.0],
            [10.0, 10.1],
            [-10.0, 10.0],
            [-10.1, 10.0]
        ];
        let l = kmeans(x.view(), 3, 7).unwrap();
        assert_eq!(
            adjusted_rand_index(&l, &[0, 0, 0, 1, 1, 1, 2, 2]).unwrap(),
            1.0
        );
        // deterministic for a seed
        assert_eq!(l, kmeans(x.view(), 3, 7).unwrap());
        let r = kmeans_with(x.view(), &KMeansParams::new(3, 1)).unwrap();
        assert!(r.inertia < 0.1);
    }

    #[test]
    fn kmeans_degenerate_inputs() {
        let x = array![[1.0f32, 1.0], [1.0, 1.0], [1.0, 1.0]];
        // identical points: defined result, no panic
        let l = kmeans(x.view(), 2, 0).unwrap();
        assert_eq!(l.len(), 3);
        assert!(matches!(
            kmeans(x.view(), 0, 0),
            Err(MetricError::InvalidParameter { name: "k", .. })
        ));
        assert!(matches!(
            kmeans(x.view(), 4, 0),
            Err(MetricError::InvalidParameter { name: "k", .. })
        ));
        let bad = array![[1.0f32], [f32::NAN]];
        assert_eq!(
            kmeans(bad.view(), 1, 0),
            Err(MetricError::NonFinite { what: "x", row: 1 })
        );
        let empty = Array2::<f32>::zeros((0, 2));
        assert!(matches!(
            kmeans(empty.view(), 1, 0),
            Err(MetricError::Empty { .. })
        ));
        let one = array![[3.0f32, 4.0]];
        assert_eq!(kmeans(one.view(), 1, 0).unwrap(), vec![0]);
    }
}
