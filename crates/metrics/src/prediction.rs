//! Cross-modal prediction scores: RNA (correlations, RMSE, MAE) and ATAC (AUROC, AUPRC).
//!
//! Inputs are `truth` and `pred`, cells x features (genes or peaks), same shape.
//! Every score can be taken three ways ([`Along`]): over the flattened matrix (BABEL's
//! number), per cell (mean over cells) or per feature (mean over genes/peaks). A row or
//! column on which the score is undefined (constant vector for a correlation; only
//! negatives or only positives for AUROC/AUPRC) is skipped and counted in
//! [`Score::n_skipped`], never turned into NaN.

use ndarray::{ArrayView1, ArrayView2, Axis};

use crate::MetricError;
use crate::util::{average_ranks, check_finite};

/// How a matrix score is aggregated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Along {
    /// One score over all `cells x features` entries.
    Flattened,
    /// One score per cell (row), averaged.
    PerCell,
    /// One score per feature (column), averaged.
    PerFeature,
}

/// An averaged score and how many vectors it covers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Mean of the per-vector scores (the single score for [`Along::Flattened`]).
    pub value: f64,
    /// Vectors scored (1 for flattened).
    pub n_scored: usize,
    /// Vectors skipped because the score is undefined on them.
    pub n_skipped: usize,
}

fn validate(truth: ArrayView2<f32>, pred: ArrayView2<f32>) -> Result<(), MetricError> {
    if truth.nrows() == 0 || truth.ncols() == 0 {
        return Err(MetricError::Empty { what: "truth" });
    }
    if pred.nrows() != truth.nrows() {
        return Err(MetricError::LengthMismatch {
            what: "pred rows",
            expected: truth.nrows(),
            got: pred.nrows(),
        });
    }
    if pred.ncols() != truth.ncols() {
        return Err(MetricError::DimensionMismatch {
            what: "pred",
            expected: truth.ncols(),
            got: pred.ncols(),
        });
    }
    check_finite("truth", truth)?;
    check_finite("pred", pred)
}

/// The running mean of per-vector scores; vectors where the score is undefined (`None`)
/// are counted apart.
#[derive(Debug, Default)]
struct Tally {
    sum: f64,
    n_scored: usize,
    n_skipped: usize,
}

impl Tally {
    fn add(&mut self, s: Option<f64>) {
        match s {
            Some(v) => {
                self.sum += v;
                self.n_scored += 1;
            }
            None => self.n_skipped += 1,
        }
    }

    /// The mean, or an error (naming the score `name`) when no vector was scored.
    fn finish(self, name: &str, along: Along) -> Result<Score, MetricError> {
        if self.n_scored == 0 {
            return Err(MetricError::degenerate(format!(
                "{name} {along:?}: undefined on every vector ({} skipped)",
                self.n_skipped
            )));
        }
        Ok(Score {
            value: self.sum / self.n_scored as f64,
            n_scored: self.n_scored,
            n_skipped: self.n_skipped,
        })
    }
}

/// The axis whose lanes are the vectors scored one by one: rows per cell, columns per
/// feature.
fn lane_axis(along: Along) -> Axis {
    if along == Along::PerCell {
        Axis(0)
    } else {
        Axis(1)
    }
}

/// Applies `f` (None = undefined) along `along` and averages.
fn aggregate(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    along: Along,
    name: &str,
    f: impl Fn(&[f64], &[f64]) -> Option<f64>,
) -> Result<Score, MetricError> {
    validate(truth, pred)?;
    let to_vec = |v: ArrayView1<f32>| v.iter().map(|&x| f64::from(x)).collect::<Vec<f64>>();
    let mut tally = Tally::default();
    match along {
        Along::Flattened => {
            let t: Vec<f64> = truth.iter().map(|&x| f64::from(x)).collect();
            let p: Vec<f64> = pred.iter().map(|&x| f64::from(x)).collect();
            tally.add(f(&t, &p));
        }
        Along::PerCell | Along::PerFeature => {
            let ax = lane_axis(along);
            for (t, p) in truth.axis_iter(ax).zip(pred.axis_iter(ax)) {
                tally.add(f(&to_vec(t), &to_vec(p)));
            }
        }
    }
    tally.finish(name, along)
}

