//! Highly variable genes, Seurat v3 flavor, exactly as scanpy's
//! `sc.pp.highly_variable_genes(adata, flavor="seurat_v3", n_top_genes, batch_key, span)`
//! (scanpy 1.11.5, `_highly_variable_genes_seurat_v3`) computes it on raw counts:
//!
//! 1. per gene over the cells of a batch: mean and variance (ddof = 1);
//! 2. a loess (degree 2, `span`) of `log10(variance)` on `log10(mean)` over the genes with
//!    variance > 0; the expected variance is `10^fitted` (1 for constant genes, whose
//!    fitted log-variance scanpy leaves at 0);
//! 3. `reg_std = sqrt(expected variance)`; every count is clipped at
//!    `mean + sqrt(n_cells) * reg_std`; the normalized variance is
//!    `(n * mean^2 + sum(clipped^2) - 2 * mean * sum(clipped)) / ((n - 1) * reg_std^2)`;
//! 4. genes are ranked by normalized variance (rank 0 = most variable) in each batch;
//!    a gene is highly variable in a batch when its rank is `< n_top`;
//! 5. `variances_norm` is the mean over batches, `highly_variable_rank` the median of the
//!    ranks `< n_top` (none when the gene is in no batch's top `n_top`),
//!    `highly_variable_nbatches` the number of batches in whose top `n_top` it is;
//! 6. the selected genes are the first `n_top` (all genes when there are fewer) after a
//!    stable sort by, for [`HvgFlavor::SeuratV3`] (scanpy's `"seurat_v3"`), median rank
//!    ascending (none last) then number of batches descending; for
//!    [`HvgFlavor::SeuratV3Paper`] (`"seurat_v3_paper"`, Seurat's
//!    `SelectIntegrationFeatures`), number of batches descending then median rank.
//!    Remaining ties keep gene order (pandas' multi-column sort is stable).
//!
//! Without batches both flavors select the `n_top` genes of largest normalized variance.
//!
//! The loess is netlib dloess as `skmisc.loess` runs it with its defaults (gaussian family,
//! `surface = "interpolate"`, `cell = 0.2`): local quadratic fits with tricube weights
//! over the `floor(n * span + 1e-5)` nearest genes, computed at the vertices of dloess'
//! k-d tree (value and slope) and blended between vertices by cubic Hermite
//! interpolation. [`loess`] reimplements that (and `surface = "direct"`) for one
//! predictor; it reproduces skmisc (0.5.3) to ~5e-15 on the shared data. The k-d tree
//! splits at medians and between tied x values, so it depends on exact ties of
//! log10(mean): means are computed as `sum / n` in f64, bit-identical to scanpy's for
//! integer counts (a mean one ulp off moves a split and the fit by up to ~1e-2).
//!
//! Differences from scanpy, all on degenerate input: scanpy only warns on non-integer
//! counts (so does nothing here: they are accepted), but negative or non-finite entries,
//! `n_top == 0`, a batch of fewer than 2 cells (where scanpy divides by zero) and too few
//! non-constant genes for the loess (where skmisc fails) are errors. Exactly tied
//! normalized variances (genes with identical count statistics, common in sparse data)
//! are ranked in gene order; numpy's unstable argsort orders them arbitrarily, which
//! changes ranks only inside the tie, and the selection only when a tie straddles the
//! `n_top` boundary (where scanpy's choice is itself arbitrary).

use nalgebra::{DMatrix, DVector, Matrix3, Vector3};
use serde::{Deserialize, Serialize};

use crate::Csr;
use crate::dataset::PairedDataset;
use crate::error::{DataError, Result};

/// scanpy's default number of highly variable genes.
pub const DEFAULT_N_TOP_GENES: usize = 2000;
/// scanpy's (and Seurat's) default loess span.
pub const DEFAULT_SPAN: f64 = 0.3;

