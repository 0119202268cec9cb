//! Per-feature fits of a calibration: each gene's share of the library and NB dispersion,
//! each peak's rate, and the spike-and-slab cell-type effects of both, in
//! O(non-zeros + types x features).

use nalgebra_sparse::CsrMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::calibration::TypeEffect;
use super::sampling::Count;

/// Types with fewer cells share one group when the dispersion is fitted.
const MIN_GROUP_CELLS: usize = 10;
/// Types with fewer cells do not inform the type-effect fit.
const MIN_EFFECT_CELLS: usize = 20;
/// A (type, feature) pair informs the type-effect fit with this many expected counts.
const MIN_EFFECT_COUNTS: f64 = 10.0;
const THETA_RANGE: (f64, f64) = (0.05, 1000.0);
const DEPTH_BINS: usize = 128;

/// Moment fit of a spike-and-slab `s` from noisy observations `x = s + e`, `e ~ N(0, v)`:
/// `E s^2 = f sd^2`, `E s^4 = 3 f sd^4`, with the noise moments subtracted.
fn fit_type_effect(obs: &[(f64, f64)]) -> Option<TypeEffect> {
    if obs.len() < 20 {
        return None;
    }
    let n = obs.len() as f64;
    let m2x = obs.iter().map(|(x, _)| x * x).sum::<f64>() / n;
    let m4x = obs.iter().map(|(x, _)| x.powi(4)).sum::<f64>() / n;
    let v1 = obs.iter().map(|(_, v)| v).sum::<f64>() / n;
    let v2 = obs.iter().map(|(_, v)| v * v).sum::<f64>() / n;
    let m2 = m2x - v1;
    if m2 <= 1e-4 {
        return Some(TypeEffect {
            fraction: 0.01,
            log_fold_sd: 0.1,
        });
    }
    let m4 = m4x - 6.0 * m2 * v1 - 3.0 * v2;
    let sd2 = (m4 / (3.0 * m2)).max(m2);
    let fraction = (m2 / sd2).clamp(0.01, 1.0);
    Some(TypeEffect {
        fraction,
        log_fold_sd: (m2 / fraction).sqrt().clamp(0.1, 3.0),
    })
}

/// The noisy observations `(log ratio, its sampling variance)` of the type effects:
/// `observe(type, feature)` for every feature of every type with at least
/// [`MIN_EFFECT_CELLS`] cells, when there are two such types or more (nothing to compare
/// otherwise). `cells` holds the cells of each type.
fn effect_observations(
    cells: &[usize],
    n_features: usize,
    mut observe: impl FnMut(usize, usize) -> Option<(f64, f64)>,
) -> Vec<(f64, f64)> {
    let mut obs = Vec::new();
    let effect_types: Vec<usize> = (0..cells.len())
        .filter(|&t| cells[t] >= MIN_EFFECT_CELLS)
        .collect();
    if effect_types.len() >= 2 {
        for &t in &effect_types {
            for c in 0..n_features {
                obs.extend(observe(t, c));
            }
        }
    }
    obs
}

pub(super) struct GeneFit {
    pub(super) relative_mean: Vec<f64>,
    pub(super) dispersion: Vec<f64>,
    pub(super) nonzero_fraction: Vec<f64>,
    pub(super) effect: Option<TypeEffect>,
}

