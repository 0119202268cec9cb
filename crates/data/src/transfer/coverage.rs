//! How many of a model's input features an upload has, and the refusal of one with too few.

use serde::{Deserialize, Serialize};

use super::Modality;
use crate::error::{DataError, Result};

/// How many of the model's input features an upload has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCoverage {
    pub modality: Modality,
    /// model features present in the input (for peaks: overlapped by at least one input peak)
    pub found: usize,
    /// the model's input features
    pub total: usize,
    /// the first [`FeatureCoverage::MISSING_SHOWN`] missing model features, in model order
    pub missing: Vec<String>,
}

impl FeatureCoverage {
    /// How many missing features [`FeatureCoverage::missing`] lists at most.
    pub const MISSING_SHOWN: usize = 20;

    /// `found / total`; 0 when the model has no features.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.found as f64 / self.total as f64
        }
    }

    /// From whether each of `total` model features (with its name, in model order) was
    /// found.
    pub fn new(
        modality: Modality,
        found: impl Iterator<Item = (bool, String)>,
        total: usize,
    ) -> Self {
        let mut n = 0;
        let mut missing = Vec::new();
        for (present, name) in found {
            if present {
                n += 1;
            } else if missing.len() < Self::MISSING_SHOWN {
                missing.push(name);
            }
        }
        Self {
            modality,
            found: n,
            total,
            missing,
        }
    }
}

/// Refuses an upload that has less than `min_fraction` of the model's features (and always
/// one that has none): the message names the source, found / total and the threshold, and
/// lists the first missing features.
pub fn require_coverage(cov: &FeatureCoverage, min_fraction: f64, source: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&min_fraction) {
        return Err(DataError::invalid(
            source,
            format!("the coverage threshold {min_fraction} is not a fraction in [0, 1]"),
        ));
    }
    let fraction = cov.fraction();
    if cov.found > 0 && fraction >= min_fraction {
        return Ok(());
    }
    let n_missing = cov.total - cov.found.min(cov.total);
    let listed = if cov.missing.is_empty() {
        String::new()
    } else {
        format!(
            "; missing{}: {}",
            if n_missing > cov.missing.len() {
                format!(" (first {} of {n_missing})", cov.missing.len())
            } else {
                String::new()
            },
            cov.missing.join(", ")
        )
    };
    Err(DataError::invalid(
        source,
        format!(
            "only {} of the model's {} {} {} ({:.1}%) are in the data, below the required \
             {:.1}%{listed}",
            cov.found,
            cov.total,
            cov.modality,
            cov.modality.features(),
            100.0 * fraction,
            100.0 * min_fraction,
        ),
    ))
}
