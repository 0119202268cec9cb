//! The weighted graph clustering works on: built from edges, from a kNN union or from
//! scanpy's UMAP connectivities; queried by node; aggregated by communities.

use crate::MetricError;
use crate::knn::Neighbors;

/// Undirected weighted graph in compressed adjacency form; each edge is stored in both
/// directions, self-loops separately.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightedGraph {
    offsets: Vec<usize>,
    targets: Vec<usize>,
    weights: Vec<f64>,
    self_loops: Vec<f64>,
}

impl WeightedGraph {
    /// Builds a graph on `n` nodes from undirected edges `(i, j, w)`; duplicate edges are
    /// summed, `i == j` is a self-loop. Errors on an index `>= n` or a weight that is not
    /// finite and non-negative. Zero-weight edges are dropped.
    pub fn from_edges(n: usize, edges: &[(usize, usize, f64)]) -> Result<Self, MetricError> {
        let mut self_loops = vec![0.0; n];
        let mut directed: Vec<(usize, usize, f64)> = Vec::with_capacity(2 * edges.len());
        for &(i, j, w) in edges {
            if i >= n || j >= n {
                return Err(MetricError::invalid(
                    "edges",
                    format!("node index out of range 0..{n}"),
                ));
            }
            if !(w.is_finite() && w >= 0.0) {
                return Err(MetricError::invalid(
                    "edges",
                    format!("weight {w} is not finite and >= 0"),
                ));
            }
            if w == 0.0 {
                continue;
            }
            if i == j {
                self_loops[i] += w;
            } else {
                directed.push((i, j, w));
                directed.push((j, i, w));
            }
        }
        directed.sort_unstable_by_key(|a| (a.0, a.1));
        let mut offsets = vec![0usize; n + 1];
        let mut targets = Vec::with_capacity(directed.len());
        let mut weights: Vec<f64> = Vec::with_capacity(directed.len());
        let mut last: Option<(usize, usize)> = None;
        for (i, j, w) in directed {
            if last == Some((i, j)) {
                *weights.last_mut().expect("previous edge") += w;
            } else {
                targets.push(j);
                weights.push(w);
                offsets[i + 1] += 1;
                last = Some((i, j));
            }
        }
        for i in 0..n {
            offsets[i + 1] += offsets[i];
        }
        Ok(Self {
            offsets,
            targets,
            weights,
            self_loops,
        })
    }

    /// Unweighted union of kNN relations: an edge of weight 1 between i and j when either
    /// is among the other's neighbours (self-neighbours ignored).
    pub fn knn_union(nn: &Neighbors) -> Self {
        let n = nn.n_queries();
        let mut edges = Vec::with_capacity(n * nn.k);
        for i in 0..n {
            for &j in nn.indices_of(i) {
                if j != i {
                    edges.push((i.min(j), i.max(j), 1.0));
                }
            }
        }
        edges.sort_unstable_by_key(|a| (a.0, a.1));
        edges.dedup_by(|a, b| a.0 == b.0 && a.1 == b.1);
        Self::from_edges(n, &edges).expect("valid kNN indices")
    }