/// Per-gene relative means, NB dispersions and the type-effect fit, in O(nnz + types x genes).
pub(super) fn fit_genes(
    m: &CsrMatrix<f32>,
    lib: &[f64],
    types: &[usize],
    n_types: usize,
) -> GeneFit {
    let g = m.ncols();
    let mut cells = vec![0usize; n_types];
    let mut lib_sum = vec![0.0f64; n_types];
    let mut lib2_sum = vec![0.0f64; n_types];
    let mut x_sum = vec![0.0f64; n_types * g];
    let mut xl_sum = vec![0.0f64; n_types * g];
    let mut x2_sum = vec![0.0f64; g];
    let mut nonzero = vec![0usize; g];
    let mut n_pos = 0usize;
    for (i, row) in m.row_iter().enumerate() {
        if lib[i] <= 0.0 {
            continue;
        }
        n_pos += 1;
        let t = types[i];
        cells[t] += 1;
        lib_sum[t] += lib[i];
        lib2_sum[t] += lib[i] * lib[i];
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            let v = f64::from(v);
            if v != 0.0 {
                nonzero[c] += 1;
            }
            x_sum[t * g + c] += v;
            xl_sum[t * g + c] += v * lib[i];
            x2_sum[c] += v * v;
        }
    }
    let total_lib: f64 = lib_sum.iter().sum();
    let relative_mean: Vec<f64> = (0..g)
        .map(|c| (0..n_types).map(|t| x_sum[t * g + c]).sum::<f64>() / total_lib)
        .collect();

    // Dispersion groups: each type with enough cells, the others pooled.
    let big: Vec<bool> = cells.iter().map(|&c| c >= MIN_GROUP_CELLS).collect();
    let mut dispersion = vec![THETA_RANGE.1; g];
    for (c, theta) in dispersion.iter_mut().enumerate() {
        let (mut sum_mu2, mut sum_xmu, mut sum_mu) = (0.0, 0.0, 0.0);
        let mut pooled = (0.0, 0.0, 0.0, 0.0); // x, x*lib, lib, lib^2
        for t in 0..n_types {
            let (x, xl) = (x_sum[t * g + c], xl_sum[t * g + c]);
            if big[t] {
                let r = x / lib_sum[t];
                sum_mu += x;
                sum_xmu += r * xl;
                sum_mu2 += r * r * lib2_sum[t];
            } else {
                pooled.0 += x;
                pooled.1 += xl;
                pooled.2 += lib_sum[t];
                pooled.3 += lib2_sum[t];
            }
        }
        if pooled.2 > 0.0 {
            let r = pooled.0 / pooled.2;
            sum_mu += pooled.0;
            sum_xmu += r * pooled.1;
            sum_mu2 += r * r * pooled.3;
        }
        // sum_i (x - mu)^2 - mu = (1/theta) sum_i mu^2
        let excess = x2_sum[c] - 2.0 * sum_xmu + sum_mu2 - sum_mu;
        if sum_mu2 > 0.0 && excess > 0.0 {
            *theta = (sum_mu2 / excess).clamp(THETA_RANGE.0, THETA_RANGE.1);
        }
    }

    // Type effects: per (type, gene) log ratio of observed to expected counts.
    let obs = effect_observations(&cells, g, |t, c| {
        let expected = relative_mean[c] * lib_sum[t];
        (expected >= MIN_EFFECT_COUNTS).then(|| {
            let observed = x_sum[t * g + c];
            let x = ((observed + 0.5) / (expected + 0.5)).ln();
            // delta method: var(ln sum) = var(sum) / mean^2, with the NB variance
            // of a sum over cells of different depths
            let depth_spread = lib2_sum[t] / (lib_sum[t] * lib_sum[t]);
            let var = 1.0 / (observed + 0.5) + depth_spread / dispersion[c];
            (x, var)
        })
    });
    let nonzero_fraction: Vec<f64> = nonzero
        .iter()
        .map(|&z| z as f64 / n_pos.max(1) as f64)
        .collect();
    let proportions: Vec<f64> = cells.iter().map(|&c| c as f64 / n_pos as f64).collect();
    let effect = fit_type_effect(&obs).map(|e| {
        let bins = DepthBins::new(lib, types, n_types, 16);
        match_sparsity_loss(
            e,
            &relative_mean,
            &dispersion,
            &nonzero_fraction,
            &bins,
            &proportions,
        )
    });
    GeneFit {
        relative_mean,
        dispersion,
        nonzero_fraction,
        effect,
    }
}

