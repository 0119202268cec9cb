//! BABEL (Wu et al., PNAS 2021) and CrossMP (Genes 15(7):882, 2024): one shared latent
//! space reached from either modality, decoded into both (`docs/models.md`).
//!
//! - RNA encoder: log1p-normalized genes -> `rna_hidden` (64) -> `latent_dim` (16),
//!   BatchNorm + PReLU.
//! - RNA decoder: latent -> 64 -> negative binomial head: mean `clamp(exp(.)) * s_i`
//!   (size factor), per-cell inverse dispersion `clamp(softplus(.))`, on raw counts.
//! - ATAC encoder / decoder: split by chromosome (`n_c -> 32 -> 16` per chromosome,
//!   concatenated, then to the latent; the decoder mirrors it), Bernoulli logits on the
//!   binarized peaks. The encoder's first layer reads the CSR rows (`sparse_input`).
//! - CrossMP (`kind = "crossmp"`): the ATAC latent is `enc_atac(peaks) +
//!   enc_rp(gene activity)`, the gene activity being the peaks through the peak-to-gene
//!   regulatory potential (exponential decay, 10 kb half-distance), computed by the runner.
//!
//! Loss per minibatch, each term a mean over its entries:
//! `NB(RNA <- z_rna) + a * BCE(ATAC <- z_atac) + c * [NB(RNA <- z_atac) + a * BCE(ATAC <- z_rna)]`
//! with `a = atac_weight` (1.33) and `c = cross_weight` (1.0). The latent is a point, not
//! a distribution (BABEL's autoencoder has no KL term).

use std::path::Path;

use crossomics_data::loader::{DenseSource, Loader, Prefetch, RowSource, Source};
use crossomics_encoders::{
    ChromGroups, ChromSplitConfig, ChromSplitDecoder, ChromSplitEncoder, CsrBatch, Decoder,
    Encoder, HeadConfig, HeadDecoder, Likelihood, LikelihoodDecoder, LikelihoodKind, Mlp,
    MlpConfig, SparseEncoder, init,
};
use crossomics_losses::recon;
use ndarray::Array2;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, ModuleT};
use tch::{Device, Tensor};

use crate::data::csr_batch;
use crate::data::{CellData, FitCells};
use crate::error::{ModelError, Result};
use crate::spec::{self, BuildContext, Checked, ModelSpec, Needs, ParamError};
use crate::tensor;
use crate::train::{
    self, EpochRecord, LossOutput, Minibatch, StepContext, TrainHistory, TrainOptions, Trainable,
};
use crate::translate::{Direction, Prediction, Translator};

/// `[model] kind = "babel"`; `kind = "crossmp"` takes the same keys ([`CrossmpConfig`])
/// and adds the gene-activity branch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BabelConfig {
    pub latent_dim: i64,
    /// RNA encoder widths (the decoder uses them reversed).
    pub rna_hidden: Vec<i64>,
    /// Shape of the chromosome-split ATAC modules (BABEL: `hidden = [32, 16]`).
    pub chrom_split: ChromSplitConfig,
    /// The RNA likelihood head (BABEL's NB by default).
    pub rna_head: HeadConfig,
    /// Weight of the two ATAC terms (BABEL: 1.33).
    pub atac_weight: f64,
    /// Weight of the two cross-modal terms (BABEL: 1.0).
    pub cross_weight: f64,
    /// Widths of the gene-activity encoder (CrossMP only).
    pub activity_hidden: Vec<i64>,
    /// Compute the ATAC encoder's first layer from the CSR rows.
    pub sparse_input: bool,
}

impl Default for BabelConfig {
    fn default() -> Self {
        Self {
            latent_dim: 16,
            rna_hidden: vec![64],
            chrom_split: ChromSplitConfig {
                hidden: vec![32, 16],
                ..ChromSplitConfig::default()
            },
            rna_head: HeadConfig::default(),
            atac_weight: 1.33,
            cross_weight: 1.0,
            activity_hidden: vec![64],
            sparse_input: true,
        }
    }
}

/// `[model] kind = "crossmp"`: BABEL's keys, and the gene-activity branch of the ATAC
/// encoder (`activity_hidden` widths) reading the peaks' gene activity.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CrossmpConfig(pub BabelConfig);

