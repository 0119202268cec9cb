//! The simulation model ([`Simulator`]): built once from parameters and a calibration
//! (layout, type and batch effects, rate tables), then cells drawn independently by index,
//! one at a time or as a whole dataset in memory.

use std::io::Write;

use nalgebra_sparse::CsrMatrix;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use super::calibration::{Calibration, LogNormalFit, TypeEffect};
use super::layout::{GeneLink, Layout, digits};
use super::params::{AtacModel, SimulatorParams};
use super::sampling::{Count, RateTable, RowBuf, sample_row};
use crate::dataset::{CellTable, PairedDataset};
use crate::error::{DataError, Result};
use crate::genome::Peak;

/// One simulated cell's labels and depths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellDraw {
    pub cell_type: usize,
    pub batch: usize,
    /// Expected total RNA count (depth times the total relative expression).
    pub lib_rna: f64,
    /// Expected total ATAC count under the Poisson model (depth times the total rate).
    pub lib_atac: f64,
}

/// One cell: labels and depths, and its RNA and ATAC entries `(feature, count)` sorted
/// by feature.
#[derive(Debug, Clone, PartialEq)]
pub struct SimCell {
    pub draw: CellDraw,
    pub rna: Vec<(u32, u32)>,
    pub atac: Vec<(u32, u32)>,
}

/// The simulation model, built once from parameters and a calibration; cells are then
/// drawn independently by index ([`Simulator::cell`]), in memory ([`Simulator::dataset`])
/// or streamed to a folder ([`Simulator::write_dir`]).
#[derive(Debug, Clone)]
pub struct Simulator {
    pub(super) params: SimulatorParams,
    pub(super) gene_names: Vec<String>,
    pub(super) gene_chrom: Vec<u16>,
    pub(super) gene_tss: Vec<u64>,
    pub(super) peaks: Vec<Peak>,
    pub(super) links: Vec<GeneLink>,
    pub(super) type_names: Vec<String>,
    pub(super) batch_names: Vec<String>,
    pub(super) type_proportions: Vec<f64>,
    pub(super) type_cdf: Vec<f64>,
    pub(super) gene_lfc: Vec<Vec<f32>>,
    pub(super) peak_lfc: Vec<Vec<f32>>,
    pub(super) gene_theta: Vec<f32>,
    pub(super) rna_tables: Vec<RateTable>,
    pub(super) atac_tables: Vec<RateTable>,
    pub(super) rna_depth: LogNormalFit,
    pub(super) atac_depth: LogNormalFit,
    pub(super) depth_correlation: f64,
    pub(super) rna_total: f64,
    pub(super) atac_total: f64,
    pub(super) cell_rng: ChaCha8Rng,
}

/// Stream used for the model (layout, effects, links); cell `i` uses stream `i`.
const MODEL_STREAM: u64 = u64::MAX;

/// Shifts each feature's log effects (`effects[group][feature]`) so that the
/// weighted mean of `exp(effect)` over the groups is 1.
fn center_log_effects(effects: &mut [Vec<f32>], weights: &[f64]) {
    let Some(n) = effects.first().map(Vec::len) else {
        return;
    };
    for f in 0..n {
        let mean: f64 = effects
            .iter()
            .zip(weights)
            .map(|(e, w)| w * f64::from(e[f]).exp())
            .sum();
        let shift = mean.ln() as f32;
        for e in effects.iter_mut() {
            e[f] -= shift;
        }
    }
}

