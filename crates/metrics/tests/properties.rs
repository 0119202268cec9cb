//! Property tests: invariances, symmetries, bounds, perfect and chance-level scores.

use crossomics_metrics::alignment::{foscttm, top_k_matching_accuracy};
use crossomics_metrics::clustering::{
    ClusterParams, WeightedGraph, adjusted_mutual_info, adjusted_rand_index, kmeans, leiden,
    louvain, modularity, normalized_mutual_info,
};
use crossomics_metrics::knn::knn_label_accuracy;
use crossomics_metrics::prediction::{Along, auprc, auroc, pearson, spearman};
use crossomics_metrics::silhouette::{batch_asw, cell_type_asw, silhouette_score};
use ndarray::Array2;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const EPS: f64 = 1e-9;

fn labelings() -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    (1usize..60).prop_flat_map(|n| {
        (
            proptest::collection::vec(0usize..6, n),
            proptest::collection::vec(0usize..9, n),
        )
    })
}

/// A bijective relabelling: code c -> perm[c] * 13 + 2.
fn relabel(labels: &[usize], seed: u64) -> Vec<usize> {
    let mut perm: Vec<usize> = (0..64).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.gen_range(0..=i));
    }
    labels.iter().map(|&c| perm[c] * 13 + 2).collect()
}

fn matrix(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    Array2::from_shape_fn((rows, cols), |_| rng.r#gen::<f32>() * 2.0 - 1.0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn agreement_scores_are_permutation_invariant_and_symmetric((t, p) in labelings(), seed in any::<u64>()) {
        for f in [adjusted_rand_index, normalized_mutual_info, adjusted_mutual_info] {
            let base = f(&t, &p).unwrap();
            prop_assert!(base.is_finite());
            prop_assert!((f(&relabel(&t, seed), &relabel(&p, seed ^ 1)).unwrap() - base).abs() < EPS);
            prop_assert!((f(&p, &t).unwrap() - base).abs() < EPS);
        }
    }

    #[test]
    fn agreement_scores_are_bounded_and_perfect_on_relabelled_copies((t, p) in labelings(), seed in any::<u64>()) {
        let ari = adjusted_rand_index(&t, &p).unwrap();
        prop_assert!((-0.5 - EPS..=1.0 + EPS).contains(&ari));
        let nmi = normalized_mutual_info(&t, &p).unwrap();
        prop_assert!((-EPS..=1.0 + EPS).contains(&nmi));
        prop_assert!(adjusted_mutual_info(&t, &p).unwrap() <= 1.0 + EPS);
        let copy = relabel(&t, seed);
        prop_assert!((adjusted_rand_index(&t, &copy).unwrap() - 1.0).abs() < EPS);
        prop_assert!((normalized_mutual_info(&t, &copy).unwrap() - 1.0).abs() < EPS);
        prop_assert!((adjusted_mutual_info(&t, &copy).unwrap() - 1.0).abs() < EPS);
    }

    #[test]
    fn silhouettes_are_bounded(n in 4usize..40, d in 1usize..5, k in 2usize..4, seed in any::<u64>()) {
        let x = matrix(n, d, seed);
        let labels: Vec<usize> = (0..n).map(|i| i % k).collect();
        if k < n {
            let s = silhouette_score(x.view(), &labels).unwrap();
            prop_assert!((-1.0 - EPS..=1.0 + EPS).contains(&s));
            let a = cell_type_asw(x.view(), &labels).unwrap();
            prop_assert!((-EPS..=1.0 + EPS).contains(&a));
        }
        let batch: Vec<usize> = (0..n).map(|i| (i / 2) % 2).collect();
        if let Ok(b) = batch_asw(x.view(), &batch, &labels) {
            prop_assert!((-EPS..=1.0 + EPS).contains(&b.value));
        }
    }

    #[test]
    fn foscttm_is_symmetric_bounded_and_perfect_on_identity(n in 2usize..40, d in 1usize..6, seed in any::<u64>()) {
        let a = matrix(n, d, seed);
        let b = matrix(n, d, seed.wrapping_add(1));
        let v = foscttm(a.view(), b.view()).unwrap();
        prop_assert!((0.0..=1.0).contains(&v));
        prop_assert!((foscttm(b.view(), a.view()).unwrap() - v).abs() < EPS);
        prop_assert_eq!(foscttm(a.view(), a.view()).unwrap(), 0.0);
        let mut prev = 0.0;
        for k in 1..=n {
            let acc = top_k_matching_accuracy(a.view(), b.view(), k).unwrap();
            prop_assert!(acc >= prev);
            prev = acc;
        }
        prop_assert_eq!(prev, 1.0);
    }

    #[test]
    fn correlations_are_symmetric_bounded_and_rank_invariant(r in 2usize..12, c in 2usize..12, seed in any::<u64>()) {
        let t = matrix(r, c, seed);
        let p = matrix(r, c, seed.wrapping_add(7));
        for along in [Along::Flattened, Along::PerCell, Along::PerFeature] {
            let v = pearson(t.view(), p.view(), along).unwrap().value;
            prop_assert!((-1.0..=1.0).contains(&v));
            prop_assert!((pearson(p.view(), t.view(), along).unwrap().value - v).abs() < EPS);
            prop_assert!((pearson(t.view(), t.view(), along).unwrap().value - 1.0).abs() < EPS);
            // Spearman only sees ranks: a monotone transform of the prediction changes nothing
            let s = spearman(t.view(), p.view(), along).unwrap().value;
            let q = p.mapv(|v| (3.0 * v).exp());
            prop_assert!((spearman(t.view(), q.view(), along).unwrap().value - s).abs() < EPS);
        }
    }

    #[test]
    fn auc_scores_are_bounded_and_perfect(r in 2usize..10, c in 2usize..10, seed in any::<u64>()) {
        let scores = matrix(r, c, seed);
        let truth = matrix(r, c, seed.wrapping_add(3)).mapv(|v| if v > 0.0 { 1.0 } else { 0.0 });
        for along in [Along::Flattened, Along::PerCell, Along::PerFeature] {
            let (Ok(a), Ok(p)) = (auroc(truth.view(), scores.view(), along), auprc(truth.view(), scores.view(), along)) else {
                continue;
            };
            prop_assert!((0.0..=1.0).contains(&a.value) && (0.0..=1.0).contains(&p.value));
            // reversing the scores mirrors AUROC
            let rev = scores.mapv(|v| -v);
            let b = auroc(truth.view(), rev.view(), along).unwrap();
            prop_assert!((a.value + b.value - 1.0).abs() < 1e-9);
            // scoring with the truth itself is perfect
            prop_assert!((auroc(truth.view(), truth.view(), along).unwrap().value - 1.0).abs() < EPS);
            prop_assert!((auprc(truth.view(), truth.view(), along).unwrap().value - 1.0).abs() < EPS);
        }
    }

    #[test]
    fn leiden_communities_are_connected_and_no_worse_than_singletons(n in 2usize..40, p in 0.05f64..0.5, seed in any::<u64>()) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut edges = Vec::new();
        for i in 0..n {
            for j in i + 1..n {
                if rng.r#gen::<f64>() < p {
                    edges.push((i, j, rng.r#gen::<f64>() + 0.1));
                }
            }
        }
        let g = WeightedGraph::from_edges(n, &edges).unwrap();
        let params = ClusterParams { seed, ..ClusterParams::default() };
        let ld = leiden(&g, &params).unwrap();
        let lv = louvain(&g, &params).unwrap();
        prop_assert_eq!(ld.labels.len(), n);
        if edges.is_empty() {
            return Ok(());
        }
        let singletons: Vec<usize> = (0..n).collect();
        let q0 = modularity(&g, &singletons, 1.0).unwrap();
        prop_assert!(ld.modularity >= q0 - EPS && lv.modularity >= q0 - EPS);
        // Leiden guarantee: each community induces a connected subgraph
        for c in 0..ld.n_clusters {
            let members: Vec<usize> = (0..n).filter(|&i| ld.labels[i] == c).collect();
            let mut seen = vec![false; n];
            let mut stack = vec![members[0]];
            seen[members[0]] = true;
            let mut count = 0;
            while let Some(v) = stack.pop() {
                count += 1;
                for &(a, b, _) in &edges {
                    let u = if a == v { b } else if b == v { a } else { continue };
                    if ld.labels[u] == c && !seen[u] {
                        seen[u] = true;
                        stack.push(u);
                    }
                }
            }
            prop_assert_eq!(count, members.len(), "community {} disconnected", c);
        }
    }

    #[test]
    fn kmeans_labels_are_in_range(n in 1usize..40, d in 1usize..4, seed in any::<u64>()) {
        let x = matrix(n, d, seed);
        let k = 1 + (seed as usize % n);
        let l = kmeans(x.view(), k, seed).unwrap();
        prop_assert!(l.iter().all(|&c| c < k));
    }
}

