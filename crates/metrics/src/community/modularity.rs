//! Modularity of a partition at a resolution (networkx's definition).

use super::WeightedGraph;
use crate::MetricError;
use crate::util::check_len;

/// Modularity with resolution `gamma` of a partition (`labels[i]` = community of node i):
/// `Q = 1/(2m) sum_ij (A_ij - gamma k_i k_j / (2m)) delta(c_i, c_j)`, as
/// `networkx.community.modularity(G, communities, weight="weight", resolution=gamma)`.
///
/// Errors: length mismatch, a graph with no edges (Degenerate), or a non-finite gamma.
pub fn modularity(graph: &WeightedGraph, labels: &[usize], gamma: f64) -> Result<f64, MetricError> {
    check_len("labels", graph.n_nodes(), labels.len())?;
    if !gamma.is_finite() {
        return Err(MetricError::invalid("gamma", "must be finite"));
    }
    let m = graph.total_weight();
    if m <= 0.0 {
        return Err(MetricError::degenerate(
            "modularity of a graph without edges",
        ));
    }
    let (codes, nc) = crate::util::dense_codes(labels);
    let mut internal = vec![0.0f64; nc];
    let mut tot = vec![0.0f64; nc];
    for i in 0..graph.n_nodes() {
        tot[codes[i]] += graph.degree(i);
        internal[codes[i]] += graph.self_loop(i);
        for (j, w) in graph.neighbors(i) {
            if codes[j] == codes[i] && j > i {
                internal[codes[i]] += w;
            }
        }
    }
    Ok((0..nc)
        .map(|c| internal[c] / m - gamma * (tot[c] / (2.0 * m)).powi(2))
        .sum())
}