fn is_constant(x: &[f64]) -> bool {
    x.iter().all(|&v| v == x[0])
}

/// Pearson correlation of two equal-length slices; `None` if either is constant or has
/// fewer than 2 entries (where `scipy.stats.pearsonr` gives NaN). Two-pass, f64, clipped to [-1, 1].
pub fn pearson_slices(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || is_constant(x) || is_constant(y) {
        return None;
    }
    let n = x.len() as f64;
    let mx = x.iter().sum::<f64>() / n;
    let my = y.iter().sum::<f64>() / n;
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mx, b - my);
        sxy += da * db;
        sxx += da * da;
        syy += db * db;
    }
    if sxx <= 0.0 || syy <= 0.0 {
        return None;
    }
    Some((sxy / (sxx * syy).sqrt()).clamp(-1.0, 1.0))
}

/// Spearman correlation: Pearson of average ranks (ties share their mean rank), as
/// `scipy.stats.spearmanr`; `None` where undefined (constant input).
pub fn spearman_slices(x: &[f64], y: &[f64]) -> Option<f64> {
    if x.len() != y.len() || x.len() < 2 || is_constant(x) || is_constant(y) {
        return None;
    }
    pearson_slices(&average_ranks(x), &average_ranks(y))
}

/// Pearson correlation between truth and prediction along `along`
/// (`scipy.stats.pearsonr`, constant vectors skipped). Errors: shape mismatch, empty or
/// non-finite input, or every vector undefined (Degenerate).
pub fn pearson(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    along: Along,
) -> Result<Score, MetricError> {
    aggregate(truth, pred, along, "pearson", pearson_slices)
}

/// Spearman rank correlation along `along` (`scipy.stats.spearmanr`, average ranks for
/// ties, constant vectors skipped). Errors as [`pearson`].
pub fn spearman(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    along: Along,
) -> Result<Score, MetricError> {
    aggregate(truth, pred, along, "spearman", spearman_slices)
}

/// Root mean squared error over all entries, `sqrt(mean((pred - truth)^2))`, as
/// `sqrt(sklearn.metrics.mean_squared_error(truth.ravel(), pred.ravel()))` and the NeurIPS
/// 2021 predict-modality RMSE.
pub fn rmse(truth: ArrayView2<f32>, pred: ArrayView2<f32>) -> Result<f64, MetricError> {
    validate(truth, pred)?;
    let s: f64 = truth
        .iter()
        .zip(pred.iter())
        .map(|(&t, &p)| (f64::from(p) - f64::from(t)).powi(2))
        .sum();
    Ok((s / truth.len() as f64).sqrt())
}

/// Mean absolute error over all entries, as `sklearn.metrics.mean_absolute_error` on the
/// flattened matrices.
pub fn mae(truth: ArrayView2<f32>, pred: ArrayView2<f32>) -> Result<f64, MetricError> {
    validate(truth, pred)?;
    let s: f64 = truth
        .iter()
        .zip(pred.iter())
        .map(|(&t, &p)| (f64::from(p) - f64::from(t)).abs())
        .sum();
    Ok(s / truth.len() as f64)
}

/// Area under the ROC curve of scores against binary truth (`truth > 0` is positive), as
/// `sklearn.metrics.roc_auc_score`: the Mann-Whitney statistic
/// `(sum of positive ranks - P(P+1)/2) / (P N)` with average ranks for tied scores
/// (a tie counts one half). `None` without both classes.
pub fn auroc_slices(truth: &[f64], scores: &[f64]) -> Option<f64> {
    let npos = truth.iter().filter(|&&t| t > 0.0).count();
    let nneg = truth.len() - npos;
    if npos == 0 || nneg == 0 || truth.len() != scores.len() {
        return None;
    }
    let ranks = average_ranks(scores);
    let rpos: f64 = ranks
        .iter()
        .zip(truth)
        .filter(|(_, t)| **t > 0.0)
        .map(|(r, _)| r)
        .sum();
    let (p, n) = (npos as f64, nneg as f64);
    Some((rpos - p * (p + 1.0) / 2.0) / (p * n))
}