/// How ties between batches are resolved (only matters with a batch column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HvgFlavor {
    /// scanpy's `"seurat_v3"`: median rank first, then number of batches.
    #[default]
    SeuratV3,
    /// scanpy's `"seurat_v3_paper"`: number of batches first, then median rank.
    SeuratV3Paper,
}

/// Settings of Seurat v3 highly variable gene selection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HvgConfig {
    /// Number of genes to keep (all genes when the dataset has fewer).
    pub n_top_genes: usize,
    /// Loess span: the fraction of genes in each local fit.
    pub span: f64,
    /// A cell-table column whose values are batches (scanpy's `batch_key`).
    pub batch_column: Option<String>,
    pub flavor: HvgFlavor,
}

impl Default for HvgConfig {
    fn default() -> Self {
        Self {
            n_top_genes: DEFAULT_N_TOP_GENES,
            span: DEFAULT_SPAN,
            batch_column: None,
            flavor: HvgFlavor::SeuratV3,
        }
    }
}

/// The statistics of one batch (the whole matrix when there are no batches).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchHvg {
    /// The batch code (0 without batches).
    pub code: u32,
    pub n_cells: usize,
    /// Per gene over the batch's cells.
    pub means: Vec<f64>,
    /// Per gene over the batch's cells, ddof = 1.
    pub variances: Vec<f64>,
    /// The loess fit of log10 variance (0 for genes of zero variance, as scanpy).
    pub log10_expected_variances: Vec<f64>,
    pub variances_norm: Vec<f64>,
    /// 0 = largest normalized variance; exact ties in gene order.
    pub ranks: Vec<usize>,
}

/// Seurat v3 highly variable genes; per-gene vectors are in gene (column) order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HvgResult {
    /// Mean over all cells.
    pub means: Vec<f64>,
    /// Variance over all cells, ddof = 1.
    pub variances: Vec<f64>,
    /// Normalized variance, averaged over batches.
    pub variances_norm: Vec<f64>,
    /// Median of the batch ranks that are `< n_top` (scanpy's NaN is `None`).
    pub highly_variable_rank: Vec<Option<f64>>,
    /// In how many batches the gene is among the top `n_top`.
    pub highly_variable_nbatches: Vec<usize>,
    pub highly_variable: Vec<bool>,
    /// The selected genes, ascending.
    pub selected: Vec<usize>,
    /// Per batch, in ascending code order.
    pub batches: Vec<BatchHvg>,
}

/// Seurat v3 highly variable genes of a count matrix (cells x genes) with scanpy's
/// default flavor. `batches` gives each cell's batch code.
pub fn seurat_v3(
    counts: &Csr,
    n_top: usize,
    span: f64,
    batches: Option<&[u32]>,
) -> Result<HvgResult> {
    seurat_v3_with_flavor(counts, n_top, span, batches, HvgFlavor::SeuratV3)
}

/// Highly variable genes of the dataset's RNA counts as the config says.
pub fn select_genes(dataset: &PairedDataset, config: &HvgConfig) -> Result<HvgResult> {
    let codes = match &config.batch_column {
        None => None,
        Some(column) => {
            let (codes, _) = dataset.cells.codes(column)?;
            Some(
                codes
                    .into_iter()
                    .map(|c| {
                        u32::try_from(c).map_err(|_| {
                            DataError::invalid(
                                format!("batch column `{column}`"),
                                "more than 2^32 batches",
                            )
                        })
                    })
                    .collect::<Result<Vec<u32>>>()?,
            )
        }
    };
    seurat_v3_with_flavor(
        &dataset.rna,
        config.n_top_genes,
        config.span,
        codes.as_deref(),
        config.flavor,
    )
}

