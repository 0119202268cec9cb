//! Gene annotations and CrossMP's gene-activity input: the regulatory potential of the
//! peaks near each gene's transcription start site.
//!
//! Annotation files are TSV with the header `gene\tchrom\tstart\tend\tstrand`, 0-based
//! half-open coordinates (BED style), chromosomes `chr1`.. (other spellings are unified),
//! strand `+` or `-`. [`bundled`] returns the two compiled into the crate
//! (`annotations/grch38_genes.tsv`, `annotations/hg19_genes.tsv`).
//!
//! Regulatory potential follows MAESTRO's simple model, which CrossMP uses for its gene
//! activity branch (SPEC section 2): a peak whose centre lies `d` bp from a gene's TSS
//! contributes `2^(-d / half_distance)` to the gene (10 kb half-distance: a peak 10 kb
//! away counts half), peaks farther than `max_distance` nothing (MAESTRO: 15 half-distances,
//! 150 kb). Gene activity of a cell is its accessibility times these weights.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;

use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};
use crate::transfer::GenomeBuild;

/// The header every annotation file starts with.
pub const HEADER: &str = "gene\tchrom\tstart\tend\tstrand";

/// CrossMP / MAESTRO half-distance of the regulatory potential: 10 kb.
pub const DEFAULT_HALF_DISTANCE: f64 = 10_000.0;

/// MAESTRO's window: 15 half-distances (150 kb), where the weight is 2^-15 ~ 3e-5.
pub const DEFAULT_MAX_DISTANCE: u64 = 150_000;

/// The strand a gene is transcribed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strand {
    #[serde(rename = "+")]
    Plus,
    #[serde(rename = "-")]
    Minus,
}

impl fmt::Display for Strand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strand::Plus => "+",
            Strand::Minus => "-",
        })
    }
}

/// A gene's extent, `[start, end)` on `chrom` (unified: `chr1`, `chrX`, `chrM`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeneLocus {
    pub gene: String,
    pub chrom: String,
    pub start: u64,
    pub end: u64,
    pub strand: Strand,
}

impl GeneLocus {
    /// The transcription start site: `start` on the `+` strand, `end` on the `-` strand.
    /// Both are the interval boundary on the upstream side of the first transcribed base
    /// (as MAESTRO takes UCSC's `txStart` / `txEnd`); the base itself would be `end - 1`
    /// on `-`, which `annotations/PROVENANCE.md` calls the TSS. The 1 bp is immaterial at
    /// a 10 kb half-distance.
    pub fn tss(&self) -> u64 {
        match self.strand {
            Strand::Plus => self.start,
            Strand::Minus => self.end,
        }
    }
}

/// Reads an annotation TSV (see the module docs); errors name the file and line.
pub fn read_annotation(path: impl AsRef<Path>) -> Result<Vec<GeneLocus>> {
    let path = path.as_ref();
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    parse_annotation(&text, path)
}

/// Parses annotation TSV text; `source` is the file name errors give. Blank lines and
/// lines starting with `#` are skipped; every other line needs five tab-separated fields.
pub fn parse_annotation(text: &str, source: &Path) -> Result<Vec<GeneLocus>> {
    let err = |line: usize, reason: String| DataError::Parse {
        path: source.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    match lines.next() {
        Some((_, HEADER)) => {}
        Some((n, other)) => {
            return Err(err(
                n,
                format!(
                    "expected the header `{}`, found `{other}`",
                    HEADER.escape_default()
                ),
            ));
        }
        None => {
            return Err(DataError::Empty {
                what: source.display().to_string(),
                reason: "no header and no genes".into(),
            });
        }
    }
    let mut genes = Vec::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let [gene, chrom, start, end, strand] = fields[..] else {
            return Err(err(
                n,
                format!(
                    "{} tab-separated fields, expected 5 (gene, chrom, start, end, strand)",
                    fields.len()
                ),
            ));
        };
        let gene = gene.trim();
        let chrom = chrom.trim();
        if gene.is_empty() || chrom.is_empty() {
            return Err(err(n, "empty gene or chromosome name".into()));
        }
        let coord = |what: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| err(n, format!("{what} `{v}` is not a non-negative integer")))
        };
        let (start, end) = (coord("start", start)?, coord("end", end)?);
        if end <= start {
            return Err(err(
                n,
                format!(
                    "end {end} is not after start {start} (coordinates are 0-based, half-open)"
                ),
            ));
        }
        let strand = match strand.trim() {
            "+" => Strand::Plus,
            "-" => Strand::Minus,
            other => return Err(err(n, format!("strand `{other}` is neither `+` nor `-`"))),
        };
        genes.push(GeneLocus {
            gene: gene.to_string(),
            chrom: unify_chrom(chrom),
            start,
            end,
            strand,
        });
    }
    if genes.is_empty() {
        return Err(DataError::Empty {
            what: source.display().to_string(),
            reason: "a header but no genes".into(),
        });
    }
    Ok(genes)
}