/// Average precision (`truth > 0` is positive), as `sklearn.metrics.average_precision_score`:
/// `AP = sum_t (R_t - R_{t-1}) P_t` over the distinct score thresholds in decreasing order,
/// tied scores entering together (no interpolation). `None` without both classes.
pub fn average_precision_slices(truth: &[f64], scores: &[f64]) -> Option<f64> {
    let npos = truth.iter().filter(|&&t| t > 0.0).count();
    if npos == 0 || npos == truth.len() || truth.len() != scores.len() {
        return None;
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    let mut s = 0;
    while s < order.len() {
        let mut e = s;
        while e < order.len() && scores[order[e]] == scores[order[s]] {
            if truth[order[e]] > 0.0 {
                tp += 1;
            } else {
                fp += 1;
            }
            e += 1;
        }
        let recall = tp as f64 / npos as f64;
        let precision = tp as f64 / (tp + fp) as f64;
        ap += (recall - prev_recall) * precision;
        prev_recall = recall;
        s = e;
    }
    Some(ap)
}

/// AUROC of predicted peak scores (probabilities or logits: only their order matters)
/// against binarized truth (`> 0`) along `along`; all-negative or all-positive vectors are
/// skipped and counted. Same value as [`auroc_slices`] on each vector (exact rank sums in
/// integers), computed on the f32 inputs directly: each vector's scores are radix-sorted
/// as 32-bit keys carrying the truth bit, so no f64 copies or index sorts are made
/// (memory: 8 bytes per entry of one vector). Errors as [`pearson`].
pub fn auroc(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    along: Along,
) -> Result<Score, MetricError> {
    validate(truth, pred)?;
    let mut keys: Vec<u64> = Vec::new();
    let mut scratch: Vec<u64> = Vec::new();
    let mut tally = Tally::default();
    let mut one = |t: &mut dyn Iterator<Item = &f32>, p: &mut dyn Iterator<Item = &f32>| {
        keys.clear();
        keys.extend(t.zip(p).map(|(&t, &p)| auroc_key(t, p)));
        auroc_from_keys(&mut keys, &mut scratch)
    };
    match along {
        Along::Flattened => tally.add(one(&mut truth.iter(), &mut pred.iter())),
        Along::PerCell | Along::PerFeature => {
            let ax = lane_axis(along);
            for (t, p) in truth.axis_iter(ax).zip(pred.axis_iter(ax)) {
                tally.add(one(&mut t.iter(), &mut p.iter()));
            }
        }
    }
    tally.finish("auroc", along)
}

/// `(order-preserving u32 image of the score) << 1 | (truth > 0)`; -0 and +0 map alike.
#[inline]
fn auroc_key(truth: f32, score: f32) -> u64 {
    let score = if score == 0.0 { 0.0 } else { score };
    let b = score.to_bits();
    let ordered = if b & 0x8000_0000 != 0 {
        !b
    } else {
        b | 0x8000_0000
    };
    (u64::from(ordered) << 1) | u64::from(truth > 0.0)
}

/// Mann-Whitney AUROC from keys of [`auroc_key`] (sorted here): twice the positive rank sum
/// is accumulated exactly in integers, average ranks for tied scores.
fn auroc_from_keys(keys: &mut Vec<u64>, scratch: &mut Vec<u64>) -> Option<f64> {
    let n = keys.len();
    let npos = keys.iter().filter(|&&k| k & 1 == 1).count();
    if npos == 0 || npos == n {
        return None;
    }
    sort_score_keys(keys, scratch);
    // 2 * sum of positive ranks: a tie group at 0-based positions s..e has rank (s + 1 + e) / 2
    let mut rank2_pos: u128 = 0;
    let mut s = 0;
    while s < n {
        let g = keys[s] >> 1;
        let mut e = s;
        let mut p = 0u64;
        while e < n && keys[e] >> 1 == g {
            p += keys[e] & 1;
            e += 1;
        }
        rank2_pos += u128::from(p) * (s + 1 + e) as u128;
        s = e;
    }
    let (p, q) = (npos as u128, (n - npos) as u128);
    let num = rank2_pos - p * (p + 1);
    Some(num as f64 / (2 * p * q) as f64)
}

/// Sorts keys by their score bits (1..=32; the truth bit 0 is carried along, unordered):
/// LSD radix sort in three 11-bit passes, a pass skipped when every key shares its digit.
fn sort_score_keys(keys: &mut Vec<u64>, scratch: &mut Vec<u64>) {
    if keys.len() < 512 {
        keys.sort_unstable_by_key(|k| k >> 1);
        return;
    }
    scratch.clear();
    scratch.resize(keys.len(), 0);
    for shift in [1u32, 12, 23] {
        let mut count = [0usize; 2048];
        for &k in keys.iter() {
            count[((k >> shift) & 2047) as usize] += 1;
        }
        if count.contains(&keys.len()) {
            continue;
        }
        let mut pos = 0;
        for c in count.iter_mut() {
            let here = *c;
            *c = pos;
            pos += here;
        }
        for &k in keys.iter() {
            let d = ((k >> shift) & 2047) as usize;
            scratch[count[d]] = k;
            count[d] += 1;
        }
        std::mem::swap(keys, scratch);
    }
}

/// AUPRC as average precision (`sklearn.metrics.average_precision_score`) against
/// binarized truth along `along`; skipping as [`auroc`].
pub fn auprc(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    along: Along,
) -> Result<Score, MetricError> {
    aggregate(truth, pred, along, "auprc", average_precision_slices)
}

/// Every RNA prediction score of `docs/models.md` (inputs: log1p size-factor-normalised values).
#[derive(Debug, Clone, PartialEq)]
pub struct RnaReport {
    /// Pearson flattened, per cell, per gene.
    pub pearson: [Score; 3],
    /// Spearman flattened, per cell, per gene.
    pub spearman: [Score; 3],
    /// Flattened RMSE.
    pub rmse: f64,
    /// Flattened MAE.
    pub mae: f64,
}

/// A score that is undefined on every vector of `along` (e.g. the per-gene correlation of
/// a prediction that is constant across cells, as the per-feature mean baseline's) as NaN
/// with every vector skipped; other errors stay errors.
fn or_undefined(
    score: Result<Score, MetricError>,
    truth: ArrayView2<f32>,
    along: Along,
) -> Result<Score, MetricError> {
    match score {
        Err(MetricError::Degenerate(_)) => Ok(Score {
            value: f64::NAN,
            n_scored: 0,
            n_skipped: match along {
                Along::Flattened => 1,
                Along::PerCell => truth.nrows(),
                Along::PerFeature => truth.ncols(),
            },
        }),
        other => other,
    }
}

/// All RNA prediction scores; the correlation arrays are ordered `[Flattened, PerCell, PerFeature]`.
/// A correlation undefined on every vector is NaN (see `or_undefined`).
pub fn rna_report(truth: ArrayView2<f32>, pred: ArrayView2<f32>) -> Result<RnaReport, MetricError> {
    let all = [Along::Flattened, Along::PerCell, Along::PerFeature];
    let p = all.map(|a| or_undefined(pearson(truth, pred, a), truth, a));
    let s = all.map(|a| or_undefined(spearman(truth, pred, a), truth, a));
    let [p0, p1, p2] = p;
    let [s0, s1, s2] = s;
    Ok(RnaReport {
        pearson: [p0?, p1?, p2?],
        spearman: [s0?, s1?, s2?],
        rmse: rmse(truth, pred)?,
        mae: mae(truth, pred)?,
    })
}

/// Every ATAC prediction score of `docs/models.md`.
#[derive(Debug, Clone, PartialEq)]
pub struct AtacReport {
    /// AUROC flattened, per cell, per peak.
    pub auroc: [Score; 3],
    /// AUPRC flattened, per cell, per peak.
    pub auprc: [Score; 3],
}

/// Reliability of predicted probabilities over the flattened matrix, in `n_bins` equal-width
/// bins of the prediction on `[0, 1]` (the last bin closed), as
/// `sklearn.calibration.calibration_curve(truth, pred, n_bins, strategy="uniform")`.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Expected calibration error: `sum_b (n_b / n) |mean pred_b - fraction positive_b|`.
    pub ece: f64,
    /// Non-empty bins in order: (entries, mean prediction, fraction of positives).
    pub bins: Vec<(usize, f64, f64)>,
}

