//! Batch-integration scores on an embedding: graph connectivity (scib) and LISI
//! (harmony's `compute_lisi` with scib's median + scaling).

use ndarray::ArrayView2;

use crate::MetricError;
use crate::community::WeightedGraph;
use crate::knn::{Neighbors, exact_knn_self};
use crate::util::{check_len, dense_codes, unique};

/// Graph connectivity as `scib.metrics.graph_connectivity`: for each cell type t, the
/// fraction of t's cells in the largest connected component of the graph induced on t's
/// cells; averaged over types (1 = every type is one connected piece).
///
/// scib reads scanpy's `connectivities`, whose support is the union of kNN relations, so
/// [`WeightedGraph::knn_union`] or [`WeightedGraph::umap_connectivities`] give the same value.
pub fn graph_connectivity(graph: &WeightedGraph, labels: &[usize]) -> Result<f64, MetricError> {
    check_len("labels", graph.n_nodes(), labels.len())?;
    if labels.is_empty() {
        return Err(MetricError::Empty { what: "labels" });
    }
    let types = unique(labels);
    let mut total = 0.0;
    for &t in &types {
        let keep: Vec<bool> = labels.iter().map(|&l| l == t).collect();
        let sizes = graph.component_sizes(&keep);
        let n_t: usize = sizes.iter().sum();
        total += *sizes.iter().max().expect("type has cells") as f64 / n_t as f64;
    }
    Ok(total / types.len() as f64)
}

/// [`graph_connectivity`] on the kNN graph of an embedding: each cell joined to its `k`
/// nearest other cells (scanpy's default `n_neighbors=15` counts the cell itself: k = 14).
pub fn graph_connectivity_knn(
    x: ArrayView2<f32>,
    labels: &[usize],
    k: usize,
) -> Result<f64, MetricError> {
    check_len("labels", x.nrows(), labels.len())?;
    let nn = exact_knn_self(x, k)?;
    graph_connectivity(&WeightedGraph::knn_union(&nn), labels)
}

/// Per-cell inverse Simpson index of `labels` in each cell's neighbourhood, as harmony's
/// `compute_lisi` (harmonypy `lisi.py`, R `harmony::compute_lisi`).
///
/// `nn` holds each cell's `3 * perplexity - 1` nearest other cells (harmony asks for
/// `3 * perplexity` neighbours including the cell itself and drops it) with Euclidean
/// distances `d_j`. Weights `p_j ∝ exp(-beta d_j)` (unsquared distances, as harmony), with
/// beta found by harmony's bisection (start 1, tolerance 1e-5 on the entropy
/// `H = log(sum e^{-beta d}) + beta sum d p` against `log(perplexity)`, 50 tries);
/// `LISI = 1 / sum_labels (sum_{j in label} p_j)^2`. Range [1, number of labels].
///
/// One deliberate difference: weights are computed relative to the nearest distance
/// (mathematically identical), so the underflow branch of harmony (all weights 0, which
/// yields a negative Simpson index there) never happens.
pub fn lisi_from_neighbors(
    nn: &Neighbors,
    labels: &[usize],
    perplexity: f64,
) -> Result<Vec<f64>, MetricError> {
    check_len("labels", nn.n_queries(), labels.len())?;
    if !(perplexity.is_finite() && perplexity > 0.0) {
        return Err(MetricError::invalid("perplexity", "must be finite and > 0"));
    }
    if nn.k == 0 || labels.is_empty() {
        return Err(MetricError::Empty { what: "neighbors" });
    }
    let (codes, n_labels) = dense_codes(labels);
    let log_u = perplexity.ln();
    let mut p = vec![0.0f64; nn.k];
    let mut mass = vec![0.0f64; n_labels];
    let mut out = Vec::with_capacity(labels.len());
    for i in 0..nn.n_queries() {
        let d = nn.distances_of(i);
        let dmin = d.iter().copied().fold(f64::INFINITY, f64::min);
        // H(beta) and normalised weights, shifted by dmin for stability
        let entropy = |beta: f64, p: &mut [f64]| {
            let mut s = 0.0;
            for (pj, &dj) in p.iter_mut().zip(d) {
                *pj = (-(dj - dmin) * beta).exp();
                s += *pj;
            }
            let mut dp = 0.0;
            for (pj, &dj) in p.iter_mut().zip(d) {
                *pj /= s;
                dp += (dj - dmin) * *pj;
            }
            s.ln() + beta * dp
        };
        let mut beta = 1.0f64;
        let (mut betamin, mut betamax) = (f64::NEG_INFINITY, f64::INFINITY);
        let mut h = entropy(beta, &mut p);
        let mut hdiff = h - log_u;
        for _ in 0..50 {
            if hdiff.abs() < 1e-5 {
                break;
            }
            if hdiff > 0.0 {
                betamin = beta;
                beta = if betamax.is_finite() {
                    (beta + betamax) / 2.0
                } else {
                    beta * 2.0
                };
            } else {
                betamax = beta;
                beta = if betamin.is_finite() {
                    (beta + betamin) / 2.0
                } else {
                    beta / 2.0
                };
            }
            h = entropy(beta, &mut p);
            hdiff = h - log_u;
        }
        mass.iter_mut().for_each(|m| *m = 0.0);
        for (&j, &pj) in nn.indices_of(i).iter().zip(&p) {
            mass[codes[j]] += pj;
        }
        let simpson: f64 = mass.iter().map(|m| m * m).sum();
        out.push(1.0 / simpson);
    }
    Ok(out)
}