/// [`seurat_v3`] with a choice of flavor.
pub fn seurat_v3_with_flavor(
    counts: &Csr,
    n_top: usize,
    span: f64,
    batches: Option<&[u32]>,
    flavor: HvgFlavor,
) -> Result<HvgResult> {
    let what = "highly variable genes (seurat_v3)";
    let (n_cells, n_genes) = (counts.nrows(), counts.ncols());
    if n_cells == 0 || n_genes == 0 {
        return Err(DataError::Empty {
            what: "count matrix".into(),
            reason: format!("{n_cells} cells x {n_genes} genes: no {what}"),
        });
    }
    if n_top == 0 {
        return Err(DataError::invalid(
            "n_top_genes",
            "is 0: at least one gene must be selected",
        ));
    }
    check_span(span)?;
    for (row, col, v) in counts.triplet_iter() {
        if !v.is_finite() || *v < 0.0 {
            return Err(DataError::invalid(
                what,
                format!(
                    "count at cell {row}, gene {col} is {v}: counts must be finite and non-negative"
                ),
            ));
        }
    }

    // batch index of every cell, batches in ascending code order
    let (codes, batch_of): (Vec<u32>, Vec<usize>) = match batches {
        None => (vec![0], vec![0; n_cells]),
        Some(b) => {
            if b.len() != n_cells {
                return Err(DataError::invalid(
                    what,
                    format!("{} batch labels for a matrix of {n_cells} cells", b.len()),
                ));
            }
            let mut codes = b.to_vec();
            codes.sort_unstable();
            codes.dedup();
            let batch_of = b.iter().map(|c| codes.binary_search(c).unwrap()).collect();
            (codes, batch_of)
        }
    };
    let n_batches = codes.len();
    let mut sizes = vec![0usize; n_batches];
    for &b in &batch_of {
        sizes[b] += 1;
    }
    if let Some(b) = sizes.iter().position(|&n| n < 2) {
        return Err(DataError::invalid(
            what,
            format!(
                "batch {} has {} cell(s): a variance needs at least 2",
                codes[b], sizes[b]
            ),
        ));
    }

    let (mut means, mut variances) = mean_var(counts, &vec![0; n_cells], &[n_cells]);
    let (b_means, b_vars) = if n_batches == 1 {
        (means.clone(), variances.clone())
    } else {
        mean_var(counts, &batch_of, &sizes)
    };
    let means_all = means.pop().unwrap();
    let variances_all = variances.pop().unwrap();

    // loess per batch, then the clip values
    let mut fits = Vec::with_capacity(n_batches);
    let mut clips = Vec::with_capacity(n_batches);
    let mut reg_stds = Vec::with_capacity(n_batches);
    for b in 0..n_batches {
        let (mean, var) = (&b_means[b], &b_vars[b]);
        let genes: Vec<usize> = (0..n_genes).filter(|&g| var[g] > 0.0).collect();
        let mut fit = vec![0.0; n_genes];
        if !genes.is_empty() {
            let x: Vec<f64> = genes.iter().map(|&g| mean[g].log10()).collect();
            let y: Vec<f64> = genes.iter().map(|&g| var[g].log10()).collect();
            let fitted = loess(&x, &y, span, LoessSurface::Interpolate).map_err(|e| {
                DataError::invalid(
                    what,
                    format!(
                        "batch {} ({} genes of non-zero variance): {e}",
                        codes[b],
                        genes.len()
                    ),
                )
            })?;
            for (&g, f) in genes.iter().zip(fitted) {
                fit[g] = f;
            }
        }
        let reg_std: Vec<f64> = fit.iter().map(|f| 10f64.powf(*f).sqrt()).collect();
        let vmax = (sizes[b] as f64).sqrt();
        clips.push(
            reg_std
                .iter()
                .zip(mean)
                .map(|(s, m)| s * vmax + m)
                .collect::<Vec<f64>>(),
        );
        reg_stds.push(reg_std);
        fits.push(fit);
    }

    // clipped sums, in CSR order as scanpy
    let mut sums = vec![vec![0.0f64; n_genes]; n_batches];
    let mut squares = vec![vec![0.0f64; n_genes]; n_batches];
    for (row, &b) in counts.row_iter().zip(&batch_of) {
        let (s, q, clip) = (&mut sums[b], &mut squares[b], &clips[b]);
        for (&g, &v) in row.col_indices().iter().zip(row.values()) {
            let e = f64::from(v).min(clip[g]);
            q[g] += e * e;
            s[g] += e;
        }
    }

    let mut per_batch = Vec::with_capacity(n_batches);
    for b in 0..n_batches {
        let n = sizes[b] as f64;
        let mean = &b_means[b];
        let norm: Vec<f64> = (0..n_genes)
            .map(|g| {
                let (m, s) = (mean[g], reg_stds[b][g]);
                (1.0 / ((n - 1.0) * (s * s))) * (n * (m * m) + squares[b][g] - 2.0 * sums[b][g] * m)
            })
            .collect();
        let mut order: Vec<usize> = (0..n_genes).collect();
        order.sort_by(|&i, &j| descending_nan_last(norm[i], norm[j]).then(i.cmp(&j)));
        let mut ranks = vec![0usize; n_genes];
        for (r, &g) in order.iter().enumerate() {
            ranks[g] = r;
        }
        per_batch.push(BatchHvg {
            code: codes[b],
            n_cells: sizes[b],
            means: mean.clone(),
            variances: b_vars[b].clone(),
            log10_expected_variances: std::mem::take(&mut fits[b]),
            variances_norm: norm,
            ranks,
        });
    }

    let variances_norm: Vec<f64> = (0..n_genes)
        .map(|g| per_batch.iter().map(|b| b.variances_norm[g]).sum::<f64>() / n_batches as f64)
        .collect();
    let mut nbatches = vec![0usize; n_genes];
    let mut median_rank = vec![None; n_genes];
    let mut top: Vec<usize> = Vec::with_capacity(n_batches);
    for g in 0..n_genes {
        top.clear();
        top.extend(per_batch.iter().map(|b| b.ranks[g]).filter(|&r| r < n_top));
        top.sort_unstable();
        nbatches[g] = top.len();
        median_rank[g] = match top.len() {
            0 => None,
            k if k % 2 == 1 => Some(top[k / 2] as f64),
            k => Some(0.5 * (top[k / 2 - 1] as f64 + top[k / 2] as f64)),
        };
    }

    let mut order: Vec<usize> = (0..n_genes).collect();
    let by_rank = |i: usize, j: usize| match (median_rank[i], median_rank[j]) {
        (Some(a), Some(b)) => a.total_cmp(&b),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    };
    let by_batches = |i: usize, j: usize| nbatches[j].cmp(&nbatches[i]);
    match flavor {
        HvgFlavor::SeuratV3 => order.sort_by(|&i, &j| by_rank(i, j).then(by_batches(i, j))),
        HvgFlavor::SeuratV3Paper => order.sort_by(|&i, &j| by_batches(i, j).then(by_rank(i, j))),
    }
    let mut highly_variable = vec![false; n_genes];
    for &g in order.iter().take(n_top) {
        highly_variable[g] = true;
    }
    let selected = (0..n_genes).filter(|&g| highly_variable[g]).collect();

    Ok(HvgResult {
        means: means_all,
        variances: variances_all,
        variances_norm,
        highly_variable_rank: median_rank,
        highly_variable_nbatches: nbatches,
        highly_variable,
        selected,
        batches: per_batch,
    })
}