impl ModelSpec for BabelConfig {
    const TRANSLATES: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        spec::check_latent_dim(self.latent_dim)?;
        spec::check_widths(&[
            ("rna_hidden", &self.rna_hidden),
            ("activity_hidden", &self.activity_hidden),
        ])?;
        spec::check_weights(&[
            ("atac_weight", self.atac_weight),
            ("cross_weight", self.cross_weight),
        ])?;
        if self.rna_head.likelihood != LikelihoodKind::Nb {
            return Err(ParamError::new(
                "rna_head.likelihood",
                format!(
                    "{:?}: the RNA head is a negative binomial",
                    self.rna_head.likelihood
                ),
            ));
        }
        self.chrom_split
            .check()
            .map_err(|e| ParamError::new("chrom_split", e.to_string()))?;
        self.rna_head
            .check()
            .map_err(|e| ParamError::new("rna_head", e.to_string()))
    }

    fn translator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        Ok(Box::new(build(this, ctx, None)?))
    }
}

impl ModelSpec for CrossmpConfig {
    const TRANSLATES: bool = true;

    fn check(&self) -> Result<(), ParamError> {
        self.0.check()
    }

    fn needs(&self) -> Needs {
        Needs {
            gene_activity: true,
            ..Needs::default()
        }
    }

    fn translator(this: &Checked<Self>, ctx: &BuildContext<'_>) -> Result<Box<dyn Translator>> {
        let babel = this.clone().map(|c| c.0);
        Ok(Box::new(build(
            &babel,
            ctx,
            Some(ctx.shapes.activity_genes.len()),
        )?))
    }
}

/// BABEL (CrossMP with `n_activity` gene-activity columns) for the context's shapes.
fn build(
    cfg: &Checked<BabelConfig>,
    ctx: &BuildContext<'_>,
    n_activity: Option<usize>,
) -> Result<Babel> {
    let groups =
        ChromGroups::from_chromosomes(ctx.peak_chroms, cfg.chrom_split.min_peaks_per_group)
            .map_err(|e| {
                ParamError::new(
                    "chrom_split",
                    format!("grouping the peaks by chromosome: {e}"),
                )
            })?;
    Babel::new(
        (**cfg).clone(),
        ctx.shapes.n_genes,
        &groups,
        n_activity,
        ctx.device,
    )
}

/// An MLP body and a linear output: a point in the latent space.
#[derive(Debug)]
struct PointEncoder {
    body: Mlp,
    out: nn::Linear,
}

impl PointEncoder {
    fn new(path: &nn::Path, input: i64, hidden: &[i64], latent: i64) -> Self {
        let body = Mlp::new(
            &(path / "body"),
            input,
            &MlpConfig {
                hidden: hidden.to_vec(),
                ..MlpConfig::default()
            },
        );
        let out = init::linear(path / "out", body.out_dim(), latent);
        Self { body, out }
    }

    fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        self.out.forward(&self.body.forward_t(x, train))
    }
}

/// The BABEL / CrossMP model.
#[derive(Debug)]
pub struct Babel {
    vs: nn::VarStore,
    config: BabelConfig,
    rna_encoder: PointEncoder,
    rna_decoder: HeadDecoder,
    atac_encoder: ChromSplitEncoder,
    atac_decoder: ChromSplitDecoder,
    activity_encoder: Option<PointEncoder>,
}

/// Loader sources of the model, in this order.
const RNA_VALUES: usize = 0;
const RNA_COUNTS: usize = 1;
const ATAC: usize = 2;
const SIZE_FACTORS: usize = 3;
const ACTIVITY: usize = 4;