#[test]
fn random_labelings_score_near_chance() {
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let t: Vec<usize> = (0..3000).map(|_| rng.gen_range(0..8)).collect();
    let p: Vec<usize> = (0..3000).map(|_| rng.gen_range(0..12)).collect();
    assert!(adjusted_rand_index(&t, &p).unwrap().abs() < 0.01);
    assert!(adjusted_mutual_info(&t, &p).unwrap().abs() < 0.01);
    // NMI is not chance-corrected: small but positive
    assert!(normalized_mutual_info(&t, &p).unwrap() < 0.02);
}

#[test]
fn random_embeddings_score_near_chance() {
    let a = matrix(400, 5, 1);
    let b = matrix(400, 5, 2);
    assert!((foscttm(a.view(), b.view()).unwrap() - 0.5).abs() < 0.05);
    let truth = matrix(200, 50, 3).mapv(|v| if v > 0.6 { 1.0 } else { 0.0 });
    let scores = matrix(200, 50, 4);
    let au = auroc(truth.view(), scores.view(), Along::Flattened)
        .unwrap()
        .value;
    assert!((au - 0.5).abs() < 0.02, "{au}");
    let ap = auprc(truth.view(), scores.view(), Along::Flattened)
        .unwrap()
        .value;
    let prevalence = truth.mean().unwrap() as f64;
    assert!((ap - prevalence).abs() < 0.02, "{ap} vs {prevalence}");
    // random labels: kNN transfer accuracy near 1 / n_labels
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let ytr: Vec<usize> = (0..400).map(|_| rng.gen_range(0..4)).collect();
    let yte: Vec<usize> = (0..400).map(|_| rng.gen_range(0..4)).collect();
    let acc = knn_label_accuracy(a.view(), &ytr, b.view(), &yte, 5).unwrap();
    assert!((acc - 0.25).abs() < 0.08, "{acc}");
    // identical train and test with distinct points and k = 1 is perfect
    assert_eq!(
        knn_label_accuracy(a.view(), &ytr, a.view(), &ytr, 1).unwrap(),
        1.0
    );
}

/// FOSCTTM keeps O(n) memory (no n x n distance matrix): 10,000 cells in one pass
/// (about 1 s in the debug profile).
#[test]
fn foscttm_scales_to_ten_thousand_cells() {
    let a = matrix(10_000, 16, 21);
    let b = a.mapv(|v| v + 0.01);
    let v = foscttm(a.view(), b.view()).unwrap();
    assert!(v < 0.01, "{v}");
}