/// Larger first, NaN last (numpy's argsort of `-x`); -0 equals 0.
fn descending_nan_last(a: f64, b: f64) -> std::cmp::Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => b.partial_cmp(&a).unwrap(),
        (false, true) => std::cmp::Ordering::Less,
        (true, false) => std::cmp::Ordering::Greater,
        (true, true) => std::cmp::Ordering::Equal,
    }
}

/// Per group and gene: mean and variance (ddof = 1, two passes, f64). `group[i]` is the
/// group of row i, `sizes[k]` the number of rows of group k (each >= 2).
fn mean_var(counts: &Csr, group: &[usize], sizes: &[usize]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n_genes = counts.ncols();
    let k = sizes.len();
    let mut sums = vec![vec![0.0f64; n_genes]; k];
    for (row, &b) in counts.row_iter().zip(group) {
        for (&g, &v) in row.col_indices().iter().zip(row.values()) {
            sums[b][g] += f64::from(v);
        }
    }
    let means: Vec<Vec<f64>> = sums
        .into_iter()
        .zip(sizes)
        .map(|(s, &n)| s.into_iter().map(|x| x / n as f64).collect())
        .collect();
    let mut squares = vec![vec![0.0f64; n_genes]; k];
    let mut stored = vec![vec![0usize; n_genes]; k];
    for (row, &b) in counts.row_iter().zip(group) {
        for (&g, &v) in row.col_indices().iter().zip(row.values()) {
            let d = f64::from(v) - means[b][g];
            squares[b][g] += d * d;
            stored[b][g] += 1;
        }
    }
    let vars = (0..k)
        .map(|b| {
            (0..n_genes)
                .map(|g| {
                    let m = means[b][g];
                    let zeros = (sizes[b] - stored[b][g]) as f64;
                    (squares[b][g] + zeros * m * m) / (sizes[b] - 1) as f64
                })
                .collect()
        })
        .collect();
    (means, vars)
}