impl Babel {
    /// A model for `n_genes` genes, peaks grouped by chromosome as `groups`, and (CrossMP)
    /// `n_activity` gene-activity columns.
    pub fn new(
        config: BabelConfig,
        n_genes: usize,
        groups: &ChromGroups,
        n_activity: Option<usize>,
        device: Device,
    ) -> Result<Self> {
        ModelSpec::check(&config)?;
        if n_genes == 0 || groups.n_peaks() == 0 {
            return Err(ModelError::Input(format!(
                "BABEL needs genes and peaks, got {n_genes} genes and {} peaks",
                groups.n_peaks()
            )));
        }
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = config.latent_dim;
        let module = |e: crossomics_encoders::EncoderError| {
            ModelError::from(crate::ParamError::new("chrom_split", e.to_string()))
        };
        let rna_encoder = PointEncoder::new(
            &(&root / "rna_encoder"),
            n_genes as i64,
            &config.rna_hidden,
            d,
        );
        let rna_decoder = HeadDecoder::new(
            &(&root / "rna_decoder"),
            d,
            0,
            n_genes as i64,
            &MlpConfig {
                hidden: config.rna_hidden.iter().rev().copied().collect(),
                ..MlpConfig::default()
            },
            &config.rna_head,
        )
        .map_err(module)?;
        let atac_encoder =
            ChromSplitEncoder::new(&(&root / "atac_encoder"), groups, 0, d, &config.chrom_split)
                .map_err(module)?;
        let atac_decoder =
            ChromSplitDecoder::new(&(&root / "atac_decoder"), groups, d, 0, &config.chrom_split)
                .map_err(module)?;
        let activity_encoder = match n_activity {
            None => None,
            Some(g) if g > 0 => Some(PointEncoder::new(
                &(&root / "activity_encoder"),
                g as i64,
                &config.activity_hidden,
                d,
            )),
            Some(_) => {
                return Err(ModelError::Input(
                    "CrossMP needs the gene activity of the peaks (a gene annotation that covers the peaks' genes)".into(),
                ));
            }
        };
        Ok(Self {
            vs,
            config,
            rna_encoder,
            rna_decoder,
            atac_encoder,
            atac_decoder,
            activity_encoder,
        })
    }

    pub fn config(&self) -> &BabelConfig {
        &self.config
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    /// `z` from the ATAC side: the chromosome-split encoder (on CSR rows when given) plus,
    /// for CrossMP, the gene-activity encoder.
    fn encode_atac(
        &self,
        x: &Tensor,
        csr: Option<&CsrBatch<'_>>,
        activity: Option<&Tensor>,
        train: bool,
    ) -> Result<Tensor> {
        let z = match csr {
            Some(c) if self.config.sparse_input => self.atac_encoder.encode_csr(c, None, train).mu,
            _ => self.atac_encoder.encode(x, None, train).mu,
        };
        Ok(match (&self.activity_encoder, activity) {
            (Some(e), Some(a)) => z + e.forward(a, train),
            (Some(_), None) => {
                return Err(ModelError::Input(
                    "CrossMP needs the gene activity of the cells".into(),
                ));
            }
            (None, _) => z,
        })
    }

    /// The NB parameters of the RNA decoder at scale `s` (`None`: 1, the normalization target).
    fn decode_rna(&self, z: &Tensor, scale: Option<&Tensor>, train: bool) -> (Tensor, Tensor) {
        match self.rna_decoder.decode_likelihood(z, None, scale, train) {
            Likelihood::Nb { mu, theta } => (mu, theta),
            other => unreachable!("the RNA head is checked to be NB, not {other:?}"),
        }
    }
}

impl Trainable for Babel {
    type Input<'a> = CellData<'a>;

    fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// RNA values and counts, ATAC (dense + CSR), gene activity (CrossMP).
    fn sources<'a>(&self, input: &Self::Input<'a>) -> Vec<Source<'a>> {
        let mut s = Vec::new();
        if let (Some(v), Some(c), Some(a), Some(sf)) = (
            input.rna_values,
            input.rna_counts,
            input.atac,
            input.rna_size_factors,
        ) {
            s.push(Source::new(v));
            s.push(Source::new(c));
            s.push(Source::new(a).with_sparse(self.config.sparse_input));
            s.push(Source::new(DenseSource::column(sf)));
            if let (Some(_), Some(g)) = (&self.activity_encoder, input.gene_activity) {
                s.push(Source::new(g));
            }
        }
        s
    }

    fn loss(
        &self,
        input: &CellData<'_>,
        batch: &Minibatch<'_>,
        _: &StepContext,
        train: bool,
    ) -> Result<LossOutput> {
        let device = self.device();
        let by = "training BABEL";
        let rows = |source: usize, m: &dyn RowSource| match batch.dense(source) {
            Some(r) => tensor::from_dense_rows(r, device),
            None => tensor::rows_of(m, batch.cells, device),
        };
        let rna = rows(
            RNA_VALUES,
            CellData::need(input.rna_values, "RNA values", by)?,
        );
        let counts = rows(
            RNA_COUNTS,
            CellData::need(input.rna_counts, "RNA counts", by)?,
        );
        let atac = rows(ATAC, CellData::need(input.atac, "binarized ATAC", by)?);
        let sf = rows(
            SIZE_FACTORS,
            &DenseSource::column(CellData::need(
                input.rna_size_factors,
                "RNA size factors",
                by,
            )?),
        )
        .view([-1]);
        let activity = match (&self.activity_encoder, input.gene_activity) {
            (Some(_), Some(g)) => Some(rows(ACTIVITY, g)),
            _ => None,
        };
        let csr = csr_batch(batch, ATAC)?;
        let z_rna = self.rna_encoder.forward(&rna, train);
        let z_atac = self.encode_atac(&atac, csr.as_ref(), activity.as_ref(), train)?;
        let numel = counts.numel() as f64;
        let nb = |z: &Tensor| {
            let (mu, theta) = self.decode_rna(z, Some(&sf), train);
            recon::nb_sum(&mu, &theta, &counts) / numel
        };
        let bce =
            |z: &Tensor| recon::bernoulli_mean(&self.atac_decoder.decode(z, None, train), &atac);
        let rna_rna = nb(&z_rna);
        let atac_atac = bce(&z_atac);
        let rna_atac = nb(&z_atac);
        let atac_rna = bce(&z_rna);
        let (a, c) = (self.config.atac_weight, self.config.cross_weight);
        let total = &rna_rna + &atac_atac * a + (&rna_atac + &atac_rna * a) * c;
        Ok(LossOutput {
            total,
            parts: vec![
                ("rna_from_rna", rna_rna),
                ("atac_from_atac", atac_atac),
                ("rna_from_atac", rna_atac),
                ("atac_from_rna", atac_rna),
            ],
        })
    }
}