/// See [`Calibration`]. `truth` is binary (0/1); `pred` must lie in `[0, 1]`.
pub fn calibration(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
    n_bins: usize,
) -> Result<Calibration, MetricError> {
    validate(truth, pred)?;
    if n_bins == 0 {
        return Err(MetricError::invalid("n_bins", "must be at least 1"));
    }
    let mut count = vec![0usize; n_bins];
    let mut sum_pred = vec![0.0f64; n_bins];
    let mut sum_true = vec![0.0f64; n_bins];
    for (&t, &p) in truth.iter().zip(pred.iter()) {
        if !(0.0..=1.0).contains(&p) {
            return Err(MetricError::invalid(
                "pred",
                format!("{p} is not a probability in [0, 1]"),
            ));
        }
        if t != 0.0 && t != 1.0 {
            return Err(MetricError::invalid("truth", format!("{t} is not 0 or 1")));
        }
        // sklearn: bin = searchsorted(edges[1:-1], p, side="right")
        let b = ((f64::from(p) * n_bins as f64).floor() as usize).min(n_bins - 1);
        count[b] += 1;
        sum_pred[b] += f64::from(p);
        sum_true[b] += f64::from(t);
    }
    let n = truth.len() as f64;
    let mut ece = 0.0;
    let mut bins = Vec::new();
    for b in 0..n_bins {
        if count[b] == 0 {
            continue;
        }
        let c = count[b] as f64;
        let (mp, fp) = (sum_pred[b] / c, sum_true[b] / c);
        ece += c / n * (mp - fp).abs();
        bins.push((count[b], mp, fp));
    }
    Ok(Calibration { ece, bins })
}

