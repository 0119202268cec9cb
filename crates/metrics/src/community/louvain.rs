//! One Louvain pass: local moving sweeps, then aggregation, level by level.

use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::WeightedGraph;
use super::graph::aggregate;
use super::moving::{NeighborWeights, Partition, best_move};

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

pub(super) fn louvain_pass(graph: &WeightedGraph, gamma: f64, rng: &mut ChaCha8Rng) -> Vec<usize> {
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