/// The annotation shipped for a build: `annotations/grch38_genes.tsv` or
/// `annotations/hg19_genes.tsv`, compiled into the crate (`include_str!`), so it needs no
/// file at run time. They hold the genes of the bundled datasets (see
/// `annotations/PROVENANCE.md`), not whole genomes; for other data use [`read_annotation`].
pub fn bundled(build: GenomeBuild) -> Result<Vec<GeneLocus>> {
    let (text, file) = match build {
        GenomeBuild::Grch38 => (GRCH38_GENES, "grch38_genes.tsv"),
        GenomeBuild::Hg19 => (HG19_GENES, "hg19_genes.tsv"),
    };
    parse_annotation(text, &Path::new("crates/data/annotations").join(file))
}

const GRCH38_GENES: &str = include_str!("../annotations/grch38_genes.tsv");
const HG19_GENES: &str = include_str!("../annotations/hg19_genes.tsv");

/// Peaks x genes weights `2^(-d / half_distance)`, `d` the distance in bp from the peak's
/// centre (`(start + end) / 2`, may end in .5) to the gene's [`GeneLocus::tss`]; only pairs
/// on the same (unified) chromosome with `d <= max_distance` are stored (and none whose
/// weight underflows to 0 in f32). Each peak looks up its window in the chromosome's sorted
/// TSSs: O((m + n) log n + stored pairs), not all pairs.
///
/// An error when `half_distance` is not a positive finite number.
pub fn regulatory_potential(
    peaks: &[Peak],
    genes: &[GeneLocus],
    half_distance: f64,
    max_distance: u64,
) -> Result<CsrMatrix<f32>> {
    if !(half_distance.is_finite() && half_distance > 0.0) {
        return Err(DataError::invalid(
            "regulatory potential",
            format!("the half-distance {half_distance} is not a positive number of bp"),
        ));
    }
    // per chromosome: (2 * TSS, gene), sorted; doubled coordinates keep peak centres exact
    let mut by_chrom: HashMap<String, Vec<(u64, usize)>> = HashMap::new();
    for (g, locus) in genes.iter().enumerate() {
        by_chrom
            .entry(unify_chrom(&locus.chrom))
            .or_default()
            .push((locus.tss().saturating_mul(2), g));
    }
    for v in by_chrom.values_mut() {
        v.sort_unstable();
    }
    let window = max_distance.saturating_mul(2);
    let mut offsets = Vec::with_capacity(peaks.len() + 1);
    offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut row: Vec<(usize, f32)> = Vec::new();
    for peak in peaks {
        row.clear();
        let chrom = if peak.chrom.starts_with("chr") {
            std::borrow::Cow::Borrowed(peak.chrom.as_str())
        } else {
            std::borrow::Cow::Owned(unify_chrom(&peak.chrom))
        };
        if let Some(tss) = by_chrom.get(chrom.as_ref()) {
            let centre2 = peak.start.saturating_add(peak.end);
            let lo = tss.partition_point(|&(t, _)| t < centre2.saturating_sub(window));
            let hi = tss.partition_point(|&(t, _)| t <= centre2.saturating_add(window));
            for &(t2, g) in &tss[lo..hi] {
                let d = t2.abs_diff(centre2) as f64 / 2.0;
                let w = (-d / half_distance).exp2() as f32;
                if w > 0.0 {
                    row.push((g, w));
                }
            }
        }
        row.sort_unstable_by_key(|e| e.0);
        for &(g, w) in &row {
            indices.push(g);
            values.push(w);
        }
        offsets.push(indices.len());
    }
    Ok(
        CsrMatrix::try_from_csr_data(peaks.len(), genes.len(), offsets, indices, values)
            .expect("sorted, distinct gene columns form a valid CSR matrix"),
    )
}