fn check_span(span: f64) -> Result<()> {
    if span.is_finite() && span > 0.0 {
        Ok(())
    } else {
        Err(DataError::invalid(
            "loess span",
            format!("{span} is not a positive number"),
        ))
    }
}

/// How dloess evaluates the local fits (`skmisc.loess` `surface`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoessSurface {
    /// Local fits at the vertices of a k-d tree, cubic Hermite interpolation between
    /// them (dloess' default, what scanpy gets).
    #[default]
    Interpolate,
    /// A local fit at every point.
    Direct,
}

/// dloess' `cell`: a k-d tree cell holds at most `floor(n * span * cell)` points.
const LOESS_CELL: f64 = 0.2;

/// Fitted values of a loess of `y` on `x` (one predictor, degree 2, tricube weights,
/// gaussian family: no robustness iterations) as netlib dloess / `skmisc.loess(x, y,
/// span=span, degree=2, surface=...)` computes them.
pub fn loess(x: &[f64], y: &[f64], span: f64, surface: LoessSurface) -> Result<Vec<f64>> {
    let n = x.len();
    if y.len() != n {
        return Err(DataError::invalid(
            "loess",
            format!("{n} x values but {} y values", y.len()),
        ));
    }
    check_span(span)?;
    if let Some(i) = (0..n).find(|&i| !x[i].is_finite() || !y[i].is_finite()) {
        return Err(DataError::invalid(
            "loess",
            format!("point {i} is ({}, {}), not finite", x[i], y[i]),
        ));
    }
    // dloess: nf = min(n, floor(n f + 1e-5)), and a quadratic needs nf - 1 >= 3
    let nf = ((n as f64 * span + 1e-5).floor() as usize).min(n);
    if nf < 4 {
        return Err(DataError::invalid(
            "loess",
            format!(
                "span {span} of {n} points is {nf} neighbours: a local quadratic needs at least 4 (make span bigger or give more points)"
            ),
        ));
    }
    let fit = LocalFit { x, y, nf, span };
    match surface {
        LoessSurface::Direct => x.iter().map(|&q| fit.at(q).map(|(v, _)| v)).collect(),
        LoessSurface::Interpolate => {
            let tree = KdTree::build(x, span);
            let vval = tree
                .vertices
                .iter()
                .map(|&q| fit.at(q))
                .collect::<Result<Vec<_>>>()?;
            Ok(x.iter().map(|&z| tree.eval(z, &vval)).collect())
        }
    }
}

