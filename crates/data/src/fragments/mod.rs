//! 10x Genomics ATAC fragments files (`fragments.tsv.gz`) counted into peaks per cell.
//!
//! A fragments file lists one ATAC fragment a line, `chrom start end barcode count`
//! (0-based, `end` exclusive, tab-separated; `count` is how many read pairs were
//! collapsed into the fragment), sorted by chromosome and start, BGZF-compressed with a
//! tabix index (`fragments.tsv.gz.tbi`) beside it; 10x writes `#` header lines first.
//!
//! [`count`] turns one into a cells x peaks matrix the way Cell Ranger ARC builds its
//! peak-barcode matrix: a fragment contributes its two Tn5 cut sites, `start` and
//! `end - 1`, and each cut site counts 1 for every peak `[start, end)` containing it (a
//! short fragment inside one peak adds 2 to it). The duplicate count is ignored (a line is
//! one fragment), barcodes outside the given list are skipped, and chromosome names are
//! unified ([`crate::genome::unify_chrom`]) so that `chr1` fragments meet `1-…` peaks.
//!
//! The file is read as one stream whatever its size: memory grows with the distinct
//! (cell, peak) entries (at most about twice [`Limits::max_nonzeros`] entries of 8 bytes
//! are held before the matrix is built), never with the number of fragments. BGZF is read
//! with `noodles-bgzf`, plain gzip with flate2, and uncompressed files as they are. When
//! a tabix index sits beside the file it is read with `noodles-tabix` and checked against
//! the data (same columns, the same chromosomes in the same order, the same record count
//! per chromosome where the index records it); an index that does not match or does not
//! parse is an error, a missing one is fine. The index is not used to seek: a genome-wide
//! peak set needs every chromosome, and one sequential pass counts each line exactly once
//! whatever the index says.

mod count;
mod stream;
mod tabix;
mod text;

use std::path::Path;

use crossomics_limits::Limits;

use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::Peak;
use crate::h5ad;
use crate::pair::SingleModality;
use crate::tenx;

pub use count::count;
pub use text::{read_barcodes, read_bed};

/// Counts `fragments` into the peaks of the BED file `peaks` for the cells listed in
/// `barcodes` (a 10x `barcodes.tsv(.gz)`): one modality, ready to pair with RNA through
/// [`crate::pair::join`].
pub fn read_atac(
    fragments: &Path,
    barcodes: &Path,
    peaks: &Path,
    limits: &Limits,
) -> Result<SingleModality<Peak>> {
    count_atac(fragments, barcodes, read_bed(peaks, limits)?, limits)
}

/// [`read_atac`] into given `peaks` (a trained model's own, say) instead of a BED file.
pub fn count_atac(
    fragments: &Path,
    barcodes: &Path,
    peaks: Vec<Peak>,
    limits: &Limits,
) -> Result<SingleModality<Peak>> {
    let barcodes = read_barcodes(barcodes, limits)?;
    let matrix = count(fragments, &barcodes, &peaks, limits)?;
    Ok(SingleModality {
        source: fragments.to_path_buf(),
        matrix,
        cells: CellTable::new(barcodes),
        features: peaks,
    })
}

/// A paired dataset from RNA counts and a fragments file (`format = "fragments"` in a
/// config): the cells are the RNA file's barcodes, the ATAC counts are `fragments`
/// counted into `peaks` (a BED file), or, without `peaks`, into the peaks of the RNA file
/// itself when it is a 10x Multiome matrix that has them.
///
/// `rna` is a 10x feature-barcode matrix (`filtered_feature_bc_matrix.h5` or its folder;
/// the `Gene Expression` features are the RNA) or an `.h5ad` of raw counts.
pub fn read_paired(
    rna: &Path,
    fragments: &Path,
    peaks: Option<&Path>,
    limits: &Limits,
) -> Result<PairedDataset> {
    let (name, rna_counts, own_peaks) = if rna.is_dir() {
        tenx_rna(tenx::read_mtx_dir_parts(rna, limits)?)?
    } else if tenx::is_tenx_h5(rna, limits) {
        tenx_rna(tenx::read_h5_parts(rna, limits)?)?
    } else {
        let opts = h5ad::ReadOptions {
            limits: *limits,
            layer: None,
            require_counts: true,
        };
        let stem = rna
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| rna.display().to_string());
        (stem, h5ad::read_with(rna, &opts)?, None)
    };
    let peaks = match (peaks, own_peaks) {
        (Some(bed), _) => read_bed(bed, limits)?,
        (None, Some(own)) => own,
        (None, None) => {
            return Err(DataError::invalid(
                rna.display().to_string(),
                format!(
                    "has no peaks to count {} into: `peaks` (a BED file) is required unless \
                     the RNA source is a 10x Multiome matrix with `Peaks` features",
                    fragments.display()
                ),
            ));
        }
    };
    let atac = count(fragments, rna_counts.cells.barcodes(), &peaks, limits)?;
    PairedDataset::new(
        name,
        rna_counts.matrix,
        atac,
        rna_counts.cells,
        rna_counts.features,
        peaks,
    )
}

/// The RNA of a 10x matrix and its own peaks, if it has them.
fn tenx_rna(parts: tenx::TenxParts) -> Result<(String, SingleModality<String>, Option<Vec<Peak>>)> {
    let Some(rna) = parts.rna else {
        return Err(DataError::invalid(
            parts.feature_types_source,
            format!(
                "no `{}` features to pair the fragments with; this matrix has: {}",
                tenx::GENE_EXPRESSION,
                parts.feature_types.join(", ")
            ),
        ));
    };
    Ok((parts.name, rna, parts.atac.map(|a| a.features)))
}
