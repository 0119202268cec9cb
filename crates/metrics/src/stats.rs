//! Tests over seeds: is a model's difference to a baseline more than seed-to-seed noise?

use statrs::distribution::{ContinuousCDF, StudentsT};

use crate::error::MetricError;

/// The paired t-test of `a` against `b` (same seeds, in the same order).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedTest {
    /// the number of pairs
    pub n: usize,
    /// `mean(a - b)`
    pub mean_difference: f64,
    /// `mean(d) / (sd(d) / sqrt(n))`, `sd` with `n - 1` degrees of freedom
    pub t: f64,
    /// two-sided p-value of `t` under Student's t with `n - 1` degrees of freedom
    pub p_value: f64,
}

/// scipy's `ttest_rel(a, b)`: the two-sided paired t-test. With differences that are
/// all equal, `t` is infinite and `p = 0`, or both are NaN when the differences are all
/// zero (as scipy). Fewer than two pairs or a non-finite value is an error.
pub fn paired_t_test(a: &[f64], b: &[f64]) -> Result<PairedTest, MetricError> {
    if a.len() != b.len() {
        return Err(MetricError::LengthMismatch {
            what: "b",
            expected: a.len(),
            got: b.len(),
        });
    }
    let n = a.len();
    if n < 2 {
        return Err(MetricError::degenerate(format!(
            "a paired test needs at least 2 pairs, got {n}"
        )));
    }
    if let Some(row) = a.iter().chain(b).position(|v| !v.is_finite()) {
        return Err(MetricError::NonFinite {
            what: if row < n { "a" } else { "b" },
            row: row % n,
        });
    }
    let d: Vec<f64> = a.iter().zip(b).map(|(x, y)| x - y).collect();
    let k = n as f64;
    let mean = d.iter().sum::<f64>() / k;
    let var = d.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1.0);
    let se = (var / k).sqrt();
    let t = mean / se;
    let p_value = if t.is_nan() {
        f64::NAN
    } else if t.is_infinite() {
        0.0
    } else {
        let dist = StudentsT::new(0.0, 1.0, k - 1.0)
            .map_err(|e| MetricError::invalid("n", e.to_string()))?;
        (2.0 * dist.cdf(-t.abs())).min(1.0)
    };
    Ok(PairedTest {
        n,
        mean_difference: mean,
        t,
        p_value,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degenerate_inputs_follow_scipy_or_are_errors() {
        let t = paired_t_test(&[1.0, 2.0, 3.0], &[0.5, 1.5, 2.5]).unwrap();
        assert!(t.t.is_infinite() && t.p_value == 0.0);
        let t = paired_t_test(&[1.0, 2.0], &[1.0, 2.0]).unwrap();
        assert!(t.t.is_nan() && t.p_value.is_nan());
        assert!(paired_t_test(&[1.0], &[2.0]).is_err());
        assert!(paired_t_test(&[1.0, 2.0], &[2.0]).is_err());
        let err = paired_t_test(&[1.0, f64::NAN], &[2.0, 3.0]).unwrap_err();
        assert!(err.to_string().contains("row 1"), "{err}");
    }
}