/// Type heterogeneity lowers a gene's non-zero fraction below that of a homogeneous
/// population with the same mean (`P(X > 0)` is concave in the mean). The moment fit
/// is dominated by well-expressed genes and overstates the heterogeneity of the rest
/// (on the bundled sample it would make the simulation 10% too sparse), so its sd is
/// shrunk until the loss it causes over all genes matches the loss seen in the data.
fn match_sparsity_loss(
    effect: TypeEffect,
    relative_mean: &[f64],
    dispersion: &[f64],
    nonzero_fraction: &[f64],
    bins: &DepthBins,
    proportions: &[f64],
) -> TypeEffect {
    let n: f64 = bins.total.iter().sum();
    let weights: Vec<f64> = bins.total.iter().map(|w| w / n).collect();
    let genes: Vec<usize> = (0..relative_mean.len())
        .step_by(relative_mean.len().div_ceil(1000))
        .filter(|&g| relative_mean[g] > 0.0)
        .collect();
    if genes.is_empty() {
        return effect;
    }
    let homogeneous = |g: usize, scale: f64| -> f64 {
        let law = Count::Nb(dispersion[g]);
        weights
            .iter()
            .zip(&bins.mean)
            .map(|(w, l)| w * law.p_nonzero(l * relative_mean[g] * scale))
            .sum()
    };
    let real_loss: f64 = genes
        .iter()
        .map(|&g| homogeneous(g, 1.0) - nonzero_fraction[g])
        .sum::<f64>()
        / genes.len() as f64;
    // common random numbers: the same slab draws for every candidate sd
    let mut rng = ChaCha8Rng::seed_from_u64(0x5eed);
    let draws: Vec<Vec<f64>> = genes
        .iter()
        .map(|_| {
            proportions
                .iter()
                .map(|_| {
                    let slab = rng.r#gen::<f64>() < effect.fraction;
                    let z: f64 = rng.sample(StandardNormal);
                    if slab { z } else { 0.0 }
                })
                .collect()
        })
        .collect();
    let model_loss = |sd: f64| -> f64 {
        genes
            .iter()
            .zip(&draws)
            .map(|(&g, z)| {
                let mean: f64 = z
                    .iter()
                    .zip(proportions)
                    .map(|(z, p)| p * (sd * z).exp())
                    .sum();
                let mixed: f64 = z
                    .iter()
                    .zip(proportions)
                    .filter(|(_, p)| **p > 0.0)
                    .map(|(z, p)| p * homogeneous(g, (sd * z).exp() / mean))
                    .sum();
                homogeneous(g, 1.0) - mixed
            })
            .sum::<f64>()
            / genes.len() as f64
    };
    if model_loss(effect.log_fold_sd) <= real_loss {
        return effect;
    }
    let (mut lo, mut hi) = (0.0, effect.log_fold_sd);
    for _ in 0..20 {
        let mid = 0.5 * (lo + hi);
        if model_loss(mid) < real_loss {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    TypeEffect {
        fraction: effect.fraction,
        log_fold_sd: (0.5 * (lo + hi)).max(0.1),
    }
}

pub(super) struct PeakFit {
    pub(super) rate: Vec<f64>,
    pub(super) open_fraction: Vec<f64>,
    pub(super) effect: Option<TypeEffect>,
}

/// Depths binned on the log scale: `(count per type, mean depth)` per bin, so that the
/// expected open fraction `sum_i 1 - exp(-lib_i a)` costs O(bins), not O(cells).
struct DepthBins {
    mean: Vec<f64>,
    count: Vec<Vec<f64>>, // [type][bin]
    total: Vec<f64>,      // [bin]
}

impl DepthBins {
    fn new(lib: &[f64], types: &[usize], n_types: usize, n_bins: usize) -> Self {
        let logs: Vec<f64> = lib.iter().filter(|l| **l > 0.0).map(|l| l.ln()).collect();
        let lo = logs.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let width = ((hi - lo) / n_bins as f64).max(1e-12);
        let mut sum = vec![0.0; n_bins];
        let mut count = vec![vec![0.0; n_bins]; n_types];
        let mut total = vec![0.0; n_bins];
        for (i, &l) in lib.iter().enumerate() {
            if l <= 0.0 {
                continue;
            }
            let b = (((l.ln() - lo) / width) as usize).min(n_bins - 1);
            sum[b] += l;
            total[b] += 1.0;
            count[types[i]][b] += 1.0;
        }
        let mean = sum
            .iter()
            .zip(&total)
            .map(|(s, n)| if *n > 0.0 { s / n } else { 0.0 })
            .collect();
        Self { mean, count, total }
    }

    fn expected_open(&self, weights: &[f64], a: f64) -> f64 {
        weights
            .iter()
            .zip(&self.mean)
            .filter(|(w, _)| **w > 0.0)
            .map(|(w, l)| w * -(-l * a).exp_m1())
            .sum()
    }
}

pub(super) fn fit_peaks(
    m: &CsrMatrix<f32>,
    lib: &[f64],
    types: &[usize],
    n_types: usize,
) -> PeakFit {
    let p = m.ncols();
    let mut open = vec![0.0f64; n_types * p];
    let mut cells = vec![0usize; n_types];
    for (i, row) in m.row_iter().enumerate() {
        if lib[i] <= 0.0 {
            continue;
        }
        cells[types[i]] += 1;
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            if v != 0.0 {
                open[types[i] * p + c] += 1.0;
            }
        }
    }
    let n_pos: usize = cells.iter().sum();
    let bins = DepthBins::new(lib, types, n_types, DEPTH_BINS);
    let total_depth: f64 = lib.iter().filter(|l| **l > 0.0).sum();
    let mut rate = vec![0.0; p];
    let mut open_fraction = vec![0.0; p];
    for c in 0..p {
        let k: f64 = (0..n_types).map(|t| open[t * p + c]).sum();
        open_fraction[c] = k / n_pos as f64;
        if k == 0.0 {
            continue;
        }
        // expected_open is increasing and concave in a; a = k / sum(lib) is a lower bound
        let target = k.min(n_pos as f64 - 0.5);
        let mut lo = target / total_depth;
        let mut hi = lo * 2.0;
        while bins.expected_open(&bins.total, hi) < target && hi < 1e12 {
            lo = hi;
            hi *= 2.0;
        }
        for _ in 0..60 {
            let mid = 0.5 * (lo + hi);
            if bins.expected_open(&bins.total, mid) < target {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        rate[c] = 0.5 * (lo + hi);
    }

    let obs = effect_observations(&cells, p, |t, c| {
        let expected = bins.expected_open(&bins.count[t], rate[c]);
        let closed = cells[t] as f64 - expected;
        (expected >= MIN_EFFECT_COUNTS && closed >= MIN_EFFECT_COUNTS).then(|| {
            let x = ((open[t * p + c] + 0.5) / (expected + 0.5)).ln();
            let var = (closed / cells[t] as f64) / expected;
            (x, var)
        })
    });
    PeakFit {
        rate,
        open_fraction,
        effect: fit_type_effect(&obs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The moment fit recovers a spike-and-slab from noisy draws.
    #[test]
    fn type_effect_fit_recovers_spike_and_slab() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let obs: Vec<(f64, f64)> = (0..200_000)
            .map(|_| {
                let s = if rng.r#gen::<f64>() < 0.2 {
                    1.5 * rng.sample::<f64, _>(StandardNormal)
                } else {
                    0.0
                };
                let v: f64 = 0.05;
                (s + v.sqrt() * rng.sample::<f64, _>(StandardNormal), v)
            })
            .collect();
        let e = fit_type_effect(&obs).unwrap();
        assert!((e.fraction - 0.2).abs() < 0.03, "{e:?}");
        assert!((e.log_fold_sd - 1.5).abs() < 0.1, "{e:?}");
    }
}
