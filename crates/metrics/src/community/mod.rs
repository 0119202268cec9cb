//! Graph clustering as scanpy does it: kNN graph -> UMAP connectivities -> Louvain or
//! Leiden maximising modularity with a resolution parameter, and a resolution search that
//! hits a target number of clusters.
//!
//! Quality maximised (the RB configuration model of `leidenalg.RBConfigurationVertexPartition`,
//! which `scanpy.tl.leiden` and `scanpy.tl.louvain` use):
//! `H = sum_c [ e_c - gamma K_c^2 / (4 m) ]`, with `e_c` the total weight of edges inside
//! community c, `K_c` the summed weighted degree of its nodes and `m` the total edge weight.
//! Modularity is `Q = H / m` (see [`modularity()`]).
//!
//! Each submodule has one job: [`WeightedGraph`] and how it is built (`graph`),
//! [`modularity()`] (`modularity`), moving nodes between communities (`moving`), the passes of Louvain
//! (`louvain`) and Leiden (`leiden`), the choice of resolution (`resolution`), and the
//! clustering of an embedding (`embedding`). This module runs the passes.

mod embedding;
mod graph;
mod leiden;
mod louvain;
mod modularity;
mod moving;
mod resolution;
#[cfg(test)]
mod tests;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::MetricError;
use leiden::leiden_pass;
use louvain::louvain_pass;

pub use embedding::leiden_of_embedding;
pub use graph::WeightedGraph;
pub use modularity::modularity;
pub use resolution::{
    OptimalClustering, ResolutionSearch, cluster_optimal_resolution, scib_resolutions,
    search_resolution,
};

/// Graph clustering algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphAlgorithm {
    /// Louvain (Blondel et al. 2008): local moving + aggregation.
    Louvain,
    /// Leiden (Traag, Waltman & van Eck 2019): fast local moving, refinement, aggregation.
    Leiden,
}

/// Settings of [`louvain()`] and [`leiden()`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterParams {
    /// Resolution gamma (1 = classic modularity; larger gives more clusters).
    pub resolution: f64,
    /// Seed of the ChaCha8 generator (node orders, Leiden's randomised refinement).
    pub seed: u64,
    /// Leiden's refinement randomness theta (leidenalg default 0.01).
    pub theta: f64,
    /// Maximum full passes of the multi-level procedure; each starts from the previous
    /// partition and the loop stops early when the partition no longer changes.
    pub max_iterations: usize,
}

impl Default for ClusterParams {
    fn default() -> Self {
        Self {
            resolution: 1.0,
            seed: 0,
            theta: 0.01,
            max_iterations: 10,
        }
    }
}

/// A partition found by [`louvain()`], [`leiden()`] or [`search_resolution`].
#[derive(Debug, Clone, PartialEq)]
pub struct CommunityResult {
    /// Community of each node, numbered by decreasing size (ties: smallest node first), as leidenalg.
    pub labels: Vec<usize>,
    /// Number of communities.
    pub n_clusters: usize,
    /// Resolution used.
    pub resolution: f64,
    /// Modularity `Q` at that resolution.
    pub modularity: f64,
}

fn check_params(graph: &WeightedGraph, p: &ClusterParams) -> Result<(), MetricError> {
    if graph.n_nodes() == 0 {
        return Err(MetricError::Empty { what: "graph" });
    }
    if !(p.resolution.is_finite() && p.resolution >= 0.0) {
        return Err(MetricError::invalid(
            "resolution",
            "must be finite and >= 0",
        ));
    }
    if !(p.theta.is_finite() && p.theta > 0.0) {
        return Err(MetricError::invalid("theta", "must be finite and > 0"));
    }
    if p.max_iterations == 0 {
        return Err(MetricError::invalid("max_iterations", "must be at least 1"));
    }
    Ok(())
}

/// Louvain community detection maximising `H` (module docs) at `params.resolution`.
///
/// Each level moves single nodes to the neighbouring (or an empty) community with the
/// largest gain `k_{v,C} - gamma k_v K_C / (2m)` in random order until no move improves,
/// then aggregates communities into nodes; it stops when a level moves nothing.
/// A graph without edges gives every node its own community.
pub fn louvain(
    graph: &WeightedGraph,
    params: &ClusterParams,
) -> Result<CommunityResult, MetricError> {
    cluster(graph, params, GraphAlgorithm::Louvain)
}

/// Leiden community detection (Traag et al. 2019) maximising `H` (module docs).
///
/// Per level: fast local moving with a queue; refinement inside each community, where a
/// singleton node v that is well connected (`E(v, S - v) >= gamma k_v (K_S - k_v) / (2m)`)
/// joins a well-connected refined sub-community C with probability proportional to
/// `exp(dH / theta)` among moves with `dH >= 0`; aggregation of the *refined* partition
/// with the unrefined one as the starting partition of the next level. Communities found
/// are therefore always connected. Passes repeat (from the current partition) until the
/// partition is stable or `max_iterations` is reached.
pub fn leiden(
    graph: &WeightedGraph,
    params: &ClusterParams,
) -> Result<CommunityResult, MetricError> {
    cluster(graph, params, GraphAlgorithm::Leiden)
}

/// [`louvain()`] or [`leiden()`], as `alg` says.
pub(crate) fn cluster(
    graph: &WeightedGraph,
    params: &ClusterParams,
    alg: GraphAlgorithm,
) -> Result<CommunityResult, MetricError> {
    check_params(graph, params)?;
    let n = graph.n_nodes();
    let m = graph.total_weight();
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let labels = if m <= 0.0 {
        (0..n).collect()
    } else {
        let mut part: Vec<usize> = (0..n).collect();
        for it in 0..params.max_iterations {
            let next = match alg {
                GraphAlgorithm::Louvain => louvain_pass(graph, params.resolution, &mut rng),
                GraphAlgorithm::Leiden => leiden_pass(graph, &part, params, &mut rng),
            };
            let next = renumber(&next);
            let stable = next == part;
            part = next;
            if stable || alg == GraphAlgorithm::Louvain || it + 1 == params.max_iterations {
                break;
            }
        }
        part
    };
    let labels = renumber(&labels);
    let n_clusters = labels.iter().max().map_or(0, |&v| v + 1);
    let modularity = if m > 0.0 {
        modularity(graph, &labels, params.resolution)?
    } else {
        0.0
    };
    Ok(CommunityResult {
        labels,
        n_clusters,
        resolution: params.resolution,
        modularity,
    })
}

/// Renumbers communities by decreasing size, ties by smallest member.
fn renumber(labels: &[usize]) -> Vec<usize> {
    let (codes, nc) = crate::util::dense_codes(labels);
    let mut size = vec![0usize; nc];
    let mut first = vec![usize::MAX; nc];
    for (i, &c) in codes.iter().enumerate() {
        size[c] += 1;
        first[c] = first[c].min(i);
    }
    let mut order: Vec<usize> = (0..nc).collect();
    order.sort_by(|&a, &b| size[b].cmp(&size[a]).then(first[a].cmp(&first[b])));
    let mut new_id = vec![0usize; nc];
    for (rank, &c) in order.iter().enumerate() {
        new_id[c] = rank;
    }
    codes.iter().map(|&c| new_id[c]).collect()
}