impl Simulator {
    pub fn new(params: &SimulatorParams, calibration: &Calibration) -> Result<Self> {
        params.validate()?;
        calibration.validate()?;
        let p = params;
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        rng.set_stream(MODEL_STREAM);
        let normal = |rng: &mut ChaCha8Rng| -> f64 { rng.sample(StandardNormal) };

        // Layout: genes (TSS) and peaks spread over the chromosomes by length.
        let layout = Layout::new(p, &mut rng);

        // Per-feature parameters: the fitted ones in order, or resampled.
        let sources = |rng: &mut ChaCha8Rng, n: usize, n_fit: usize| -> Vec<usize> {
            if n == n_fit {
                (0..n).collect()
            } else {
                (0..n).map(|_| rng.gen_range(0..n_fit)).collect()
            }
        };
        let gene_src = sources(&mut rng, p.n_genes, calibration.gene_relative_mean.len());
        let peak_src = sources(&mut rng, p.n_peaks, calibration.peak_rate.len());
        let gene_base: Vec<f64> = gene_src
            .iter()
            .map(|&s| calibration.gene_relative_mean[s])
            .collect();
        let gene_theta: Vec<f32> = gene_src
            .iter()
            .map(|&s| calibration.gene_dispersion[s] as f32)
            .collect();
        let peak_base: Vec<f64> = peak_src.iter().map(|&s| calibration.peak_rate[s]).collect();
        let rna_total: f64 = gene_base.iter().sum();
        let atac_total: f64 = peak_base.iter().sum();
        if rna_total <= 0.0 || atac_total <= 0.0 {
            return Err(DataError::invalid(
                "simulator",
                "every resampled gene (or peak) has zero expression; use more features",
            ));
        }

        // Cell types: the calibration's (sorted) frequencies stretched to n_types.
        let props = &calibration.type_proportions;
        let mut type_proportions: Vec<f64> = if props.is_empty() {
            vec![1.0; p.n_types]
        } else {
            (0..p.n_types)
                .map(|t| props[t * props.len() / p.n_types].max(1e-6))
                .collect()
        };
        let sum: f64 = type_proportions.iter().sum();
        type_proportions.iter_mut().for_each(|w| *w /= sum);
        let mut type_cdf: Vec<f64> = type_proportions
            .iter()
            .scan(0.0, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        *type_cdf.last_mut().expect("n_types >= 1") = 1.0;

        // Type effects (spike and slab), none with a single type.
        let spike_slab = |rng: &mut ChaCha8Rng, n: usize, e: TypeEffect| -> Vec<f32> {
            let sd = e.log_fold_sd * p.type_effect;
            (0..n)
                .map(|_| {
                    if rng.r#gen::<f64>() < e.fraction {
                        (sd * normal(rng)) as f32
                    } else {
                        0.0
                    }
                })
                .collect()
        };
        let type_effects = |rng: &mut ChaCha8Rng, n: usize, e: TypeEffect| -> Vec<Vec<f32>> {
            (0..p.n_types)
                .map(|_| {
                    if p.n_types > 1 {
                        spike_slab(rng, n, e)
                    } else {
                        vec![0.0; n]
                    }
                })
                .collect()
        };
        let mut gene_lfc = type_effects(&mut rng, p.n_genes, calibration.rna_type_effect);

        // Links: each peak, with probability link_fraction, to its nearest gene.
        let links = layout.link_nearest_genes(p.link_fraction, &mut rng);
        let mut peak_lfc = type_effects(&mut rng, p.n_peaks, calibration.atac_type_effect);
        for link in &links {
            for t in 0..p.n_types {
                peak_lfc[t][link.peak] =
                    (p.link_strength * f64::from(gene_lfc[t][link.gene])) as f32;
            }
        }
        // Effects are relative to the population, whose per-feature means (and so its
        // sparsity) are what the calibration measured.
        center_log_effects(&mut gene_lfc, &type_proportions);
        center_log_effects(&mut peak_lfc, &type_proportions);

        // Batch effects, centred like the type effects (equal batch weights).
        let batch_weights = vec![1.0 / p.n_batches as f64; p.n_batches];
        let batch_effects = |rng: &mut ChaCha8Rng, n: usize| -> Vec<Vec<f32>> {
            let mut beta: Vec<Vec<f32>> = (0..p.n_batches)
                .map(|_| {
                    if p.n_batches > 1 && p.batch_effect > 0.0 {
                        (0..n)
                            .map(|_| (p.batch_effect * normal(rng)) as f32)
                            .collect()
                    } else {
                        vec![0.0; n]
                    }
                })
                .collect();
            center_log_effects(&mut beta, &batch_weights);
            beta
        };
        let gene_beta = batch_effects(&mut rng, p.n_genes);
        let peak_beta = batch_effects(&mut rng, p.n_peaks);

        // Rate tables per (type, batch), normalized to the base total.
        let table = |base: &[f64], lfc: &[f32], beta: &[f32], total: f64| -> RateTable {
            let raw: Vec<f64> = base
                .iter()
                .zip(lfc)
                .zip(beta)
                .map(|((b, l), e)| b * (f64::from(*l) + f64::from(*e)).exp())
                .collect();
            let z: f64 = raw.iter().sum();
            let scaled: Vec<f64> = raw.iter().map(|r| r * total / z).collect();
            RateTable::new(&scaled)
        };
        let mut rna_tables = Vec::with_capacity(p.n_types * p.n_batches);
        let mut atac_tables = Vec::with_capacity(p.n_types * p.n_batches);
        for t in 0..p.n_types {
            for b in 0..p.n_batches {
                rna_tables.push(table(&gene_base, &gene_lfc[t], &gene_beta[b], rna_total));
                atac_tables.push(table(&peak_base, &peak_lfc[t], &peak_beta[b], atac_total));
            }
        }

        let mut rna_depth = calibration.rna_library;
        let mut atac_depth = calibration.atac_library;
        if let Some(sd) = p.depth_sd {
            rna_depth.log_sd = sd;
            atac_depth.log_sd = sd;
        }
        let mut cell_rng = ChaCha8Rng::seed_from_u64(p.seed);
        cell_rng.set_stream(0);
        let tw = digits(p.n_types).max(2);
        Ok(Self {
            params: p.clone(),
            gene_names: layout.gene_names,
            gene_chrom: layout.gene_chrom,
            gene_tss: layout.gene_tss,
            peaks: layout.peaks,
            links,
            type_names: (0..p.n_types)
                .map(|t| format!("type{:0tw$}", t + 1))
                .collect(),
            batch_names: (0..p.n_batches)
                .map(|b| format!("batch{}", b + 1))
                .collect(),
            type_proportions,
            type_cdf,
            gene_lfc,
            peak_lfc,
            gene_theta,
            rna_tables,
            atac_tables,
            rna_depth,
            atac_depth,
            depth_correlation: calibration.library_correlation,
            rna_total,
            atac_total,
            cell_rng,
        })
    }

