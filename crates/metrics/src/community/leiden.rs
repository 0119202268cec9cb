//! One Leiden pass: fast local moving, refinement inside communities, aggregation of the
//! refined partition.

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::graph::aggregate;
use super::moving::{NeighborWeights, Partition, best_move};
use super::{ClusterParams, WeightedGraph};

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

pub(super) fn leiden_pass(
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