/// Per-cell LISI on an embedding with exact neighbours (see [`lisi_from_neighbors`]).
///
/// Errors: `3 * perplexity > n` (InvalidParameter, harmony's kNN query would fail),
/// empty or non-finite input, length mismatch.
pub fn lisi(
    x: ArrayView2<f32>,
    labels: &[usize],
    perplexity: f64,
) -> Result<Vec<f64>, MetricError> {
    check_len("labels", x.nrows(), labels.len())?;
    let n_neighbors = (3.0 * perplexity).floor() as usize;
    if !(perplexity.is_finite() && perplexity > 0.0) || n_neighbors < 2 || n_neighbors > x.nrows() {
        return Err(MetricError::invalid(
            "perplexity",
            format!(
                "3 * perplexity must be in 2..={} cells, got {perplexity}",
                x.nrows()
            ),
        ));
    }
    let nn = exact_knn_self(x, n_neighbors - 1)?;
    lisi_from_neighbors(&nn, labels, perplexity)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Integration LISI scaled as scib (`ilisi_graph(..., scale=True)`):
/// `(median_i LISI_batch(i) - 1) / (n_batches - 1)`; 1 = batches perfectly mixed.
/// Errors: a single batch (Degenerate) plus those of [`lisi`].
pub fn ilisi(x: ArrayView2<f32>, batch: &[usize], perplexity: f64) -> Result<f64, MetricError> {
    let nb = unique(batch).len();
    if nb < 2 {
        return Err(MetricError::degenerate("iLISI needs at least 2 batches"));
    }
    let mut s = lisi(x, batch, perplexity)?;
    Ok((median(&mut s) - 1.0) / (nb - 1) as f64)
}

/// Cell-type LISI scaled as scib (`clisi_graph(..., scale=True)`):
/// `(n_types - median_i LISI_type(i)) / (n_types - 1)`; 1 = neighbourhoods are pure.
/// Errors: a single cell type (Degenerate) plus those of [`lisi`].
pub fn clisi(x: ArrayView2<f32>, labels: &[usize], perplexity: f64) -> Result<f64, MetricError> {
    let nl = unique(labels).len();
    if nl < 2 {
        return Err(MetricError::degenerate("cLISI needs at least 2 cell types"));
    }
    let mut s = lisi(x, labels, perplexity)?;
    Ok((nl as f64 - median(&mut s)) / (nl - 1) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn connectivity_hand_computed() {
        // type 0 = {0,1,2} with edge 0-1 only; type 1 = {3,4} with edge 3-4
        let g = WeightedGraph::from_edges(5, &[(0, 1, 1.0), (1, 3, 1.0), (3, 4, 1.0), (2, 4, 1.0)])
            .unwrap();
        let v = graph_connectivity(&g, &[0, 0, 0, 1, 1]).unwrap();
        assert!((v - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        assert!(graph_connectivity(&g, &[0, 0]).is_err());
    }

    #[test]
    fn lisi_extremes() {
        // two far-apart groups, labels constant within a group -> LISI ~ 1
        let x = array![[0.0f32], [0.1], [0.2], [100.0], [100.1], [100.2]];
        let l = lisi(x.view(), &[0, 0, 0, 1, 1, 1], 1.0).unwrap();
        assert!(l.iter().all(|&v| (v - 1.0).abs() < 1e-9), "{l:?}");
        assert!((clisi(x.view(), &[0, 0, 0, 1, 1, 1], 1.0).unwrap() - 1.0).abs() < 1e-9);
        // all points identical: uniform weights over 2 neighbours of each label pattern
        let same = array![[1.0f32], [1.0], [1.0], [1.0]];
        let l = lisi(same.view(), &[0, 1, 0, 1], 1.0).unwrap();
        // cell 0's two nearest others are 1 and 2 (ties by index): labels 1, 0 -> LISI 2
        assert!((l[0] - 2.0).abs() < 1e-12, "{l:?}");
        assert!(matches!(
            ilisi(x.view(), &[0; 6], 1.0),
            Err(MetricError::Degenerate(_))
        ));
        assert!(lisi(x.view(), &[0; 6], 3.0).is_err());
        assert!(lisi(x.view(), &[0; 6], 0.0).is_err());
    }
}