    /// Fuzzy-union connectivities of `scanpy.pp.neighbors(method="umap")`, i.e. umap-learn's
    /// `fuzzy_simplicial_set` with `local_connectivity=1`, `set_op_mix_ratio=1`.
    ///
    /// `nn` holds each cell's k nearest *other* cells (scanpy's `n_neighbors` = k + 1, as
    /// scanpy counts the cell itself). For cell i with distances d_1 <= ... <= d_k,
    /// `rho_i = d_1` (first non-zero distance), `sigma_i` solves
    /// `sum_j exp(-max(d_j - rho_i, 0) / sigma_i) = log2(k + 1)` by bisection (64 steps,
    /// tolerance 1e-5, floored at 1e-3 times the mean distance as umap), memberships are
    /// `w_ij = exp(-max(d_ij - rho_i, 0) / sigma_i)` and the graph is
    /// `W + W^T - W o W^T`.
    pub fn umap_connectivities(nn: &Neighbors) -> Self {
        let n = nn.n_queries();
        let k = nn.k;
        let target = ((k + 1) as f64).log2();
        // umap's mean over all distances includes each cell's zero self-distance
        let mean_all = nn.distances.iter().sum::<f64>() / (n * (k + 1)).max(1) as f64;
        let mut directed: Vec<(usize, usize, f64)> = Vec::with_capacity(n * k);
        for i in 0..n {
            let d = nn.distances_of(i);
            let rho = d.iter().copied().find(|&v| v > 0.0).unwrap_or(0.0);
            let (mut lo, mut hi, mut mid) = (0.0f64, f64::INFINITY, 1.0f64);
            for _ in 0..64 {
                let psum: f64 = d
                    .iter()
                    .map(|&dj| {
                        let x = dj - rho;
                        if x > 0.0 { (-x / mid).exp() } else { 1.0 }
                    })
                    .sum();
                if (psum - target).abs() < 1e-5 {
                    break;
                }
                if psum > target {
                    hi = mid;
                    mid = (lo + hi) / 2.0;
                } else {
                    lo = mid;
                    if hi.is_infinite() {
                        mid *= 2.0;
                    } else {
                        mid = (lo + hi) / 2.0;
                    }
                }
            }
            let mut sigma = mid;
            let floor = if rho > 0.0 {
                1e-3 * d.iter().sum::<f64>() / (k + 1) as f64
            } else {
                1e-3 * mean_all
            };
            if sigma < floor {
                sigma = floor;
            }
            for (&j, &dj) in nn.indices_of(i).iter().zip(d) {
                if j == i {
                    continue;
                }
                let w = if dj - rho <= 0.0 || sigma == 0.0 {
                    1.0
                } else {
                    (-(dj - rho) / sigma).exp()
                };
                directed.push((i, j, w));
            }
        }
        // fuzzy union: w_ij + w_ji - w_ij w_ji
        let mut keyed: Vec<((usize, usize), f64, bool)> = directed
            .into_iter()
            .map(|(i, j, w)| ((i.min(j), i.max(j)), w, i < j))
            .collect();
        keyed.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.2.cmp(&b.2)));
        let mut edges = Vec::with_capacity(keyed.len());
        let mut s = 0;
        while s < keyed.len() {
            let mut e = s + 1;
            while e < keyed.len() && keyed[e].0 == keyed[s].0 {
                e += 1;
            }
            let (a, b) = match e - s {
                1 => (keyed[s].1, 0.0),
                _ => (keyed[s].1, keyed[s + 1].1),
            };
            edges.push((keyed[s].0.0, keyed[s].0.1, a + b - a * b));
            s = e;
        }
        Self::from_edges(n, &edges).expect("valid kNN graph")
    }

    /// Number of nodes.
    pub fn n_nodes(&self) -> usize {
        self.self_loops.len()
    }

    /// Neighbours of `i` (excluding a self-loop) and the edge weights.
    pub fn neighbors(&self, i: usize) -> impl Iterator<Item = (usize, f64)> + '_ {
        let r = self.offsets[i]..self.offsets[i + 1];
        self.targets[r.clone()]
            .iter()
            .copied()
            .zip(self.weights[r].iter().copied())
    }

    /// Self-loop weight of `i`.
    pub fn self_loop(&self, i: usize) -> f64 {
        self.self_loops[i]
    }

    /// Weighted degree: incident edge weights plus twice the self-loop.
    pub fn degree(&self, i: usize) -> f64 {
        self.neighbors(i).map(|(_, w)| w).sum::<f64>() + 2.0 * self.self_loops[i]
    }

    /// Total edge weight `m` (each undirected edge once, self-loops once).
    pub fn total_weight(&self) -> f64 {
        (self.weights.iter().sum::<f64>() / 2.0) + self.self_loops.iter().sum::<f64>()
    }

    /// Sizes of connected components restricted to the nodes with `keep[i]`, edges of
    /// positive weight between kept nodes only.
    pub(crate) fn component_sizes(&self, keep: &[bool]) -> Vec<usize> {
        let n = self.n_nodes();
        let mut comp = vec![usize::MAX; n];
        let mut sizes = Vec::new();
        let mut stack = Vec::new();
        for s in 0..n {
            if !keep[s] || comp[s] != usize::MAX {
                continue;
            }
            let c = sizes.len();
            comp[s] = c;
            stack.push(s);
            let mut size = 0;
            while let Some(v) = stack.pop() {
                size += 1;
                for (u, _) in self.neighbors(v) {
                    if keep[u] && comp[u] == usize::MAX {
                        comp[u] = c;
                        stack.push(u);
                    }
                }
            }
            sizes.push(size);
        }
        sizes
    }
}

/// Aggregates `graph` by `groups` (dense codes `0..ng`): node weights summed into edges
/// between groups and self-loops for the weight inside a group.
pub(super) fn aggregate(graph: &WeightedGraph, groups: &[usize], ng: usize) -> WeightedGraph {
    let mut edges = Vec::with_capacity(graph.targets.len() / 2 + ng);
    for v in 0..graph.n_nodes() {
        let gv = groups[v];
        if graph.self_loops[v] > 0.0 {
            edges.push((gv, gv, graph.self_loops[v]));
        }
        for (u, w) in graph.neighbors(v) {
            if u > v {
                let gu = groups[u];
                edges.push((gv.min(gu), gv.max(gu), w));
            }
        }
    }
    WeightedGraph::from_edges(ng, &edges).expect("aggregated edges are valid")
}