/// Cells x genes gene activity: `atac` (cells x peaks) times `rp` (peaks x genes, from
/// [`regulatory_potential`] on the same peaks), accumulated in f64 row by row (Gustavson),
/// exact zeros not stored. An error when the shapes do not chain.
pub fn gene_activity(atac: &CsrMatrix<f32>, rp: &CsrMatrix<f32>) -> Result<CsrMatrix<f32>> {
    if atac.ncols() != rp.nrows() {
        return Err(DataError::invalid(
            "gene activity",
            format!(
                "the ATAC matrix has {} peaks but the regulatory potential {} (compute it on the \
                 model's peaks and project the data onto them first)",
                atac.ncols(),
                rp.nrows()
            ),
        ));
    }
    let n_genes = rp.ncols();
    let mut acc = vec![0.0f64; n_genes];
    let mut touched = vec![false; n_genes];
    let mut cols: Vec<usize> = Vec::new();
    let mut offsets = Vec::with_capacity(atac.nrows() + 1);
    offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for cell in atac.row_iter() {
        for (&p, &x) in cell.col_indices().iter().zip(cell.values()) {
            let weights = rp.row(p);
            for (&g, &w) in weights.col_indices().iter().zip(weights.values()) {
                if !touched[g] {
                    touched[g] = true;
                    cols.push(g);
                }
                acc[g] += f64::from(x) * f64::from(w);
            }
        }
        cols.sort_unstable();
        for &g in &cols {
            let v = acc[g] as f32;
            if v != 0.0 {
                indices.push(g);
                values.push(v);
            }
            acc[g] = 0.0;
            touched[g] = false;
        }
        cols.clear();
        offsets.push(indices.len());
    }
    Ok(
        CsrMatrix::try_from_csr_data(atac.nrows(), n_genes, offsets, indices, values)
            .expect("sorted, distinct gene columns form a valid CSR matrix"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locus(gene: &str, start: u64, end: u64, strand: Strand) -> GeneLocus {
        GeneLocus {
            gene: gene.into(),
            chrom: "chr1".into(),
            start,
            end,
            strand,
        }
    }

    #[test]
    fn tss_is_strand_aware() {
        assert_eq!(locus("A", 100, 200, Strand::Plus).tss(), 100);
        assert_eq!(locus("B", 100, 200, Strand::Minus).tss(), 200);
    }

    #[test]
    fn parses_comments_blank_lines_crlf_and_other_chromosome_spellings() {
        let text = "# made by hand\r\ngene\tchrom\tstart\tend\tstrand\r\n\nA\t1\t10\t20\t+\r\nB\tchrX\t5\t9\t-\n";
        let genes = parse_annotation(text, Path::new("a.tsv")).unwrap();
        assert_eq!(
            genes,
            vec![
                locus("A", 10, 20, Strand::Plus),
                GeneLocus {
                    chrom: "chrX".into(),
                    ..locus("B", 5, 9, Strand::Minus)
                }
            ]
        );
    }

    #[test]
    fn weights_are_stored_only_inside_the_window() {
        let genes = [locus("A", 100_000, 200_000, Strand::Plus)];
        // centres at 0.5 kb, 150 kb, 250 kb (outside 150 kb), and on chr2
        let peaks = [
            Peak::parse("chr1-100250-100750").unwrap(),
            Peak::parse("chr1-249900-250100").unwrap(),
            Peak::parse("chr1-349900-350100").unwrap(),
            Peak::parse("chr2-100250-100750").unwrap(),
        ];
        let rp = regulatory_potential(&peaks, &genes, 10_000.0, 150_000).unwrap();
        assert_eq!(rp.nrows(), 4);
        assert_eq!(rp.nnz(), 2);
        let w0 = rp.get_entry(0, 0).unwrap().into_value();
        assert!((w0 - 2f32.powf(-0.05)).abs() < 1e-6, "{w0}");
        let w1 = rp.get_entry(1, 0).unwrap().into_value();
        assert!((w1 - 2f32.powi(-15)).abs() < 1e-9, "{w1}");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(regulatory_potential(&peaks, &genes, bad, 10).is_err());
        }
    }

    #[test]
    fn gene_activity_needs_matching_shapes() {
        let atac = CsrMatrix::<f32>::zeros(2, 3);
        let rp = CsrMatrix::<f32>::zeros(4, 5);
        let err = gene_activity(&atac, &rp).unwrap_err().to_string();
        assert!(err.contains("3 peaks") && err.contains('4'), "{err}");
    }
}
