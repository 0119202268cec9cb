//! Where the simulated features lie: genes (named, with a TSS) and peaks spread over
//! GRCh38-sized chromosomes by length, and peaks linked to their nearest gene.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::params::SimulatorParams;
use crate::genome::Peak;

/// The GRCh38 length of a (unified) chromosome name; 100 Mb for any other name.
pub(super) fn chromosome_length(name: &str) -> u64 {
    crate::transfer::GenomeBuild::Grch38
        .chrom_length(name)
        .unwrap_or(100_000_000)
}

/// The number of decimal digits of `n` (at least 1), for zero-padded names.
pub(super) fn digits(n: usize) -> usize {
    n.max(1).to_string().len()
}

/// Splits `n` items over weights by largest remainder.
fn allocate(n: usize, weights: &[u64]) -> Vec<usize> {
    let total: u128 = weights.iter().map(|&w| u128::from(w)).sum();
    let exact: Vec<u128> = weights.iter().map(|&w| n as u128 * u128::from(w)).collect();
    let mut out: Vec<usize> = exact.iter().map(|e| (e / total) as usize).collect();
    let mut rest: Vec<usize> = (0..weights.len()).collect();
    rest.sort_by_key(|&i| (std::cmp::Reverse(exact[i] % total), i));
    let missing = n - out.iter().sum::<usize>();
    for &i in rest.iter().take(missing) {
        out[i] += 1;
    }
    out
}

/// A peak linked to a gene: the peak's type effects follow the gene's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GeneLink {
    pub gene: usize,
    pub peak: usize,
    /// Distance from the gene's TSS to the peak's centre, bp.
    pub distance: u64,
}

/// Genes and peaks spread over the chromosomes by length.
#[derive(Debug)]
pub(super) struct Layout {
    pub(super) gene_names: Vec<String>,
    /// Per gene: its chromosome (an index into the parameters' chromosomes).
    pub(super) gene_chrom: Vec<u16>,
    pub(super) gene_tss: Vec<u64>,
    pub(super) peaks: Vec<Peak>,
    /// Genes per chromosome, in order.
    genes_per: Vec<usize>,
    /// Peaks per chromosome, in order.
    peaks_per: Vec<usize>,
}

impl Layout {
    /// Lays `p.n_genes` genes (TSS) and `p.n_peaks` peaks over `p.chromosomes`, each
    /// chromosome getting a share by its length; positions are drawn from `rng`.
    pub(super) fn new(p: &SimulatorParams, rng: &mut ChaCha8Rng) -> Self {
        let lengths: Vec<u64> = p.chromosomes.iter().map(|c| chromosome_length(c)).collect();
        let genes_per = allocate(p.n_genes, &lengths);
        let peaks_per = allocate(p.n_peaks, &lengths);
        let width = digits(p.n_genes).max(5);
        let mut gene_chrom = Vec::with_capacity(p.n_genes);
        let mut gene_tss = Vec::with_capacity(p.n_genes);
        let mut peaks = Vec::with_capacity(p.n_peaks);
        for (c, &len) in lengths.iter().enumerate() {
            let margin = if len > 1_000_000 { 10_000 } else { 0 };
            let usable = len - 2 * margin;
            if genes_per[c] > 0 {
                let slot = (usable / genes_per[c] as u64).max(1);
                for k in 0..genes_per[c] as u64 {
                    gene_chrom.push(c as u16);
                    gene_tss.push(margin + k * slot + rng.gen_range(0..slot));
                }
            }
            if peaks_per[c] > 0 {
                let slot = usable / peaks_per[c] as u64;
                for k in 0..peaks_per[c] as u64 {
                    let w = rng.gen_range(300..=1200).min(slot / 2).max(1);
                    let start = margin + k * slot + rng.gen_range(0..=slot - w);
                    peaks.push(Peak {
                        chrom: p.chromosomes[c].clone(),
                        start,
                        end: start + w,
                    });
                }
            }
        }
        let gene_names = (0..p.n_genes)
            .map(|g| format!("{}{:0width$}", p.gene_prefix, g + 1))
            .collect();
        Self {
            gene_names,
            gene_chrom,
            gene_tss,
            peaks,
            genes_per,
            peaks_per,
        }
    }

    /// Links each peak, with probability `link_fraction`, to the gene whose TSS is nearest
    /// its centre on the same chromosome (one uniform draw from `rng` per peak).
    pub(super) fn link_nearest_genes(
        &self,
        link_fraction: f64,
        rng: &mut ChaCha8Rng,
    ) -> Vec<GeneLink> {
        let mut links = Vec::new();
        let mut g0 = 0usize;
        let mut j0 = 0usize;
        for (&n_genes, &n_peaks) in self.genes_per.iter().zip(&self.peaks_per) {
            let genes = g0..g0 + n_genes;
            for (j, peak) in self.peaks.iter().enumerate().skip(j0).take(n_peaks) {
                let u: f64 = rng.r#gen();
                if genes.is_empty() || u >= link_fraction {
                    continue;
                }
                let centre = (peak.start + peak.end) / 2;
                let tss = &self.gene_tss[genes.clone()];
                let k = tss.partition_point(|&t| t < centre);
                let nearest = [k.checked_sub(1), (k < tss.len()).then_some(k)]
                    .into_iter()
                    .flatten()
                    .min_by_key(|&i| (tss[i].abs_diff(centre), i))
                    .expect("the chromosome has genes");
                links.push(GeneLink {
                    gene: g0 + nearest,
                    peak: j,
                    distance: tss[nearest].abs_diff(centre),
                });
            }
            g0 += n_genes;
            j0 += n_peaks;
        }
        links
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocate_splits_exactly() {
        assert_eq!(allocate(10, &[1, 1, 1]), vec![4, 3, 3]);
        assert_eq!(allocate(0, &[5, 7]), vec![0, 0]);
        let a = allocate(100_000, &[248, 242, 50]);
        assert_eq!(a.iter().sum::<usize>(), 100_000);
    }
}