/// Runs `f` on chunks of 1,024 `cells` whose rows of `sources` the loader densified,
/// writing each chunk's `cells x width` result into one array.
fn chunked(
    cells: &[usize],
    sources: Vec<Source<'_>>,
    width: usize,
    mut f: impl FnMut(&Minibatch<'_>) -> Result<Tensor>,
) -> Result<Array2<f32>> {
    const CHUNK: usize = 1024;
    let mut out = Array2::<f32>::zeros((cells.len(), width));
    let loader = Loader::new(sources).map_err(|e| ModelError::Input(e.to_string()))?;
    let chunks = cells.chunks(CHUNK).map(<[usize]>::to_vec);
    tch::no_grad(|| {
        loader.run(chunks, Prefetch::Background, |loaded| -> Result<()> {
            for batch in loaded {
                let start = batch.index() * CHUNK;
                let y = tensor::to_array(&f(&Minibatch::loaded(&batch))?);
                out.slice_mut(ndarray::s![start..start + batch.len(), ..])
                    .assign(&y);
            }
            Ok(())
        })
    })?;
    Ok(out)
}

impl Babel {
    /// The latent points of `cells` computed from one modality (`from`'s source).
    fn latent(&self, data: &CellData<'_>, cells: &[usize], from: Direction) -> Result<Array2<f32>> {
        let device = self.device();
        let d = self.config.latent_dim as usize;
        match from {
            Direction::RnaToAtac => {
                let rna =
                    CellData::need(data.rna_values, "log1p-normalized RNA", "BABEL RNA -> ATAC")?;
                chunked(cells, vec![Source::new(rna)], d, |b| {
                    let x = tensor::from_dense_rows(b.dense(0).expect("dense source"), device);
                    Ok(self.rna_encoder.forward(&x, false))
                })
            }
            Direction::AtacToRna => {
                let atac = CellData::need(data.atac, "binarized ATAC", "BABEL ATAC -> RNA")?;
                let mut sources = vec![Source::new(atac).with_sparse(self.config.sparse_input)];
                if self.activity_encoder.is_some() {
                    sources.push(Source::new(CellData::need(
                        data.gene_activity,
                        "the gene activity",
                        "CrossMP ATAC -> RNA",
                    )?));
                }
                chunked(cells, sources, d, |b| {
                    let x = tensor::from_dense_rows(b.dense(0).expect("dense source"), device);
                    let a = b.dense(1).map(|r| tensor::from_dense_rows(r, device));
                    self.encode_atac(&x, csr_batch(b, 0)?.as_ref(), a.as_ref(), false)
                })
            }
        }
    }
}

impl Translator for Babel {
    fn fit(
        &mut self,
        data: &CellData<'_>,
        cells: FitCells<'_>,
        opts: &TrainOptions,
        seed: u64,
        observer: &mut dyn FnMut(&EpochRecord),
    ) -> Result<TrainHistory> {
        data.check()?;
        train::fit(&*self, data, cells.train, cells.val, opts, seed, observer)
    }

    fn translate(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        direction: Direction,
    ) -> Result<Prediction> {
        let z = self.latent(data, cells, direction)?;
        let device = self.device();
        let zt = tensor::from_array(z.view(), device);
        tch::no_grad(|| match direction {
            Direction::RnaToAtac => {
                let logits = self.atac_decoder.decode(&zt, None, false);
                Ok(Prediction::Atac {
                    probabilities: tensor::to_array(&logits.sigmoid()),
                })
            }
            Direction::AtacToRna => {
                let (mu, _) = self.decode_rna(&zt, None, false);
                Ok(Prediction::Rna {
                    log1p: tensor::to_array(&mu.log1p()),
                    expected_counts: Some(tensor::to_array(&mu)),
                })
            }
        })
    }

    fn embed(
        &self,
        data: &CellData<'_>,
        cells: &[usize],
        from: Direction,
    ) -> Result<Option<Array2<f32>>> {
        self.latent(data, cells, from).map(Some)
    }

    fn save(&self, dir: &Path) -> Result<()> {
        crate::translate::save_var_store(&self.vs, &dir.join("model.safetensors"))
    }

    fn load(&mut self, dir: &Path) -> Result<()> {
        let path = dir.join("model.safetensors");
        self.vs.load(&path).map_err(|e| ModelError::Checkpoint {
            path,
            reason: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nalgebra_sparse::CooMatrix;

    /// Two cell groups, each with its own genes and peaks on two chromosomes.
    fn toy(
        n: usize,
    ) -> (
        crossomics_data::Csr,
        crossomics_data::Csr,
        crossomics_data::Csr,
        Vec<f32>,
    ) {
        let (genes, peaks) = (8, 12);
        let mut counts = CooMatrix::new(n, genes);
        let mut atac = CooMatrix::new(n, peaks);
        for i in 0..n {
            let g = i % 2;
            for j in 0..genes / 2 {
                counts.push(i, g * genes / 2 + j, (1 + (i + j) % 4) as f32);
            }
            for j in 0..peaks {
                if (j % 2 == g) && (i * 5 + j) % 7 != 0 {
                    atac.push(i, j, 1.0);
                }
            }
        }
        let counts = crossomics_data::Csr::from(&counts);
        let lib: Vec<f32> = counts.row_iter().map(|r| r.values().iter().sum()).collect();
        let target = lib.iter().sum::<f32>() / n as f32;
        let mut values = counts.clone();
        for (i, mut row) in values.row_iter_mut().enumerate() {
            for v in row.values_mut() {
                *v = (*v / lib[i] * target).ln_1p();
            }
        }
        let sf = lib.iter().map(|l| l / target).collect();
        (values, counts, crossomics_data::Csr::from(&atac), sf)
    }

    #[test]
    fn babel_learns_both_directions_and_round_trips_its_weights() {
        tch::manual_seed(0);
        let n = 64;
        let (values, counts, atac, sf) = toy(n);
        let data = CellData {
            rna_values: Some(&values),
            rna_counts: Some(&counts),
            rna_size_factors: Some(&sf),
            atac: Some(&atac),
            ..Default::default()
        };
        let chroms: Vec<&str> = (0..12)
            .map(|j| if j < 6 { "chr1" } else { "chr2" })
            .collect();
        let groups = ChromGroups::from_chromosomes(&chroms, 1).unwrap();
        let cfg = BabelConfig {
            latent_dim: 4,
            rna_hidden: vec![16],
            chrom_split: ChromSplitConfig {
                hidden: vec![8, 4],
                min_peaks_per_group: 1,
                ..ChromSplitConfig::default()
            },
            ..BabelConfig::default()
        };
        let mut model = Babel::new(cfg.clone(), 8, &groups, None, Device::Cpu).unwrap();
        let cells: Vec<usize> = (0..n).collect();
        let opts = TrainOptions {
            epochs: 60,
            warmup_epochs: 0,
            batch_size: 16,
            lr: 1e-2,
            lr_decay: 1.0,
            grad_clip: Some(5.0),
            ..TrainOptions::default()
        };
        let h = model
            .fit(
                &data,
                FitCells {
                    extra: None,
                    train: &cells[..48],
                    val: &cells[48..56],
                },
                &opts,
                0,
                &mut |_| {},
            )
            .unwrap();
        let first = h.epochs[0].val_loss.unwrap();
        let last = h.epochs.last().unwrap().val_loss.unwrap();
        assert!(last < first, "validation loss {first} -> {last}");
        let test = &cells[56..];
        let source_only = CellData {
            atac: None,
            rna_counts: None,
            ..data
        };
        let Prediction::Atac { probabilities } = model
            .translate(&source_only, test, Direction::RnaToAtac)
            .unwrap()
        else {
            panic!()
        };
        assert_eq!(probabilities.dim(), (8, 12));
        // the group's peaks are predicted more open than the other group's
        for (r, &c) in test.iter().enumerate() {
            let own: f32 = (0..12)
                .filter(|j| j % 2 == c % 2)
                .map(|j| probabilities[[r, j]])
                .sum();
            let other: f32 = (0..12)
                .filter(|j| j % 2 != c % 2)
                .map(|j| probabilities[[r, j]])
                .sum();
            assert!(own > other + 1.0, "cell {c}: {own} vs {other}");
        }
        let atac_only = CellData {
            rna_values: None,
            rna_counts: None,
            rna_size_factors: None,
            ..data
        };
        let Prediction::Rna {
            log1p,
            expected_counts,
        } = model
            .translate(&atac_only, test, Direction::AtacToRna)
            .unwrap()
        else {
            panic!()
        };
        let counts_pred = expected_counts.unwrap();
        assert_eq!(log1p.dim(), (8, 8));
        for (l, m) in log1p.iter().zip(counts_pred.iter()) {
            assert!((l - m.ln_1p()).abs() < 1e-5);
        }
        for (r, &c) in test.iter().enumerate() {
            let own: f32 = (0..4).map(|j| log1p[[r, (c % 2) * 4 + j]]).sum();
            let other: f32 = (0..4).map(|j| log1p[[r, (1 - c % 2) * 4 + j]]).sum();
            assert!(own > other, "cell {c}: {own} vs {other}");
        }
        // the source modality is required
        let e = model
            .translate(&atac_only, test, Direction::RnaToAtac)
            .unwrap_err()
            .to_string();
        assert!(e.contains("RNA"), "{e}");
        // save -> load -> the same predictions
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let mut back = Babel::new(cfg, 8, &groups, None, Device::Cpu).unwrap();
        back.load(dir.path()).unwrap();
        assert_eq!(
            back.translate(&source_only, test, Direction::RnaToAtac)
                .unwrap(),
            model
                .translate(&source_only, test, Direction::RnaToAtac)
                .unwrap()
        );
        let z = model
            .embed(&source_only, test, Direction::RnaToAtac)
            .unwrap()
            .unwrap();
        assert_eq!(z.dim(), (8, 4));
    }

    #[test]
    fn crossmp_needs_the_gene_activity() {
        let groups = ChromGroups::single(5);
        let cfg = BabelConfig::default();
        let e = Babel::new(cfg.clone(), 3, &groups, Some(0), Device::Cpu)
            .unwrap_err()
            .to_string();
        assert!(e.contains("gene activity"), "{e}");
        let m = Babel::new(cfg, 3, &groups, Some(4), Device::Cpu).unwrap();
        assert!(m.activity_encoder.is_some());
        let bad = BabelConfig {
            atac_weight: -1.0,
            ..BabelConfig::default()
        };
        assert!(Babel::new(bad, 3, &groups, None, Device::Cpu).is_err());
    }
}