/// All ATAC prediction scores; arrays are ordered `[Flattened, PerCell, PerFeature]`.
pub fn atac_report(
    truth: ArrayView2<f32>,
    pred: ArrayView2<f32>,
) -> Result<AtacReport, MetricError> {
    let all = [Along::Flattened, Along::PerCell, Along::PerFeature];
    let [a0, a1, a2] = all.map(|a| or_undefined(auroc(truth, pred, a), truth, a));
    let [b0, b1, b2] = all.map(|a| or_undefined(auprc(truth, pred, a), truth, a));
    Ok(AtacReport {
        auroc: [a0?, a1?, a2?],
        auprc: [b0?, b1?, b2?],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn correlations_hand_values() {
        assert_eq!(
            pearson_slices(&[1.0, 2.0, 3.0], &[2.0, 4.0, 6.0]),
            Some(1.0)
        );
        assert_eq!(
            pearson_slices(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]),
            Some(-1.0)
        );
        assert_eq!(pearson_slices(&[1.0, 1.0], &[1.0, 2.0]), None);
        // scipy.stats.spearmanr([1,2,2,3],[1,3,2,4]) = 0.9486832980505138
        let s = spearman_slices(&[1.0, 2.0, 2.0, 3.0], &[1.0, 3.0, 2.0, 4.0]).unwrap();
        assert!((s - 0.9486832980505138).abs() < 1e-12);
    }

    #[test]
    fn auc_hand_values() {
        // sklearn.metrics.roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75
        assert_eq!(
            auroc_slices(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]),
            Some(0.75)
        );
        // sklearn.metrics.average_precision_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.8333333333333333
        let ap = average_precision_slices(&[0.0, 0.0, 1.0, 1.0], &[0.1, 0.4, 0.35, 0.8]).unwrap();
        assert!((ap - 0.8333333333333333).abs() < 1e-12);
        // all scores tied: AUROC 0.5, AP = prevalence
        assert_eq!(auroc_slices(&[0.0, 1.0, 1.0], &[0.5; 3]), Some(0.5));
        assert!(
            (average_precision_slices(&[0.0, 1.0, 1.0], &[0.5; 3]).unwrap() - 2.0 / 3.0).abs()
                < 1e-12
        );
        assert_eq!(auroc_slices(&[0.0, 0.0], &[0.1, 0.2]), None);
        assert_eq!(average_precision_slices(&[1.0, 1.0], &[0.1, 0.2]), None);
    }

    #[test]
    fn skips_and_counts_degenerate_vectors() {
        let t = array![[0.0f32, 1.0, 0.0], [0.0, 0.0, 0.0], [1.0, 1.0, 1.0]];
        let p = array![[0.1f32, 0.9, 0.2], [0.3, 0.2, 0.1], [0.5, 0.5, 0.6]];
        let s = auroc(t.view(), p.view(), Along::PerCell).unwrap();
        assert_eq!((s.value, s.n_scored, s.n_skipped), (1.0, 1, 2));
        let s = auprc(t.view(), p.view(), Along::PerFeature).unwrap();
        assert_eq!(s.n_scored + s.n_skipped, 3);
        let zero = ndarray::Array2::<f32>::zeros((2, 2));
        assert!(matches!(
            auroc(zero.view(), zero.view(), Along::Flattened),
            Err(MetricError::Degenerate(_))
        ));
        assert!(matches!(
            pearson(zero.view(), zero.view(), Along::PerCell),
            Err(MetricError::Degenerate(_))
        ));
        let s = pearson(t.view(), p.view(), Along::PerCell).unwrap();
        assert_eq!(s.n_skipped, 2);
        // a prediction constant across cells (the per-feature mean baseline): the report
        // gives NaN per gene, and the scores that are defined
        let truth = array![[0.0f32, 1.0, 2.0], [1.0, 3.0, 0.0], [2.0, 2.0, 1.0]];
        let mean = array![[1.0f32, 2.0, 1.0], [1.0, 2.0, 1.0], [1.0, 2.0, 1.0]];
        let r = rna_report(truth.view(), mean.view()).unwrap();
        assert!(r.pearson[2].value.is_nan() && r.spearman[2].value.is_nan());
        assert_eq!((r.pearson[2].n_scored, r.pearson[2].n_skipped), (0, 3));
        assert!(r.pearson[0].value.is_finite() && r.pearson[1].value.is_finite());
        let binary = array![[0.0f32, 1.0], [1.0, 1.0], [0.0, 0.0]];
        let constant = array![[0.3f32, 0.6], [0.3, 0.6], [0.3, 0.6]];
        let a = atac_report(binary.view(), constant.view()).unwrap();
        // ties rank as chance per peak
        assert_eq!(a.auroc[2].value, 0.5);
    }

    #[test]
    fn errors_and_perfect_scores() {
        let t = array![[0.0f32, 1.0], [2.0, 3.0]];
        assert_eq!(rmse(t.view(), t.view()).unwrap(), 0.0);
        assert_eq!(mae(t.view(), t.view()).unwrap(), 0.0);
        let r = rna_report(t.view(), t.view()).unwrap();
        assert_eq!(r.pearson[0].value, 1.0);
        let p = array![[0.0f32, 1.0, 2.0], [2.0, 3.0, 4.0]];
        assert!(matches!(
            rmse(t.view(), p.view()),
            Err(MetricError::DimensionMismatch { .. })
        ));
        let nan = array![[0.0f32, f32::NAN], [2.0, 3.0]];
        assert_eq!(
            mae(t.view(), nan.view()),
            Err(MetricError::NonFinite {
                what: "pred",
                row: 0
            })
        );
        let e = ndarray::Array2::<f32>::zeros((0, 3));
        assert!(matches!(
            rmse(e.view(), e.view()),
            Err(MetricError::Empty { .. })
        ));
        let b = array![[0.0f32, 1.0], [1.0, 0.0]];
        let a = atac_report(b.view(), b.view()).unwrap();
        assert_eq!(a.auroc[0].value, 1.0);
        assert_eq!(a.auprc[2].value, 1.0);
    }
    #[test]
    fn radix_auroc_matches_rank_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        // 3 x 2,000: long vectors take the radix path; rounded scores give ties, signs and
        // -0.0 / +0.0 included
        let t = ndarray::Array2::from_shape_fn((3, 2000), |_| f32::from(rng.gen_bool(0.2) as u8));
        let p = ndarray::Array2::from_shape_fn((3, 2000), |(i, j)| {
            if j % 97 == 0 {
                if i == 0 { -0.0 } else { 0.0 }
            } else {
                (rng.gen_range(-3.0f32..3.0) * 50.0).round() / 50.0 + t[[i, j]]
            }
        });
        for along in [Along::Flattened, Along::PerCell, Along::PerFeature] {
            let fast = auroc(t.view(), p.view(), along).unwrap();
            let slow = aggregate(t.view(), p.view(), along, "auroc", auroc_slices).unwrap();
            assert_eq!(
                (fast.n_scored, fast.n_skipped),
                (slow.n_scored, slow.n_skipped)
            );
            assert!((fast.value - slow.value).abs() < 1e-12, "{along:?}");
        }
    }

    #[test]
    fn calibration_matches_sklearns_calibration_curve() {
        // scripts/calibration_fixture.py: sklearn.calibration.calibration_curve(
        //   [0,0,1,1,0,1,1,0,1,1], [0.05,0.15,0.15,0.35,0.45,0.55,0.85,0.95,1.0,0.72],
        //   n_bins=4, strategy="uniform")
        // -> prob_true [0.3333333333333333, 0.5, 1.0, 0.6666666666666666]
        //    prob_pred [0.11666667088866234, 0.3999999910593033, 0.6350000202655792,
        //               0.9333333373069763]   (float32 predictions)
        let truth = array![[0.0f32, 0.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 1.0, 1.0]];
        let pred = array![
            [0.05f32, 0.15, 0.15, 0.35, 0.45],
            [0.55, 0.85, 0.95, 1.0, 0.72]
        ];
        let c = calibration(truth.view(), pred.view(), 4).unwrap();
        let want_true = [0.3333333333333333, 0.5, 1.0, 0.6666666666666666];
        let want_pred = [
            0.11666667088866234,
            0.3999999910593033,
            0.6350000202655792,
            0.9333333373069763,
        ];
        let counts = [3usize, 2, 2, 3];
        assert_eq!(c.bins.len(), 4);
        let mut ece = 0.0;
        for (k, (n, mp, fp)) in c.bins.iter().enumerate() {
            assert_eq!(*n, counts[k]);
            assert!((fp - want_true[k]).abs() < 1e-12, "bin {k}");
            assert!((mp - want_pred[k]).abs() < 1e-12, "bin {k}: {mp}");
            ece += *n as f64 / 10.0 * (want_pred[k] - want_true[k]).abs();
        }
        assert!((c.ece - ece).abs() < 1e-12, "{} vs {ece}", c.ece);
        // perfectly calibrated: each bin's mean prediction equals its positive rate
        let t = array![[1.0f32, 0.0, 1.0, 0.0]];
        let p = array![[0.5f32, 0.5, 0.5, 0.5]];
        assert_eq!(calibration(t.view(), p.view(), 10).unwrap().ece, 0.0);
        assert!(calibration(t.view(), array![[0.5f32, 0.5, 1.5, 0.5]].view(), 10).is_err());
        assert!(calibration(array![[2.0f32]].view(), array![[0.5f32]].view(), 10).is_err());
        assert!(calibration(t.view(), p.view(), 0).is_err());
    }
}
