//! Putting a researcher's new single-modality data into a trained model's input features
//! (what the web portal runs on an upload before a translator predicts the other modality).
//!
//! An upload rarely shares the model's feature table to the letter:
//! - genes differ in case (`Cd4` / `CD4`), or are named by Ensembl id, with or without
//!   version (`ENSG00000141510.16`); [`match_genes`] tries names, then alternative ids;
//! - peak calls almost never share coordinates with the training peaks; [`match_peaks`]
//!   matches by genomic overlap, and [`to_model_features`] aggregates every input peak that
//!   overlaps a model peak into that peak's column;
//! - the coordinates may be on another genome build (hg19 instead of GRCh38), which makes
//!   overlaps silently wrong; [`check_build`] refuses a declared mismatch and catches most
//!   undeclared ones by peaks that run past the end of their chromosome.
//!
//! [`FeatureCoverage`] says how many of the model's features the upload has, and
//! [`require_coverage`] refuses uploads with too few. Nothing here panics on bad input:
//! every failure is a [`DataError`](crate::DataError) naming the upload and what is wrong with it.

mod coverage;
mod genes;
mod genome_build;
mod peaks;
mod projection;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use coverage::{FeatureCoverage, require_coverage};
pub use genes::{ensembl_stable_id, match_genes};
pub use genome_build::{GenomeBuild, Species, check_build};
pub use peaks::{match_peaks, overlaps, parse_peaks};
pub use projection::{ModelFeatures, ModelInput, PeakAggregation, Upload, to_model_features};

/// The two modalities a translator reads or predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Rna,
    Atac,
}

impl Modality {
    /// What the modality's features are called: `genes` or `peaks`.
    pub fn features(self) -> &'static str {
        match self {
            Modality::Rna => "genes",
            Modality::Atac => "peaks",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Modality::Rna => "RNA",
            Modality::Atac => "ATAC",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modality_names() {
        assert_eq!(Modality::Rna.to_string(), "RNA");
        assert_eq!(Modality::Atac.to_string(), "ATAC");
        assert_eq!(serde_json::to_string(&Modality::Atac).unwrap(), "\"atac\"");
    }
}
