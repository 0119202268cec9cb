//! Moving single nodes between communities: the partition state and the best move of a
//! node, shared by Louvain and Leiden.

use super::WeightedGraph;

/// Partition state for moving nodes: community of each node and community degree totals.
pub(super) struct Partition {
    pub(super) comm: Vec<usize>,
    tot: Vec<f64>,
    size: Vec<usize>,
    empty: Vec<usize>,
}

impl Partition {
    pub(super) fn new(graph: &WeightedGraph, comm: Vec<usize>) -> Self {
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

    pub(super) fn n_communities(&self) -> usize {
        self.size.iter().filter(|&&s| s > 0).count()
    }

    pub(super) fn move_node(&mut self, v: usize, k_v: f64, to: usize) {
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
pub(super) struct NeighborWeights {
    weight: Vec<f64>,
    seen: Vec<bool>,
    pub(super) list: Vec<usize>,
}

impl NeighborWeights {
    pub(super) fn new(n: usize) -> Self {
        Self {
            weight: vec![0.0; n],
            seen: vec![false; n],
            list: Vec::new(),
        }
    }

    pub(super) fn collect(
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

    pub(super) fn get(&self, c: usize) -> f64 {
        if self.seen[c] { self.weight[c] } else { 0.0 }
    }
}

/// Best community for `v` (removed from its own), by gain `k_{v,C} - gamma k_v K_C / 2m`;
/// ties keep the current community, and an empty community (gain 0) is the fallback.
pub(super) fn best_move(
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
