//! Count laws (negative binomial, Poisson, Bernoulli) and sparse row sampling: a cell's
//! row drawn in O(non-zeros + high-rate features) by thinning over rate-sorted features.

use rand::Rng;
use rand_distr::{Distribution, Gamma, Poisson};

use crate::error::{DataError, Result};

/// Negative binomial with mean `mu` and dispersion `theta`: variance `mu + mu^2 / theta`
/// (a Gamma-Poisson mixture). Sampled exactly as the simulator samples RNA counts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NegativeBinomial {
    mu: f64,
    theta: f64,
}

impl NegativeBinomial {
    pub fn new(mu: f64, theta: f64) -> Result<Self> {
        if !(mu.is_finite() && mu >= 0.0) {
            return Err(DataError::invalid(
                "negative binomial mean",
                format!("{mu} is not a finite number >= 0"),
            ));
        }
        if !(theta.is_finite() && theta > 0.0) {
            return Err(DataError::invalid(
                "negative binomial dispersion",
                format!("{theta} is not a finite number > 0"),
            ));
        }
        Ok(Self { mu, theta })
    }

    pub fn mean(&self) -> f64 {
        self.mu
    }

    pub fn variance(&self) -> f64 {
        self.mu + self.mu * self.mu / self.theta
    }

    /// `P(X = 0) = (theta / (theta + mu))^theta`.
    pub fn p_zero(&self) -> f64 {
        1.0 - Count::Nb(self.theta).p_nonzero(self.mu)
    }
}

impl Distribution<u64> for NegativeBinomial {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> u64 {
        let count = Count::Nb(self.theta);
        let pnz = count.p_nonzero(self.mu);
        if rng.r#gen::<f64>() < pnz {
            count.sample_positive(self.mu, pnz, rng)
        } else {
            0
        }
    }
}

/// The count law of one feature given its mean.
#[derive(Debug, Clone, Copy)]
pub(super) enum Count {
    Nb(f64),
    Poisson,
    Bernoulli,
}

impl Count {
    /// `P(X > 0)` for mean (or rate) `mu`.
    pub(super) fn p_nonzero(self, mu: f64) -> f64 {
        match self {
            Count::Nb(theta) => -(-theta * (mu / theta).ln_1p()).exp_m1(),
            Count::Poisson | Count::Bernoulli => -(-mu).exp_m1(),
        }
    }

    /// A draw conditioned on being positive; `pnz` is `p_nonzero(mu)`.
    pub(super) fn sample_positive<R: Rng + ?Sized>(self, mu: f64, pnz: f64, rng: &mut R) -> u64 {
        match self {
            Count::Bernoulli => 1,
            Count::Poisson => {
                if mu < 1.0 {
                    // inverse CDF over k >= 1: P(k) = e^-mu mu^k / k!
                    let p1 = (-mu).exp() * mu;
                    invert_positive(rng.r#gen::<f64>() * pnz, p1, |k| mu / (k + 1.0))
                } else {
                    loop {
                        let x = poisson(rng, mu);
                        if x > 0 {
                            return x;
                        }
                    }
                }
            }
            Count::Nb(theta) => {
                if mu <= 10.0 && pnz < 0.5 {
                    // inverse CDF over k >= 1: P(k+1) = P(k) (k + theta) / (k + 1) * r
                    let r = mu / (mu + theta);
                    let p0 = 1.0 - pnz;
                    let p1 = p0 * theta * r;
                    invert_positive(rng.r#gen::<f64>() * pnz, p1, |k| {
                        (k + theta) / (k + 1.0) * r
                    })
                } else {
                    let gamma = Gamma::new(theta, mu / theta).expect("theta and mu are > 0");
                    loop {
                        let lambda = gamma.sample(rng);
                        let x = poisson(rng, lambda);
                        if x > 0 {
                            return x;
                        }
                    }
                }
            }
        }
    }
}