    pub fn params(&self) -> &SimulatorParams {
        &self.params
    }

    pub fn genes(&self) -> &[String] {
        &self.gene_names
    }

    /// Chromosome and TSS of each gene.
    pub fn gene_position(&self, gene: usize) -> (&str, u64) {
        (
            &self.params.chromosomes[self.gene_chrom[gene] as usize],
            self.gene_tss[gene],
        )
    }

    pub fn peaks(&self) -> &[Peak] {
        &self.peaks
    }

    /// Gene-peak links, by peak.
    pub fn links(&self) -> &[GeneLink] {
        &self.links
    }

    pub fn type_names(&self) -> &[String] {
        &self.type_names
    }

    pub fn batch_names(&self) -> &[String] {
        &self.batch_names
    }

    pub fn type_proportions(&self) -> &[f64] {
        &self.type_proportions
    }

    /// The true log fold change of every gene in a cell type, relative to the population
    /// (centred so that the type-weighted mean of `exp(lfc)` is 1 for every gene).
    pub fn gene_log_fold_changes(&self, cell_type: usize) -> &[f32] {
        &self.gene_lfc[cell_type]
    }

    /// The true log fold change of every peak's rate in a cell type.
    pub fn peak_log_fold_changes(&self, cell_type: usize) -> &[f32] {
        &self.peak_lfc[cell_type]
    }

    /// Bytes held by the rate tables and effects (independent of the number of cells).
    pub fn model_bytes(&self) -> usize {
        let tables: usize = self
            .rna_tables
            .iter()
            .chain(&self.atac_tables)
            .map(|t| t.order.len() * 8)
            .sum();
        tables + (self.params.n_types + 1) * (self.params.n_genes + self.params.n_peaks) * 4
    }

    pub(super) fn scratch(&self) -> Scratch {
        Scratch {
            rna: RowBuf::new(self.params.n_genes),
            atac: RowBuf::new(self.params.n_peaks),
        }
    }

    /// Cell `index` on its own (the same as in [`Simulator::dataset`]).
    pub fn cell(&self, index: usize) -> SimCell {
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let draw = self.draw_cell(index, &mut scratch, &mut rna, &mut atac);
        SimCell { draw, rna, atac }
    }

