//! Pairing two single-modality files by cell barcode.
//!
//! Real files rarely agree to the letter: pbmc multiome exports carry `_rna` / `_atac`
//! suffixes, some pipelines add sample prefixes. Barcodes are normalized by stripping the
//! configured suffixes/prefixes, then matched exactly; the report says how many cells
//! paired and how many each side dropped.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};

use crate::dataset::{CellTable, PairedDataset, select_rows};
use crate::error::{DataError, Result};
use crate::genome::Peak;

/// How barcodes are normalized before matching.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PairingConfig {
    /// Removed from the end of a barcode when present (first match wins), e.g. `["_rna", "_atac"]`.
    pub strip_suffixes: Vec<String>,
    /// Removed from the start of a barcode when present (first match wins).
    pub strip_prefixes: Vec<String>,
}

impl PairingConfig {
    pub fn normalize<'a>(&self, barcode: &'a str) -> &'a str {
        let mut b = barcode;
        if let Some(s) = self.strip_suffixes.iter().find(|s| b.ends_with(s.as_str())) {
            b = &b[..b.len() - s.len()];
        }
        if let Some(p) = self
            .strip_prefixes
            .iter()
            .find(|p| b.starts_with(p.as_str()))
        {
            b = &b[p.len()..];
        }
        b
    }
}

/// How many cells paired and how many each side had alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PairingReport {
    pub rna_cells: usize,
    pub atac_cells: usize,
    pub paired: usize,
    pub rna_only: usize,
    pub atac_only: usize,
}

/// Rows of each side that hold the same cell, in RNA order.
#[derive(Debug, Clone)]
pub struct Pairing {
    pub rna_rows: Vec<usize>,
    pub atac_rows: Vec<usize>,
    /// normalized barcodes of the paired cells
    pub barcodes: Vec<String>,
    pub report: PairingReport,
}

fn index(
    barcodes: &[String],
    cfg: &PairingConfig,
    source: &Path,
) -> Result<HashMap<String, usize>> {
    let mut map = HashMap::with_capacity(barcodes.len());
    for (i, b) in barcodes.iter().enumerate() {
        let key = cfg.normalize(b).to_string();
        if let Some(first) = map.insert(key.clone(), i) {
            return Err(DataError::invalid(
                source.display().to_string(),
                format!(
                    "barcode `{key}` occurs twice (cells {} and {}{})",
                    first + 1,
                    i + 1,
                    if key != *b {
                        ", after stripping prefixes/suffixes"
                    } else {
                        ""
                    }
                ),
            ));
        }
    }
    Ok(map)
}

/// Matches barcodes of two files; an error when a side has duplicates or nothing pairs.
pub fn pair_barcodes(
    rna: &[String],
    rna_source: &Path,
    atac: &[String],
    atac_source: &Path,
    cfg: &PairingConfig,
) -> Result<Pairing> {
    index(rna, cfg, rna_source)?;
    let atac_index = index(atac, cfg, atac_source)?;
    let mut rna_rows = Vec::new();
    let mut atac_rows = Vec::new();
    let mut barcodes = Vec::new();
    for (i, b) in rna.iter().enumerate() {
        let key = cfg.normalize(b);
        if let Some(&j) = atac_index.get(key) {
            rna_rows.push(i);
            atac_rows.push(j);
            barcodes.push(key.to_string());
        }
    }
    if rna_rows.is_empty() {
        let sample = |v: &[String]| v.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        return Err(DataError::invalid(
            format!(
                "pairing {} with {}",
                rna_source.display(),
                atac_source.display()
            ),
            format!(
                "no barcode occurs in both (RNA: {} ..., ATAC: {} ...); set strip_suffixes / strip_prefixes if they differ by a tag",
                sample(rna),
                sample(atac)
            ),
        ));
    }
    let paired = rna_rows.len();
    Ok(Pairing {
        report: PairingReport {
            rna_cells: rna.len(),
            atac_cells: atac.len(),
            paired,
            rna_only: rna.len() - paired,
            atac_only: atac.len() - paired,
        },
        rna_rows,
        atac_rows,
        barcodes,
    })
}

/// One modality as read from its own file.
#[derive(Debug, Clone)]
pub struct SingleModality<F> {
    pub source: PathBuf,
    pub matrix: CsrMatrix<f32>,
    pub cells: CellTable,
    pub features: Vec<F>,
}