/// Walks the pmf from k = 1 (`p1` = P(1), `ratio(k)` = P(k+1) / P(k)) until the mass
/// passed exceeds `target` (uniform on `[0, P(X > 0))`).
fn invert_positive(mut target: f64, p1: f64, ratio: impl Fn(f64) -> f64) -> u64 {
    let mut p = p1;
    let mut k = 1u64;
    while target >= p && p > 1e-300 && k < 1_000_000 {
        target -= p;
        p *= ratio(k as f64);
        k += 1;
    }
    k
}

fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> u64 {
    if lambda.is_nan() || lambda <= 0.0 {
        return 0;
    }
    if lambda < 12.0 {
        let mut target = rng.r#gen::<f64>();
        let mut p = (-lambda).exp();
        let mut k = 0u64;
        while target >= p && k < 1000 {
            target -= p;
            k += 1;
            p *= lambda / k as f64;
        }
        k
    } else {
        Poisson::new(lambda)
            .expect("lambda > 0")
            .sample(rng)
            .min(u64::MAX as f64) as u64
    }
}

/// Per-feature rates of one (type, batch), sorted descending, with the feature order.
#[derive(Debug, Clone)]
pub(super) struct RateTable {
    pub(super) order: Vec<u32>,
    rate: Vec<f32>,
}

impl RateTable {
    pub(super) fn new(rates: &[f64]) -> Self {
        let mut order: Vec<u32> = (0..rates.len() as u32).collect();
        order.sort_by(|&a, &b| {
            rates[b as usize]
                .total_cmp(&rates[a as usize])
                .then(a.cmp(&b))
        });
        let rate = order.iter().map(|&f| rates[f as usize] as f32).collect();
        Self { order, rate }
    }
}

/// A dense scratch row with a bitmap of the set features, emptied in feature order.
#[derive(Debug)]
pub(super) struct RowBuf {
    values: Vec<u32>,
    bits: Vec<u64>,
}

impl RowBuf {
    pub(super) fn new(n: usize) -> Self {
        Self {
            values: vec![0; n],
            bits: vec![0; n.div_ceil(64)],
        }
    }

    fn set(&mut self, feature: u32, value: u32) {
        let f = feature as usize;
        self.values[f] = value;
        self.bits[f / 64] |= 1 << (f % 64);
    }

    /// Moves the set entries into `out` (sorted by feature) and clears the row.
    pub(super) fn drain_into(&mut self, out: &mut Vec<(u32, u32)>) {
        out.clear();
        for (w, word) in self.bits.iter_mut().enumerate() {
            let mut x = *word;
            *word = 0;
            while x != 0 {
                let f = w * 64 + x.trailing_zeros() as usize;
                x &= x - 1;
                out.push((f as u32, self.values[f]));
            }
        }
    }
}