/// The local quadratic regression of dloess' `ehg127`.
struct LocalFit<'a> {
    x: &'a [f64],
    y: &'a [f64],
    nf: usize,
    span: f64,
}

impl LocalFit<'_> {
    /// Value and slope at `q` of the weighted quadratic fit to the `nf` nearest points.
    fn at(&self, q: f64) -> Result<(f64, f64)> {
        let d2: Vec<f64> = self.x.iter().map(|&x| (x - q) * (x - q)).collect();
        let mut sorted = d2.clone();
        let (_, kth, _) = sorted.select_nth_unstable_by(self.nf - 1, f64::total_cmp);
        // the nf-th smallest squared distance (times f when the span exceeds 1)
        let rho = *kth * self.span.max(1.0);
        if rho <= 0.0 {
            return Err(DataError::invalid(
                "loess",
                format!(
                    "zero-width neighbourhood at {q}: more than span * n points coincide; make span bigger"
                ),
            ));
        }
        // points at distance >= rho have weight 0: exactly those the nf nearest leave out
        let rows: Vec<(usize, f64)> = (0..self.x.len())
            .filter(|&i| d2[i] < rho)
            .map(|i| {
                let t = (d2[i] / rho).sqrt();
                let c = 1.0 - t * t * t;
                (i, (c * c * c).sqrt())
            })
            .filter(|(_, w)| *w > 0.0)
            .collect();
        if rows.is_empty() {
            return Err(DataError::invalid(
                "loess",
                format!("all data on the boundary of the neighbourhood at {q}; make span bigger"),
            ));
        }
        let m = rows.len().max(3);
        let mut b = DMatrix::<f64>::zeros(m, 3);
        let mut eta = DVector::<f64>::zeros(m);
        for (r, &(i, w)) in rows.iter().enumerate() {
            let dx = self.x[i] - q;
            b[(r, 0)] = w;
            b[(r, 1)] = w * dx;
            b[(r, 2)] = w * (dx * dx);
            eta[r] = w * self.y[i];
        }
        // equilibrate columns, QR, then the pseudo-inverse of R through its SVD
        let mut colnor = [1.0f64; 3];
        for (j, norm) in colnor.iter_mut().enumerate() {
            let s = b.column(j).norm_squared().sqrt();
            if s > 0.0 {
                b.column_mut(j).unscale_mut(s);
                *norm = s;
            }
        }
        let qr = b.qr();
        qr.q_tr_mul(&mut eta);
        let r = qr.r();
        let r3 = Matrix3::from_fn(|i, j| r[(i, j)]);
        let c = Vector3::new(eta[0], eta[1], eta[2]);
        let svd = r3.svd(true, true);
        let (u, v_t) = (svd.u.unwrap(), svd.v_t.unwrap());
        let sigma = svd.singular_values;
        let tol = sigma.max() * (100.0 * f64::EPSILON);
        let gamma = Vector3::from_fn(|j, _| {
            if sigma[j] > tol {
                u.column(j).dot(&c) / sigma[j]
            } else {
                0.0
            }
        });
        let coef = v_t.transpose() * gamma;
        Ok((coef[0] / colnor[0], coef[1] / colnor[1]))
    }
}

/// dloess' k-d tree for one predictor (`ehg126`, `ehg124`, `ehg129`): cells are split at
/// the median until they hold at most `floor(n * span * cell)` points.
struct KdTree {
    vertices: Vec<f64>,
    cells: Vec<KdCell>,
}

struct KdCell {
    /// Indices into `vertices` of the lower and upper bound.
    lo: usize,
    hi: usize,
    /// Split value and the two children (`z <= split` goes low).
    split: Option<(f64, usize, usize)>,
}