    pub(super) fn draw_cell(
        &self,
        index: usize,
        scratch: &mut Scratch,
        rna: &mut Vec<(u32, u32)>,
        atac: &mut Vec<(u32, u32)>,
    ) -> CellDraw {
        let p = &self.params;
        let mut rng = self.cell_rng.clone();
        rng.set_stream(index as u64);
        let u: f64 = rng.r#gen();
        let cell_type = self
            .type_cdf
            .partition_point(|&c| c <= u)
            .min(p.n_types - 1);
        let batch = rng.gen_range(0..p.n_batches);
        let z1: f64 = rng.sample(StandardNormal);
        let z2: f64 = rng.sample(StandardNormal);
        let rho = self.depth_correlation;
        let za = rho * z1 + (1.0 - rho * rho).sqrt() * z2;
        let d_rna = (self.rna_depth.log_mean + self.rna_depth.log_sd * z1).exp();
        let d_atac = (self.atac_depth.log_mean + self.atac_depth.log_sd * za).exp();
        let k = cell_type * p.n_batches + batch;
        let theta = &self.gene_theta;
        sample_row(
            &mut rng,
            d_rna,
            &self.rna_tables[k],
            |g| Count::Nb(f64::from(theta[g as usize])),
            &mut scratch.rna,
        );
        scratch.rna.drain_into(rna);
        let law = match p.atac_model {
            AtacModel::Bernoulli => Count::Bernoulli,
            AtacModel::Poisson => Count::Poisson,
        };
        sample_row(
            &mut rng,
            d_atac,
            &self.atac_tables[k],
            |_| law,
            &mut scratch.atac,
        );
        scratch.atac.drain_into(atac);
        CellDraw {
            cell_type,
            batch,
            lib_rna: d_rna * self.rna_total,
            lib_atac: d_atac * self.atac_total,
        }
    }

    pub(super) fn barcode(&self, index: usize) -> String {
        format!("simcell{:0w$}", index + 1, w = digits(self.params.n_cells))
    }

    pub(super) fn cell_line(&self, index: usize, draw: &CellDraw, out: &mut Vec<u8>) {
        // writing to a Vec cannot fail
        let _ = writeln!(
            out,
            "{}\t{}\t{}\t{:.3}\t{:.3}",
            self.barcode(index),
            self.type_names[draw.cell_type],
            self.batch_names[draw.batch],
            draw.lib_rna,
            draw.lib_atac
        );
    }

    /// The whole simulation in memory (for small sizes): exactly the counts that
    /// [`Simulator::write_dir`] writes.
    pub fn dataset(&self) -> Result<PairedDataset> {
        let p = &self.params;
        let mut scratch = self.scratch();
        let (mut rna, mut atac) = (Vec::new(), Vec::new());
        let mut rna_csr = CsrParts::default();
        let mut atac_csr = CsrParts::default();
        let mut columns: [Vec<String>; 4] = Default::default();
        for i in 0..p.n_cells {
            let draw = self.draw_cell(i, &mut scratch, &mut rna, &mut atac);
            rna_csr.push_row(&rna);
            atac_csr.push_row(&atac);
            columns[0].push(self.type_names[draw.cell_type].clone());
            columns[1].push(self.batch_names[draw.batch].clone());
            columns[2].push(format!("{:.3}", draw.lib_rna));
            columns[3].push(format!("{:.3}", draw.lib_atac));
        }
        let mut cells = CellTable::new((0..p.n_cells).map(|i| self.barcode(i)).collect());
        for (name, values) in CELL_COLUMNS.iter().zip(columns) {
            cells = cells.with_inferred_column(name, values)?;
        }
        PairedDataset::new(
            "simulated",
            rna_csr.finish(p.n_cells, p.n_genes),
            atac_csr.finish(p.n_cells, p.n_peaks),
            cells,
            self.gene_names.clone(),
            self.peaks.clone(),
        )
    }
}

pub(super) const CELL_COLUMNS: [&str; 4] = ["cell_type", "batch", "lib_rna", "lib_atac"];

#[derive(Debug)]
pub(super) struct Scratch {
    rna: RowBuf,
    atac: RowBuf,
}

#[derive(Debug, Default)]
struct CsrParts {
    offsets: Vec<usize>,
    indices: Vec<usize>,
    values: Vec<f32>,
}

impl CsrParts {
    fn push_row(&mut self, entries: &[(u32, u32)]) {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        for &(c, v) in entries {
            self.indices.push(c as usize);
            self.values.push(v as f32);
        }
        self.offsets.push(self.indices.len());
    }

    fn finish(mut self, rows: usize, cols: usize) -> CsrMatrix<f32> {
        if self.offsets.is_empty() {
            self.offsets.push(0);
        }
        CsrMatrix::try_from_csr_data(rows, cols, self.offsets, self.indices, self.values)
            .expect("rows are sorted and within the matrix")
    }
}