/// One sparse row: feature `order[k]` has mean `depth * rate[k]` and law `count(feature)`.
/// Exact thinning: at sorted position k every later mean is `<= depth * rate[k]`, so
/// `q = min(1, depth * rate[k])` bounds `P(X > 0)` for all of them (Markov); the next
/// candidate is a geometric number of positions away, and is non-zero with
/// probability `P(X > 0) / q`. The bound is refreshed after every candidate.
pub(super) fn sample_row<R: Rng + ?Sized>(
    rng: &mut R,
    depth: f64,
    table: &RateTable,
    count: impl Fn(u32) -> Count,
    row: &mut RowBuf,
) {
    let n = table.rate.len();
    let mut pos = 0usize;
    while pos < n {
        let bound = depth * f64::from(table.rate[pos]);
        if bound.is_nan() || bound <= 0.0 {
            break; // every later rate is zero
        }
        let q = bound.min(1.0);
        let candidate = if q >= 1.0 {
            pos
        } else {
            let u: f64 = rng.r#gen();
            let skip = ((1.0 - u).ln() / (-q).ln_1p()).floor();
            if skip >= (n - pos) as f64 {
                break;
            }
            pos + skip as usize
        };
        let feature = table.order[candidate];
        let mu = depth * f64::from(table.rate[candidate]);
        let law = count(feature);
        let pnz = law.p_nonzero(mu);
        if rng.r#gen::<f64>() * q < pnz {
            let value = law.sample_positive(mu, pnz, rng).min(u64::from(u32::MAX)) as u32;
            row.set(feature, value);
        }
        pos = candidate + 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn moments(xs: &[f64]) -> (f64, f64) {
        let n = xs.len() as f64;
        let m = xs.iter().sum::<f64>() / n;
        let v = xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
        (m, v)
    }

    /// Rows of identical rates are iid draws of the feature's law: the thinning and the
    /// zero-truncated samplers together must reproduce its mean, variance and P(0).
    #[test]
    fn thinned_rows_have_the_laws_moments() {
        let n = 4000;
        let table = RateTable::new(&vec![1.0; n]);
        let mut row = RowBuf::new(n);
        let mut out = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for (mu, law) in [
            (0.02, Count::Nb(0.3)),
            (0.5, Count::Nb(2.0)),
            (4.0, Count::Nb(1.0)),
            (40.0, Count::Nb(5.0)),
            (0.3, Count::Poisson),
            (3.0, Count::Poisson),
            (0.2, Count::Bernoulli),
        ] {
            let mut xs = Vec::new();
            for _ in 0..25 {
                sample_row(&mut rng, mu, &table, |_| law, &mut row);
                row.drain_into(&mut out);
                let mut dense = vec![0.0; n];
                for &(f, v) in &out {
                    dense[f as usize] = f64::from(v);
                }
                xs.extend(dense);
            }
            let (m, v) = moments(&xs);
            let pnz = law.p_nonzero(mu);
            let (want_m, want_v) = match law {
                Count::Nb(theta) => (mu, mu + mu * mu / theta),
                Count::Poisson => (mu, mu),
                Count::Bernoulli => (pnz, pnz * (1.0 - pnz)),
            };
            let n = xs.len() as f64;
            // mean within 5 standard errors; variance within 10% (ample for 100k draws)
            assert!(
                (m - want_m).abs() < 5.0 * (want_v / n).sqrt(),
                "{law:?} mu {mu}: mean {m} vs {want_m}"
            );
            assert!(
                (v / want_v - 1.0).abs() < 0.1,
                "{law:?} mu {mu}: variance {v} vs {want_v}"
            );
            let zeros = xs.iter().filter(|x| **x == 0.0).count() as f64 / n;
            let se = (pnz * (1.0 - pnz) / n).sqrt();
            assert!(
                (zeros - (1.0 - pnz)).abs() < 5.0 * se + 1e-9,
                "{law:?} mu {mu}: P(0) {zeros} vs {}",
                1.0 - pnz
            );
        }
    }

    /// With descending rates each position must still be open with its own probability.
    #[test]
    fn thinning_respects_each_features_rate() {
        let n = 200usize;
        let rates: Vec<f64> = (0..n).map(|i| 2.0 * 0.97f64.powi(i as i32)).collect();
        // shuffle the feature order so that sorting matters
        let shuffled: Vec<f64> = (0..n).map(|i| rates[(i * 37) % n]).collect();
        let table = RateTable::new(&shuffled);
        let mut row = RowBuf::new(n);
        let mut out = Vec::new();
        let mut open = vec![0.0; n];
        let reps = 4000;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..reps {
            sample_row(&mut rng, 1.0, &table, |_| Count::Bernoulli, &mut row);
            row.drain_into(&mut out);
            assert!(out.windows(2).all(|w| w[0].0 < w[1].0), "sorted output");
            for &(f, _) in &out {
                open[f as usize] += 1.0;
            }
        }
        let mut chi2 = 0.0;
        for (f, &o) in open.iter().enumerate() {
            let p = -(-shuffled[f]).exp_m1();
            let e = p * reps as f64;
            chi2 += (o - e).powi(2) / (e * (1.0 - p));
        }
        // chi-square with 200 degrees of freedom: mean 200, sd 20
        assert!(chi2 < 300.0, "chi2 {chi2}");
    }
}
