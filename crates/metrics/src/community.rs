//! Graph clustering as scanpy does it: kNN graph -> UMAP connectivities -> Louvain or
//! Leiden maximising modularity with a resolution parameter, and a resolution search that
//! hits a target number of clusters.
//!
//! Quality maximised (the RB configuration model of `leidenalg.RBConfigurationVertexPartition`,
//! which `scanpy.tl.leiden` and `scanpy.tl.louvain` use):
//! `H = sum_c [ e_c - gamma K_c^2 / (4 m) ]`, with `e_c` the total weight of edges inside
//! community c, `K_c` the summed weighted degree of its nodes and `m` the total edge weight.
//! Modularity is `Q = H / m` (see [`modularity`]).

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::MetricError;
use crate::knn::Neighbors;
use crate::util::check_len;

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

/// Graph clustering algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GraphAlgorithm {
    /// Louvain (Blondel et al. 2008): local moving + aggregation.
    Louvain,
    /// Leiden (Traag, Waltman & van Eck 2019): fast local moving, refinement, aggregation.
    Leiden,
}

/// Settings of [`louvain`] and [`leiden`].
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

/// A partition found by [`louvain`], [`leiden`] or [`search_resolution`].
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
    check_params(graph, params)?;
    run(graph, params, GraphAlgorithm::Louvain)
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
    check_params(graph, params)?;
    run(graph, params, GraphAlgorithm::Leiden)
}

