//! SAILERX as an [`Integrator`]: fitted by the training loop on the common data, the
//! embedding is the ATAC encoder's means (`[mu_atac, mu_rna]` for the symmetric variant).

use std::path::Path;

use ndarray::Array2;

use super::input::Placeholders;
use super::{Sailerx, SailerxInput};
use crate::data::{CellData, FitCells};
use crate::error::Result;
use crate::integrate::Integrator;
use crate::train::{self, EpochRecord, TrainHistory, TrainOptions};

impl Integrator for Sailerx {
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        let spare = Placeholders::of(data);
        let input = SailerxInput::from_cells(data, &spare, true, self.config.symmetric)?;
        input.check()?;
        train::fit_with_extra(
            &*self,
            &input,
            cells.train,
            cells.extra,
            cells.val,
            opts,
            seed,
            observer,
        )
    }

    fn embed(&self, data: &CellData<'_>, cells: &[usize]) -> Result<Array2<f32>> {
        let spare = Placeholders::of(data);
        let input = SailerxInput::from_cells(data, &spare, false, self.config.symmetric)?;
        self.embed_input(&input, cells)
    }

    /// SAILERX's reconstruction terms are sums over a batch's cells (Bernoulli NLL over
    /// the peaks, times `recon_weight`; NB NLL over the genes): their total over `cells`
    /// divided by the number of cells.
    fn reconstruction(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        batch_size: usize,
    ) -> Result<Vec<(&'static str, f64)>> {
        if cells.is_empty() {
            return Ok(Vec::new());
        }
        let spare = Placeholders::of(data);
        let input = SailerxInput::from_cells(data, &spare, true, self.config.symmetric)?;
        let parts = train::evaluate(self, &input, cells, batch_size)?;
        Ok([("recon", "atac"), ("rna_recon", "rna")]
            .into_iter()
            .filter_map(|(part, name)| {
                let (_, v) = parts.iter().find(|(k, _)| k == part)?;
                Some((name, v / cells.len() as f64))
            })
            .collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        self.save_weights(&dir.join("model.safetensors"))
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        self.load_weights(&dir.join("model.safetensors"))
    }
}
