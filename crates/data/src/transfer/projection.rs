//! An upload put into a model's input features: genes by name, peaks by overlap (combined
//! by maximum or sum), missing features as zero columns.

use std::path::Path;

use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};

use super::Modality;
use super::coverage::FeatureCoverage;
use super::genes::match_genes;
use super::peaks::match_peaks;
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::pair::SingleModality;

/// A model's input features, in the model's column order.
#[derive(Debug, Clone, Copy)]
pub enum ModelFeatures<'a> {
    Genes(&'a [String]),
    Peaks(&'a [Peak]),
}

impl ModelFeatures<'_> {
    pub fn modality(&self) -> Modality {
        match self {
            ModelFeatures::Genes(_) => Modality::Rna,
            ModelFeatures::Peaks(_) => Modality::Atac,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ModelFeatures::Genes(g) => g.len(),
            ModelFeatures::Peaks(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An uploaded single-modality file.
#[derive(Debug, Clone, Copy)]
pub enum Upload<'a> {
    /// genes named by `data.features`; `ids` are alternative names per column (e.g. the
    /// Ensembl `gene_ids` var column), used when a name does not match
    Rna {
        data: &'a SingleModality<String>,
        ids: Option<&'a [String]>,
    },
    /// peaks already parsed (see [`parse_peaks`](super::parse_peaks), `h5ad::parse_peaks`)
    Atac(&'a SingleModality<Peak>),
}

impl Upload<'_> {
    pub fn modality(&self) -> Modality {
        match self {
            Upload::Rna { .. } => Modality::Rna,
            Upload::Atac(_) => Modality::Atac,
        }
    }

    pub fn source(&self) -> &Path {
        match self {
            Upload::Rna { data, .. } => &data.source,
            Upload::Atac(data) => &data.source,
        }
    }

    fn matrix(&self) -> &CsrMatrix<f32> {
        match self {
            Upload::Rna { data, .. } => &data.matrix,
            Upload::Atac(data) => &data.matrix,
        }
    }

    fn n_features(&self) -> usize {
        match self {
            Upload::Rna { data, .. } => data.features.len(),
            Upload::Atac(data) => data.features.len(),
        }
    }
}

/// How the values of several input peaks overlapping one model peak are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakAggregation {
    /// [`PeakAggregation::Max`] when every stored value of the input is 1 (binarized
    /// accessibility), else [`PeakAggregation::Sum`] (counts).
    #[default]
    Auto,
    /// Element-wise maximum: binary input stays binary (a model peak is open when any
    /// overlapping input peak is), which is what models trained on binarized peaks expect.
    Max,
    /// Sum: the model peak's count is the fragments of every input peak overlapping it. A
    /// peak that one caller split in two (or called narrower) has its reads spread over the
    /// pieces; the sum recovers the count the model peak would have had, where the maximum
    /// would drop the reads of all but one piece. (After the model's own binarization, the
    /// sum of counts gives the same 0/1 as the maximum.) An input peak overlapping two model
    /// peaks counts for both.
    Sum,
}

/// An upload in the model's input features.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// cells x model features, in the model's order; missing features are zero columns
    pub matrix: CsrMatrix<f32>,
    pub coverage: FeatureCoverage,
    /// how peaks were combined (`Max` or `Sum`, `Auto` resolved); `None` for genes
    pub aggregation: Option<PeakAggregation>,
    /// for each model feature, in model order, whether the upload has it
    pub found: Vec<bool>,
}

/// Puts an upload into the model's input features: genes by [`match_genes`] (each model
/// gene takes its matched column), peaks by [`match_peaks`] (each model peak combines the
/// input peaks that overlap it, see [`PeakAggregation`]). The matrix keeps the upload's
/// cells, in order.
///
/// Errors (each naming the upload): the modality is not the model's; the matrix has no
/// cells or no features; the feature table or `ids` do not match the columns; a value is
/// NaN or infinite; an input peak is empty (`end <= start`); no model feature is found at
/// all. Too low coverage is for the caller to judge with [`require_coverage`](super::require_coverage).
pub fn to_model_features(
    upload: Upload<'_>,
    model: ModelFeatures<'_>,
    aggregation: PeakAggregation,
) -> Result<ModelInput> {
    let source = upload.source();
    let name = source.display().to_string();
    let wrong_modality = || {
        DataError::invalid(
            &name,
            format!(
                "the data is {} ({}), but the model's inputs are {} {}",
                upload.modality(),
                upload.modality().features(),
                model.modality(),
                model.modality().features()
            ),
        )
    };
    if upload.modality() != model.modality() {
        return Err(wrong_modality());
    }
    if model.is_empty() {
        return Err(DataError::Empty {
            what: "the model's input features".into(),
            reason: format!("the model lists no {}", model.modality().features()),
        });
    }
    let m = upload.matrix();
    if m.nrows() == 0 || m.ncols() == 0 {
        return Err(DataError::Empty {
            what: name.clone(),
            reason: format!("{} cells x {} features", m.nrows(), m.ncols()),
        });
    }
    let shape = |what: &str, got: usize| {
        if got == m.ncols() {
            Ok(())
        } else {
            Err(DataError::ShapeMismatch {
                path: source.to_path_buf(),
                what: what.into(),
                got,
                expected: m.ncols(),
                expected_by: "the matrix columns".into(),
            })
        }
    };
    shape(
        &format!("the {} table", upload.modality().features()),
        upload.n_features(),
    )?;
    if let Upload::Rna { ids: Some(ids), .. } = upload {
        shape("the gene ids", ids.len())?;
    }
    if let Some((row, col, value)) = m.triplet_iter().find(|(_, _, v)| !v.is_finite()) {
        return Err(DataError::NonFinite {
            path: source.to_path_buf(),
            what: "the matrix".into(),
            row,
            col,
            value: *value,
        });
    }

    match (upload, model) {
        (Upload::Rna { data, ids }, ModelFeatures::Genes(genes)) => {
            let matched = match_genes(genes, &data.features, ids);
            let coverage = FeatureCoverage::new(
                Modality::Rna,
                genes
                    .iter()
                    .zip(&matched)
                    .map(|(g, c)| (c.is_some(), g.clone())),
                genes.len(),
            );
            if coverage.found == 0 {
                return Err(nothing_matched(
                    &name,
                    "genes",
                    genes.iter().cloned(),
                    data.features.iter().cloned(),
                    if ids.is_some() {
                        "neither by name nor by gene id (case and Ensembl versions ignored)"
                    } else {
                        "by name (case ignored); if the model or the file names genes by \
                         Ensembl id, pass the file's gene ids (var `gene_ids`)"
                    },
                ));
            }
            let sources: Vec<Vec<usize>> = matched
                .iter()
                .map(|c| c.map(|c| vec![c]).unwrap_or_default())
                .collect();
            Ok(ModelInput {
                matrix: gather(m, &sources, PeakAggregation::Sum),
                coverage,
                aggregation: None,
                found: matched.iter().map(Option::is_some).collect(),
            })
        }
        (Upload::Atac(data), ModelFeatures::Peaks(peaks)) => {
            if let Some((i, p)) = data
                .features
                .iter()
                .enumerate()
                .find(|(_, p)| p.end <= p.start)
            {
                return Err(DataError::invalid(
                    format!("{name}: peak {}", i + 1),
                    format!("`{p}`: end {} is not after start {}", p.end, p.start),
                ));
            }
            let matched = match_peaks(peaks, &data.features);
            let coverage = FeatureCoverage::new(
                Modality::Atac,
                peaks
                    .iter()
                    .zip(&matched)
                    .map(|(p, c)| (!c.is_empty(), p.to_string())),
                peaks.len(),
            );
            if coverage.found == 0 {
                let chroms = |ps: &[Peak]| {
                    let mut seen: Vec<&str> = Vec::new();
                    for p in ps {
                        if !seen.contains(&p.chrom.as_str()) && seen.len() < 5 {
                            seen.push(&p.chrom);
                        }
                    }
                    seen.join(", ")
                };
                return Err(nothing_matched(
                    &name,
                    "peaks",
                    peaks.iter().map(Peak::to_string),
                    data.features.iter().map(Peak::to_string),
                    &format!(
                        "by overlap (model chromosomes {}; the data's {}): check the genome build \
                         and the chromosome names",
                        chroms(peaks),
                        chroms(&data.features)
                    ),
                ));
            }
            let aggregation = match aggregation {
                PeakAggregation::Auto if m.values().iter().all(|&v| v == 1.0) => {
                    PeakAggregation::Max
                }
                PeakAggregation::Auto => PeakAggregation::Sum,
                other => other,
            };
            Ok(ModelInput {
                matrix: gather(m, &matched, aggregation),
                coverage,
                aggregation: Some(aggregation),
                found: matched.iter().map(|c| !c.is_empty()).collect(),
            })
        }
        _ => Err(wrong_modality()),
    }
}

/// "none matched", with the first three features of each side (often the tell: `CD4`
/// against `ENSG...`, or peaks on contigs named differently).
fn nothing_matched(
    source: &str,
    what: &str,
    model: impl Iterator<Item = String>,
    have: impl Iterator<Item = String>,
    how: &str,
) -> DataError {
    let model: Vec<String> = model.take(3).collect();
    let have: Vec<String> = have.take(3).collect();
    DataError::invalid(
        source,
        format!(
            "none of the model's {what} is in the data, {how} (model: {} ...; data: {} ...)",
            model.join(", "),
            have.join(", ")
        ),
    )
}

/// Builds `cells x sources.len()`: column `j` combines the input columns `sources[j]`
/// (absent entries count as 0, so the maximum of negative values and a missing entry is 0);
/// exact zeros are not stored.
fn gather(m: &CsrMatrix<f32>, sources: &[Vec<usize>], agg: PeakAggregation) -> CsrMatrix<f32> {
    // input column -> model columns (CSR-style adjacency)
    let mut offsets = vec![0usize; m.ncols() + 1];
    for s in sources {
        for &c in s {
            offsets[c + 1] += 1;
        }
    }
    for c in 0..m.ncols() {
        offsets[c + 1] += offsets[c];
    }
    let mut fill = offsets.clone();
    let mut targets = vec![0usize; offsets[m.ncols()]];
    for (j, s) in sources.iter().enumerate() {
        for &c in s {
            targets[fill[c]] = j;
            fill[c] += 1;
        }
    }

    let mut row_offsets = Vec::with_capacity(m.nrows() + 1);
    row_offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut entries: Vec<(usize, f32)> = Vec::new();
    for row in m.row_iter() {
        entries.clear();
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            for &j in &targets[offsets[c]..offsets[c + 1]] {
                entries.push((j, v));
            }
        }
        entries.sort_unstable_by_key(|e| e.0);
        let mut k = 0;
        while k < entries.len() {
            let j = entries[k].0;
            let run = entries[k..].iter().take_while(|e| e.0 == j).count();
            let vals = entries[k..k + run].iter().map(|e| e.1);
            let v = match agg {
                PeakAggregation::Max => {
                    let max = vals.fold(f32::NEG_INFINITY, f32::max);
                    if run < sources[j].len() {
                        max.max(0.0)
                    } else {
                        max
                    }
                }
                _ => vals.map(f64::from).sum::<f64>() as f32,
            };
            if v != 0.0 {
                indices.push(j);
                values.push(v);
            }
            k += run;
        }
        row_offsets.push(indices.len());
    }
    CsrMatrix::try_from_csr_data(m.nrows(), sources.len(), row_offsets, indices, values)
        .expect("sorted, distinct columns in range form a valid CSR matrix")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gather_max_counts_absent_entries_as_zero() {
        let mut coo = nalgebra_sparse::CooMatrix::new(2, 3);
        coo.push(0, 0, -2.0f32);
        coo.push(0, 1, -1.0);
        coo.push(1, 0, -2.0);
        coo.push(1, 2, 3.0);
        let m = CsrMatrix::from(&coo);
        let sources = vec![vec![0, 1], vec![0, 2], vec![]];
        let max = gather(&m, &sources, PeakAggregation::Max);
        // row 0: max(-2, -1) = -1; max(-2, absent 0) = 0 (not stored)
        assert_eq!(max.get_entry(0, 0).unwrap().into_value(), -1.0);
        assert_eq!(max.row(0).nnz(), 1);
        assert_eq!(max.get_entry(1, 1).unwrap().into_value(), 3.0);
        let sum = gather(&m, &sources, PeakAggregation::Sum);
        assert_eq!(sum.get_entry(0, 0).unwrap().into_value(), -3.0);
        assert_eq!(sum.get_entry(1, 1).unwrap().into_value(), 1.0);
        assert_eq!(sum.ncols(), 3);
    }
}