fn run(
    graph: &WeightedGraph,
    params: &ClusterParams,
    alg: GraphAlgorithm,
) -> Result<CommunityResult, MetricError> {
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

/// Partition state for moving nodes: community of each node and community degree totals.
struct Partition {
    comm: Vec<usize>,
    tot: Vec<f64>,
    size: Vec<usize>,
    empty: Vec<usize>,
}

impl Partition {
    fn new(graph: &WeightedGraph, comm: Vec<usize>) -> Self {
        let n = graph.n_nodes();
        let mut tot = vec![0.0; n];
        let mut size = vec![0usize; n];
        for v in 0..n {
            tot[comm[v]] += graph.degree(v);
            size[comm[v]] += 1;
        }
        let empty = (0..n).rev().filter(|&c| size[c] == 0).collect();
        Self {
            comm,
            tot,
            size,
            empty,
        }
    }

    fn n_communities(&self) -> usize {
        self.size.iter().filter(|&&s| s > 0).count()
    }

    fn move_node(&mut self, v: usize, k_v: f64, to: usize) {
        let from = self.comm[v];
        if from == to {
            return;
        }
        self.tot[from] -= k_v;
        self.size[from] -= 1;
        if self.size[from] == 0 {
            self.empty.push(from);
        }
        if self.size[to] == 0
            && let Some(pos) = self.empty.iter().rposition(|&c| c == to)
        {
            self.empty.swap_remove(pos);
        }
        self.tot[to] += k_v;
        self.size[to] += 1;
        self.comm[v] = to;
    }
}

/// Scratch for summing a node's edge weights per community.
struct NeighborWeights {
    weight: Vec<f64>,
    seen: Vec<bool>,
    list: Vec<usize>,
}

impl NeighborWeights {
    fn new(n: usize) -> Self {
        Self {
            weight: vec![0.0; n],
            seen: vec![false; n],
            list: Vec::new(),
        }
    }

    fn collect(
        &mut self,
        graph: &WeightedGraph,
        v: usize,
        comm: &[usize],
        filter: impl Fn(usize) -> bool,
    ) {
        for &c in &self.list {
            self.weight[c] = 0.0;
            self.seen[c] = false;
        }
        self.list.clear();
        for (u, w) in graph.neighbors(v) {
            if !filter(u) {
                continue;
            }
            let c = comm[u];
            if !self.seen[c] {
                self.seen[c] = true;
                self.list.push(c);
            }
            self.weight[c] += w;
        }
    }

    fn get(&self, c: usize) -> f64 {
        if self.seen[c] { self.weight[c] } else { 0.0 }
    }
}

/// Best community for `v` (removed from its own), by gain `k_{v,C} - gamma k_v K_C / 2m`;
/// ties keep the current community, and an empty community (gain 0) is the fallback.
fn best_move(
    part: &Partition,
    nw: &NeighborWeights,
    v: usize,
    k_v: f64,
    gamma_over_2m: f64,
) -> (usize, f64) {
    let cur = part.comm[v];
    let gain = |c: usize| {
        let tot = if c == cur {
            part.tot[c] - k_v
        } else {
            part.tot[c]
        };
        nw.get(c) - gamma_over_2m * k_v * tot
    };
    let mut best = (cur, gain(cur));
    for &c in &nw.list {
        let g = gain(c);
        if g > best.1 {
            best = (c, g);
        }
    }
    if best.1 < 0.0 {
        if part.size[cur] == 1 {
            return (cur, 0.0);
        }
        if let Some(&e) = part.empty.last() {
            return (e, 0.0);
        }
    }
    best
}

/// Louvain-style sweeps until no node moves; returns whether anything moved.
fn local_moving_sweeps(
    graph: &WeightedGraph,
    part: &mut Partition,
    gamma: f64,
    m: f64,
    rng: &mut ChaCha8Rng,
) -> bool {
    let n = graph.n_nodes();
    let degrees: Vec<f64> = (0..n).map(|v| graph.degree(v)).collect();
    let g2m = gamma / (2.0 * m);
    let mut nw = NeighborWeights::new(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut any = false;
    loop {
        order.shuffle(rng);
        let mut moved = false;
        for &v in &order {
            nw.collect(graph, v, &part.comm, |_| true);
            let (to, _) = best_move(part, &nw, v, degrees[v], g2m);
            if to != part.comm[v] {
                part.move_node(v, degrees[v], to);
                moved = true;
            }
        }
        any |= moved;
        if !moved {
            return any;
        }
    }
}

/// Leiden's fast local moving: visit nodes from a queue; when a node moves, enqueue its
/// neighbours outside its new community.
fn fast_local_moving(
    graph: &WeightedGraph,
    part: &mut Partition,
    gamma: f64,
    m: f64,
    rng: &mut ChaCha8Rng,
) {
    let n = graph.n_nodes();
    let degrees: Vec<f64> = (0..n).map(|v| graph.degree(v)).collect();
    let g2m = gamma / (2.0 * m);
    let mut nw = NeighborWeights::new(n);
    let mut queue: std::collections::VecDeque<usize> = {
        let mut o: Vec<usize> = (0..n).collect();
        o.shuffle(rng);
        o.into()
    };
    let mut in_queue = vec![true; n];
    while let Some(v) = queue.pop_front() {
        in_queue[v] = false;
        nw.collect(graph, v, &part.comm, |_| true);
        let (to, _) = best_move(part, &nw, v, degrees[v], g2m);
        if to != part.comm[v] {
            part.move_node(v, degrees[v], to);
            for (u, _) in graph.neighbors(v) {
                if !in_queue[u] && part.comm[u] != to {
                    in_queue[u] = true;
                    queue.push_back(u);
                }
            }
        }
    }
}

/// Leiden's refinement (Algorithm A.2, MergeNodesSubset, for each community S).
fn refine(
    graph: &WeightedGraph,
    comm: &[usize],
    gamma: f64,
    m: f64,
    theta: f64,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let n = graph.n_nodes();
    let degrees: Vec<f64> = (0..n).map(|v| graph.degree(v)).collect();
    let g2m = gamma / (2.0 * m);
    // K_S per community
    let mut comm_tot = vec![0.0; n];
    for v in 0..n {
        comm_tot[comm[v]] += degrees[v];
    }
    // w_vS: weight from v to the rest of its community
    let w_in: Vec<f64> = (0..n)
        .map(|v| {
            graph
                .neighbors(v)
                .filter(|&(u, _)| comm[u] == comm[v])
                .map(|(_, w)| w)
                .sum()
        })
        .collect();
    let mut refined: Vec<usize> = (0..n).collect();
    let mut r_tot = degrees.clone();
    let mut r_ext = w_in.clone();
    let mut r_size = vec![1usize; n];
    let mut nw = NeighborWeights::new(n);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut cands: Vec<(usize, f64)> = Vec::new();
    for &v in &order {
        let s = comm[v];
        let own = refined[v];
        if r_size[own] != 1 {
            continue;
        }
        let k_v = degrees[v];
        if w_in[v] < g2m * k_v * (comm_tot[s] - k_v) {
            continue;
        }
        nw.collect(graph, v, &refined, |u| comm[u] == s);
        cands.clear();
        cands.push((own, 0.0));
        for &r in &nw.list {
            if r == own {
                continue;
            }
            let well_connected = r_ext[r] >= g2m * r_tot[r] * (comm_tot[s] - r_tot[r]);
            if !well_connected {
                continue;
            }
            let dh = nw.get(r) - g2m * k_v * r_tot[r];
            if dh >= 0.0 {
                cands.push((r, dh));
            }
        }
        let max_dh = cands.iter().map(|c| c.1).fold(f64::NEG_INFINITY, f64::max);
        let total: f64 = cands.iter().map(|c| ((c.1 - max_dh) / theta).exp()).sum();
        let mut x = rng.r#gen::<f64>() * total;
        let mut chosen = cands[cands.len() - 1].0;
        for &(r, dh) in &cands {
            x -= ((dh - max_dh) / theta).exp();
            if x <= 0.0 {
                chosen = r;
                break;
            }
        }
        if chosen != own {
            r_ext[chosen] += w_in[v] - 2.0 * nw.get(chosen);
            r_tot[chosen] += k_v;
            r_size[chosen] += 1;
            r_size[own] = 0;
            refined[v] = chosen;
        }
    }
    refined
}

/// Aggregates `graph` by `groups` (dense codes `0..ng`): node weights summed into edges
/// between groups and self-loops for the weight inside a group.
fn aggregate(graph: &WeightedGraph, groups: &[usize], ng: usize) -> WeightedGraph {
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

fn louvain_pass(graph: &WeightedGraph, gamma: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let m = graph.total_weight();
    let mut membership: Vec<usize> = (0..graph.n_nodes()).collect();
    let mut g = graph.clone();
    loop {
        let mut part = Partition::new(&g, (0..g.n_nodes()).collect());
        let moved = local_moving_sweeps(&g, &mut part, gamma, m, rng);
        if !moved {
            break;
        }
        let (codes, nc) = crate::util::dense_codes(&part.comm);
        for mbr in membership.iter_mut() {
            *mbr = codes[*mbr];
        }
        g = aggregate(&g, &codes, nc);
    }
    membership
}

fn leiden_pass(
    graph: &WeightedGraph,
    start: &[usize],
    params: &ClusterParams,
    rng: &mut ChaCha8Rng,
) -> Vec<usize> {
    let gamma = params.resolution;
    let m = graph.total_weight();
    let mut membership: Vec<usize> = (0..graph.n_nodes()).collect();
    let mut g = graph.clone();
    let (start, _) = crate::util::dense_codes(start);
    let mut part = Partition::new(&g, start);
    loop {
        fast_local_moving(&g, &mut part, gamma, m, rng);
        if part.n_communities() == g.n_nodes() {
            break;
        }
        let (pcodes, _) = crate::util::dense_codes(&part.comm);
        let refined = refine(&g, &pcodes, gamma, m, params.theta, rng);
        let (rcodes, nr) = crate::util::dense_codes(&refined);
        let (groups, ng, next_start): (Vec<usize>, usize, Vec<usize>) = if nr < g.n_nodes() {
            let mut start = vec![0usize; nr];
            for v in 0..g.n_nodes() {
                start[rcodes[v]] = pcodes[v];
            }
            (rcodes, nr, start)
        } else {
            // refinement merged nothing: aggregate the unrefined partition so the level
            // still shrinks the graph (guarantees termination)
            let np = pcodes.iter().max().map_or(0, |&c| c + 1);
            (pcodes.clone(), np, (0..np).collect())
        };
        for mbr in membership.iter_mut() {
            *mbr = groups[*mbr];
        }
        g = aggregate(&g, &groups, ng);
        part = Partition::new(&g, next_start);
    }
    membership.iter().map(|&a| part.comm[a]).collect()
}

/// Settings of [`search_resolution`].
#[derive(Debug, Clone, PartialEq)]
pub struct ResolutionSearch {
    /// Number of clusters wanted (e.g. the number of cell types).
    pub target: usize,
    /// Algorithm run at each resolution.
    pub algorithm: GraphAlgorithm,
    /// Seed and theta for every run (`resolution` is overwritten).
    pub params: ClusterParams,
    /// Bisection steps after bracketing.
    pub max_steps: usize,
    /// Largest resolution tried while bracketing.
    pub max_resolution: f64,
}

impl ResolutionSearch {
    /// Leiden search for `target` clusters with default settings.
    pub fn leiden(target: usize, seed: u64) -> Self {
        Self {
            target,
            algorithm: GraphAlgorithm::Leiden,
            params: ClusterParams {
                seed,
                ..ClusterParams::default()
            },
            max_steps: 30,
            max_resolution: 1024.0,
        }
    }
}

/// Resolution search for a target number of clusters (the practice of scGLUE/scJoint-style
/// benchmarks: bisection on the resolution, since the cluster count grows with it).
///
/// Starting from `[0, 1]`, the upper end doubles until it yields at least `target`
/// clusters (or reaches `max_resolution`), then the interval is bisected until a run gives
/// exactly `target` clusters. If none does, the run whose count is closest to the target
/// (ties: smaller resolution) is returned. Every run uses the same seed, so the search is
/// deterministic.
pub fn search_resolution(
    graph: &WeightedGraph,
    search: &ResolutionSearch,
) -> Result<CommunityResult, MetricError> {
    if search.target == 0 || search.target > graph.n_nodes() {
        return Err(MetricError::invalid(
            "target",
            format!("must be in 1..={}, got {}", graph.n_nodes(), search.target),
        ));
    }
    let run_at = |res: f64| {
        let p = ClusterParams {
            resolution: res,
            ..search.params.clone()
        };
        match search.algorithm {
            GraphAlgorithm::Louvain => louvain(graph, &p),
            GraphAlgorithm::Leiden => leiden(graph, &p),
        }
    };
    let target = search.target;
    let mut best: Option<CommunityResult> = None;
    let mut consider = |r: CommunityResult| -> bool {
        let dist = r.n_clusters.abs_diff(target);
        let better = best.as_ref().is_none_or(|b| {
            let bd = b.n_clusters.abs_diff(target);
            dist < bd || (dist == bd && r.resolution < b.resolution)
        });
        let exact = dist == 0;
        if better {
            best = Some(r);
        }
        exact
    };
    let mut lo = 0.0;
    let mut hi = 1.0;
    loop {
        let r = run_at(hi)?;
        let count = r.n_clusters;
        if consider(r) {
            return Ok(best.expect("set"));
        }
        if count >= target || hi >= search.max_resolution {
            break;
        }
        lo = hi;
        hi *= 2.0;
    }
    for _ in 0..search.max_steps {
        let mid = 0.5 * (lo + hi);
        let r = run_at(mid)?;
        let count = r.n_clusters;
        if consider(r) {
            break;
        }
        if count < target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(best.expect("at least one run"))
}

/// The clustering of scib's `cluster_optimal_resolution` (the `opt_louvain` that the
/// NeurIPS 2021 joint-embedding `nmi` and `ari` metrics run): the graph is clustered at
/// every resolution of `resolutions` (scib: 0.1, 0.2, ..., 2.0) and the clustering whose
/// NMI with `labels` is highest is kept (ties: the smaller resolution).
#[derive(Debug, Clone, PartialEq)]
pub struct OptimalClustering {
    pub clusters: CommunityResult,
    /// NMI (arithmetic normalisation) of the kept clustering with the labels.
    pub nmi: f64,
    /// ARI of the kept clustering with the labels.
    pub ari: f64,
}

/// The resolutions scib tries: 0.1 to 2.0 in steps of 0.1.
pub fn scib_resolutions() -> Vec<f64> {
    (1..=20).map(|i| f64::from(i) / 10.0).collect()
}

/// See [`OptimalClustering`]. Errors: no resolution, labels of the wrong length.
pub fn cluster_optimal_resolution(
    graph: &WeightedGraph,
    labels: &[usize],
    algorithm: GraphAlgorithm,
    resolutions: &[f64],
    seed: u64,
) -> Result<OptimalClustering, MetricError> {
    check_len("labels", labels.len(), graph.n_nodes())?;
    if resolutions.is_empty() {
        return Err(MetricError::invalid("resolutions", "no resolution to try"));
    }
    let mut best: Option<(f64, CommunityResult)> = None;
    for &resolution in resolutions {
        let params = ClusterParams {
            resolution,
            seed,
            ..ClusterParams::default()
        };
        let r = match algorithm {
            GraphAlgorithm::Louvain => louvain(graph, &params)?,
            GraphAlgorithm::Leiden => leiden(graph, &params)?,
        };
        let nmi = crate::clustering::normalized_mutual_info(labels, &r.labels)?;
        if best.as_ref().is_none_or(|(b, _)| nmi > *b) {
            best = Some((nmi, r));
        }
    }
    let (nmi, clusters) = best.expect("at least one resolution");
    let ari = crate::clustering::adjusted_rand_index(labels, &clusters.labels)?;
    Ok(OptimalClustering { clusters, nmi, ari })
}

/// Leiden clusters of an embedding as scanpy's defaults find them (`sc.pp.neighbors` with
/// 15 neighbours counting the cell itself, UMAP connectivities, `sc.tl.leiden` at
/// `resolution`): the label-free clustering the runner writes for the user to annotate.
/// Fewer than 3 cells form one cluster. Errors: empty or non-finite input.
pub fn leiden_of_embedding(
    emb: ndarray::ArrayView2<f32>,
    resolution: f64,
    seed: u64,
) -> Result<CommunityResult, MetricError> {
    let n = emb.nrows();
    if n == 0 {
        return Err(MetricError::Empty { what: "embedding" });
    }
    if n < 3 {
        if emb.iter().any(|v| !v.is_finite()) {
            return Err(MetricError::invalid(
                "embedding",
                "holds NaN or infinite values",
            ));
        }
        return Ok(CommunityResult {
            labels: vec![0; n],
            n_clusters: 1,
            resolution,
            modularity: 0.0,
        });
    }
    let k = 14.min(n - 1);
    let nn = crate::knn::knn_graph(emb, k, &crate::knn::KnnMethod::default())?;
    let graph = WeightedGraph::umap_connectivities(&nn);
    leiden(
        &graph,
        &ClusterParams {
            resolution,
            seed,
            ..ClusterParams::default()
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leiden_of_an_embedding_finds_well_separated_groups_without_labels() {
        // three tight blobs of 20 points, far apart
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let x = ndarray::Array2::from_shape_fn((60, 4), |(i, j)| {
            let centre = if j == i / 20 { 50.0 } else { 0.0 };
            centre + rng.gen_range(-1.0f32..1.0)
        });
        let r = leiden_of_embedding(x.view(), 1.0, 0).unwrap();
        assert_eq!(r.n_clusters, 3, "{:?}", r.labels);
        for blob in 0..3 {
            let c = r.labels[blob * 20];
            assert!(r.labels[blob * 20..(blob + 1) * 20].iter().all(|&l| l == c));
        }
        let tiny = ndarray::Array2::<f32>::zeros((2, 3));
        assert_eq!(
            leiden_of_embedding(tiny.view(), 1.0, 0).unwrap().labels,
            vec![0, 0]
        );
        let mut bad = x.clone();
        bad[[5, 1]] = f32::NAN;
        assert!(leiden_of_embedding(bad.view(), 1.0, 0).is_err());
        assert!(leiden_of_embedding(x.slice(ndarray::s![..0, ..]), 1.0, 0).is_err());
    }

    /// `c` cliques of `s` nodes, consecutive cliques joined by one edge (a ring).
    fn ring_of_cliques(c: usize, s: usize) -> (WeightedGraph, Vec<usize>) {
        let mut edges = Vec::new();
        for q in 0..c {
            for a in 0..s {
                for b in a + 1..s {
                    edges.push((q * s + a, q * s + b, 1.0));
                }
            }
            edges.push((q * s, ((q + 1) % c) * s + 1, 1.0));
        }
        let truth = (0..c * s).map(|i| i / s).collect();
        (WeightedGraph::from_edges(c * s, &edges).unwrap(), truth)
    }

    #[test]
    fn modularity_hand_computed() {
        // two triangles joined by one edge: m = 7, each side internal 3, degrees 7 per side
        let (g, truth) = ring_of_cliques(2, 3);
        // ring of 2 adds two bridges (0-4 and 3-1); m = 8, internal 3 each, K = 8 each
        let q = modularity(&g, &truth, 1.0).unwrap();
        assert!((q - (2.0 * (3.0 / 8.0 - 0.25))).abs() < 1e-12, "{q}");
        assert_eq!(modularity(&g, &[0; 6], 1.0).unwrap(), 0.0);
    }

    #[test]
    fn louvain_and_leiden_recover_cliques() {
        let (g, truth) = ring_of_cliques(8, 6);
        for alg in [GraphAlgorithm::Louvain, GraphAlgorithm::Leiden] {
            let p = ClusterParams::default();
            let r = match alg {
                GraphAlgorithm::Louvain => louvain(&g, &p),
                GraphAlgorithm::Leiden => leiden(&g, &p),
            }
            .unwrap();
            assert_eq!(r.n_clusters, 8, "{alg:?}");
            assert_eq!(
                crate::clustering::adjusted_rand_index(&truth, &r.labels).unwrap(),
                1.0
            );
            let q_truth = modularity(&g, &truth, 1.0).unwrap();
            assert!((r.modularity - q_truth).abs() < 1e-12);
        }
    }

    #[test]
    fn resolution_search_hits_target() {
        let (g, _) = ring_of_cliques(8, 6);
        for target in [2, 4, 8] {
            let r = search_resolution(&g, &ResolutionSearch::leiden(target, 3)).unwrap();
            assert_eq!(r.n_clusters, target, "target {target}");
        }
        assert!(search_resolution(&g, &ResolutionSearch::leiden(0, 3)).is_err());
    }

    #[test]
    fn degenerate_graphs() {
        let g = WeightedGraph::from_edges(3, &[]).unwrap();
        let r = leiden(&g, &ClusterParams::default()).unwrap();
        assert_eq!(r.n_clusters, 3);
        assert!(modularity(&g, &[0, 0, 0], 1.0).is_err());
        let empty = WeightedGraph::from_edges(0, &[]).unwrap();
        assert!(matches!(
            louvain(&empty, &ClusterParams::default()),
            Err(MetricError::Empty { .. })
        ));
        assert!(WeightedGraph::from_edges(2, &[(0, 2, 1.0)]).is_err());
        assert!(WeightedGraph::from_edges(2, &[(0, 1, f64::NAN)]).is_err());
        let bad = ClusterParams {
            resolution: -1.0,
            ..ClusterParams::default()
        };
        let (g, _) = ring_of_cliques(2, 3);
        assert!(leiden(&g, &bad).is_err());
    }

    #[test]
    fn the_optimal_resolution_is_the_best_nmi_of_a_brute_force_loop() {
        // three planted groups of 30 nodes, dense inside, a few edges between
        let n = 90;
        let mut edges = Vec::new();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for i in 0..n {
            for j in (i + 1)..n {
                let same = i / 30 == j / 30;
                if rng.gen_bool(if same { 0.4 } else { 0.02 }) {
                    edges.push((i, j, 1.0));
                }
            }
        }
        let g = WeightedGraph::from_edges(n, &edges).unwrap();
        // labels that split one planted group in two: the best resolution is not 1
        let labels: Vec<usize> = (0..n).map(|i| if i < 15 { 3 } else { i / 30 }).collect();
        let res = scib_resolutions();
        assert_eq!(res.len(), 20);
        assert!((res[0] - 0.1).abs() < 1e-12 && (res[19] - 2.0).abs() < 1e-12);
        for algorithm in [GraphAlgorithm::Louvain, GraphAlgorithm::Leiden] {
            let got = cluster_optimal_resolution(&g, &labels, algorithm, &res, 0).unwrap();
            let mut best = f64::NEG_INFINITY;
            let mut best_res = 0.0;
            for &r in &res {
                let p = ClusterParams {
                    resolution: r,
                    ..ClusterParams::default()
                };
                let c = match algorithm {
                    GraphAlgorithm::Louvain => louvain(&g, &p).unwrap(),
                    GraphAlgorithm::Leiden => leiden(&g, &p).unwrap(),
                };
                let nmi = crate::clustering::normalized_mutual_info(&labels, &c.labels).unwrap();
                if nmi > best {
                    best = nmi;
                    best_res = r;
                }
            }
            assert_eq!(got.nmi, best, "{algorithm:?}");
            assert_eq!(got.clusters.resolution, best_res, "{algorithm:?}");
            let ari =
                crate::clustering::adjusted_rand_index(&labels, &got.clusters.labels).unwrap();
            assert_eq!(got.ari, ari);
            assert!(
                got.nmi > 0.8,
                "{algorithm:?}: planted groups found, nmi {}",
                got.nmi
            );
        }
        assert!(cluster_optimal_resolution(&g, &labels, GraphAlgorithm::Leiden, &[], 0).is_err());
        assert!(
            cluster_optimal_resolution(&g, &labels[1..], GraphAlgorithm::Leiden, &res, 0).is_err()
        );
    }
}