/// Joins an RNA and an ATAC file into a paired dataset (cell metadata from the RNA side,
/// then ATAC-only columns prefixed `atac_`).
pub fn join(
    name: &str,
    rna: SingleModality<String>,
    atac: SingleModality<Peak>,
    cfg: &PairingConfig,
) -> Result<(PairedDataset, PairingReport)> {
    let p = pair_barcodes(
        rna.cells.barcodes(),
        &rna.source,
        atac.cells.barcodes(),
        &atac.source,
        cfg,
    )?;
    let rna_cells = rna.cells.subset(&p.rna_rows);
    let mut cells = CellTable::from_frame(p.barcodes.clone(), rna_cells.frame().clone())?;
    let atac_cells = atac.cells.subset(&p.atac_rows);
    for col in atac_cells.frame().columns() {
        if !cells.has_column(col.name()) {
            let mut col = col.clone();
            col.rename(format!("atac_{}", col.name()).into());
            cells = cells.with_series(col)?;
        }
    }
    let dataset = PairedDataset::new(
        name,
        select_rows(&rna.matrix, &p.rna_rows),
        select_rows(&atac.matrix, &p.atac_rows),
        cells,
        rna.features,
        atac.features,
    )?;
    Ok((dataset, p.report))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra_sparse::CooMatrix;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn strips_suffixes_and_reports_drops() {
        let cfg = PairingConfig {
            strip_suffixes: s(&["_rna", "_atac"]),
            ..Default::default()
        };
        let (r, a) = (PathBuf::from("rna.h5ad"), PathBuf::from("atac.h5ad"));
        let p = pair_barcodes(
            &s(&["A_rna", "B_rna", "C_rna"]),
            &r,
            &s(&["C_atac", "A_atac", "D_atac"]),
            &a,
            &cfg,
        )
        .unwrap();
        assert_eq!(p.rna_rows, vec![0, 2]);
        assert_eq!(p.atac_rows, vec![1, 0]);
        assert_eq!(p.barcodes, s(&["A", "C"]));
        assert_eq!(
            p.report,
            PairingReport {
                rna_cells: 3,
                atac_cells: 3,
                paired: 2,
                rna_only: 1,
                atac_only: 1
            }
        );
    }

    #[test]
    fn errors_name_the_file() {
        let (r, a) = (PathBuf::from("rna.h5ad"), PathBuf::from("atac.h5ad"));
        let none = pair_barcodes(
            &s(&["A_rna"]),
            &r,
            &s(&["A_atac"]),
            &a,
            &PairingConfig::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            none.contains("rna.h5ad") && none.contains("strip_suffixes"),
            "{none}"
        );
        let cfg = PairingConfig {
            strip_prefixes: s(&["s1_", "s2_"]),
            ..Default::default()
        };
        let dup = pair_barcodes(&s(&["s1_A", "s2_A"]), &r, &s(&["A"]), &a, &cfg)
            .unwrap_err()
            .to_string();
        assert!(
            dup.contains("rna.h5ad") && dup.contains("`A` occurs twice"),
            "{dup}"
        );
    }

    #[test]
    fn join_reorders_atac_rows_to_the_rna_cells() {
        let mut rna = CooMatrix::new(2, 1);
        rna.push(0, 0, 5.0);
        let mut atac = CooMatrix::new(3, 1);
        atac.push(2, 0, 1.0); // cell "x" is the third ATAC row
        let cfg = PairingConfig::default();
        let (d, report) = join(
            "t",
            SingleModality {
                source: "r".into(),
                matrix: CsrMatrix::from(&rna),
                cells: CellTable::new(s(&["x", "y"]))
                    .with_column("type", s(&["T", "B"]))
                    .unwrap(),
                features: s(&["G"]),
            },
            SingleModality {
                source: "a".into(),
                matrix: CsrMatrix::from(&atac),
                cells: CellTable::new(s(&["z", "y", "x"]))
                    .with_column("depth", s(&["1", "2", "3"]))
                    .unwrap(),
                features: vec![Peak::parse("chr1-1-5").unwrap()],
            },
            &cfg,
        )
        .unwrap();
        assert_eq!(report.paired, 2);
        assert_eq!(d.cells.barcodes(), &s(&["x", "y"])[..]);
        assert_eq!(d.atac.get_entry(0, 0).unwrap().into_value(), 1.0);
        assert_eq!(d.cells.column("atac_depth").unwrap(), &s(&["3", "2"])[..]);
        assert_eq!(d.cells.column("type").unwrap(), &s(&["T", "B"])[..]);
    }
}
