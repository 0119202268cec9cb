use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

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
            let c = cluster(&g, &p, algorithm).unwrap();
            let nmi = crate::clustering::normalized_mutual_info(&labels, &c.labels).unwrap();
            if nmi > best {
                best = nmi;
                best_res = r;
            }
        }
        assert_eq!(got.nmi, best, "{algorithm:?}");
        assert_eq!(got.clusters.resolution, best_res, "{algorithm:?}");
        let ari = crate::clustering::adjusted_rand_index(&labels, &got.clusters.labels).unwrap();
        assert_eq!(got.ari, ari);
        assert!(
            got.nmi > 0.8,
            "{algorithm:?}: planted groups found, nmi {}",
            got.nmi
        );
    }
    assert!(cluster_optimal_resolution(&g, &labels, GraphAlgorithm::Leiden, &[], 0).is_err());
    assert!(cluster_optimal_resolution(&g, &labels[1..], GraphAlgorithm::Leiden, &res, 0).is_err());
}