impl KdTree {
    fn build(x: &[f64], span: f64) -> Self {
        let n = x.len();
        let mut s = x.to_vec();
        s.sort_by(f64::total_cmp);
        let (alpha, beta) = (s[0], s[n - 1]);
        // the bounding box, expanded by 0.5 % (ehg126)
        let mu = 0.005
            * f64::max(
                beta - alpha,
                1e-10 * f64::max(alpha.abs(), beta.abs()) + 1e-30,
            );
        let mut vertices = vec![alpha - mu, beta + mu];
        let fc = (n as f64 * (span * LOESS_CELL)).floor() as i64;
        let fd = 0.0;
        let nvmax = n.max(200);
        let ncmax = nvmax;
        let mut cells = vec![KdCell {
            lo: 0,
            hi: 1,
            split: None,
        }];
        // each cell's points are sorted positions l..=u (0-based, inclusive)
        let mut ranges: Vec<(i64, i64)> = vec![(0, n as i64 - 1)];
        let mut p = 0;
        while p < cells.len() {
            let (l, u) = ranges[p];
            let (vlo, vhi) = (vertices[cells[p].lo], vertices[cells[p].hi]);
            let diag = vhi - vlo;
            // (u - l + 1 points) <= fc
            let mut leaf = u - l < fc || (diag * diag).sqrt() <= fd;
            if !leaf {
                // dloess: ncmax < nc + 2 or nvmax < nv + vc / 2 (vc = 2)
                leaf = ncmax < cells.len() + 2 || nvmax <= vertices.len();
            }
            let mut m = (l + u) / 2;
            if !leaf {
                // the split nearest the median between distinct values: offsets 0, 1, -1, 2, ...
                let mut off: i64 = 0;
                loop {
                    let c = m + off;
                    if c >= u || c < l {
                        break;
                    }
                    if s[c as usize] == s[c as usize + 1] {
                        off = -off;
                        if off >= 0 {
                            off += 1;
                        }
                    } else {
                        m = c;
                        break;
                    }
                }
                let xi = s[m as usize];
                leaf = vlo == xi || vhi == xi;
                if !leaf {
                    let v = vertices.len();
                    vertices.push(xi);
                    let (lo, hi) = (cells[p].lo, cells[p].hi);
                    let c = cells.len();
                    cells.push(KdCell {
                        lo,
                        hi: v,
                        split: None,
                    });
                    ranges.push((l, m));
                    cells.push(KdCell {
                        lo: v,
                        hi,
                        split: None,
                    });
                    ranges.push((m + 1, u));
                    cells[p].split = Some((xi, c, c + 1));
                }
            }
            p += 1;
        }
        Self { vertices, cells }
    }

    /// Cubic Hermite interpolation in the leaf cell holding `z` (`ehg128`, d = 1).
    fn eval(&self, z: f64, vval: &[(f64, f64)]) -> f64 {
        let mut j = 0;
        while let Some((xi, lo, hi)) = self.cells[j].split {
            j = if z <= xi { lo } else { hi };
        }
        let cell = &self.cells[j];
        let (v0, v1) = (self.vertices[cell.lo], self.vertices[cell.hi]);
        let ((g0, s0), (g1, s1)) = (vval[cell.lo], vval[cell.hi]);
        let h = (z - v0) / (v1 - v0);
        let phi0 = (1.0 - h) * (1.0 - h) * (1.0 + 2.0 * h);
        let phi1 = h * h * (3.0 - 2.0 * h);
        let psi0 = h * ((1.0 - h) * (1.0 - h));
        let psi1 = h * h * (h - 1.0);
        phi0 * g0 + phi1 * g1 + (psi0 * s0 + psi1 * s1) * (v1 - v0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tree_splits_between_distinct_values() {
        let x: Vec<f64> = (0..100).map(|i| f64::from(i / 10)).collect();
        let t = KdTree::build(&x, 0.3);
        for c in &t.cells {
            if let Some((xi, _, _)) = c.split {
                // ties go low: every split value is one of the data values
                assert!(x.contains(&xi));
            }
        }
        assert!(t.cells.len() > 1);
    }
}
