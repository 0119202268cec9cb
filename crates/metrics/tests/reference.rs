//! Comparison with reference values computed by scikit-learn / scipy / networkx and numpy
//! re-implementations of scib and harmonypy (scripts/metrics_fixtures.py; versions are in
//! tests/fixtures/reference.json). Inputs are a real 20-component PCA embedding of the BMMC
//! starter data, real RNA / ATAC blocks with noisy predictions, and seeded labelings.

use std::path::PathBuf;

use crossomics_metrics::MetricError;
use crossomics_metrics::alignment::{foscttm, foscttm_per_cell, top_k_matching_accuracy};
use crossomics_metrics::clustering::{
    KMeansParams, ResolutionSearch, WeightedGraph, adjusted_mutual_info, adjusted_rand_index,
    kmeans_with, leiden, louvain, modularity, normalized_mutual_info, search_resolution,
};
use crossomics_metrics::integration::{clisi, graph_connectivity_knn, ilisi, lisi};
use crossomics_metrics::knn::{exact_knn_self, knn_label_accuracy, knn_label_transfer};
use crossomics_metrics::prediction::{Along, Score, auprc, auroc, mae, pearson, rmse, spearman};
use crossomics_metrics::silhouette::{
    batch_asw, cell_type_asw, silhouette_samples, silhouette_score,
};
use ndarray::{Array2, ArrayView2, Axis};
use serde_json::Value;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn npy(name: &str) -> Array2<f32> {
    ndarray_npy::read_npy(fixtures().join(name)).unwrap()
}

fn json(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(fixtures().join(name)).unwrap()).unwrap()
}

fn reference() -> Value {
    json("reference.json")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn usizes(v: &Value) -> Vec<usize> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as usize)
        .collect()
}

/// |got - want| <= 1e-6 * max(1, |want|)
#[track_caller]
fn close(got: f64, want: f64, what: &str) {
    assert!(
        (got - want).abs() <= 1e-6 * want.abs().max(1.0),
        "{what}: got {got}, reference {want}"
    );
}

#[track_caller]
fn close_score(got: Score, want: &Value, what: &str) {
    close(got.value, f(&want["value"]), what);
    assert_eq!(
        got.n_scored as u64,
        want["n_scored"].as_u64().unwrap(),
        "{what} n_scored"
    );
    assert_eq!(
        got.n_skipped as u64,
        want["n_skipped"].as_u64().unwrap(),
        "{what} n_skipped"
    );
}

struct Bmmc {
    x: Array2<f32>,
    cell_type: Vec<usize>,
    batch: Vec<usize>,
}

fn bmmc() -> Bmmc {
    let labels = json("bmmc_labels.json");
    Bmmc {
        x: npy("bmmc_pca20.npy"),
        cell_type: usizes(&labels["cell_type"]),
        batch: usizes(&labels["batch"]),
    }
}

#[test]
fn ari_nmi_ami_match_sklearn() {
    let r = reference();
    for case in r["clustering"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let t = usizes(&case["labels_true"]);
        let p = usizes(&case["labels_pred"]);
        close(
            adjusted_rand_index(&t, &p).unwrap(),
            f(&case["ari"]),
            &format!("{name} ARI"),
        );
        close(
            normalized_mutual_info(&t, &p).unwrap(),
            f(&case["nmi"]),
            &format!("{name} NMI"),
        );
        close(
            adjusted_mutual_info(&t, &p).unwrap(),
            f(&case["ami"]),
            &format!("{name} AMI"),
        );
    }
}

#[test]
fn silhouettes_match_sklearn_and_scib() {
    let r = &reference()["bmmc_embedding"];
    let b = bmmc();
    close(
        silhouette_score(b.x.view(), &b.cell_type).unwrap(),
        f(&r["silhouette_cell_type"]),
        "silhouette",
    );
    close(
        cell_type_asw(b.x.view(), &b.cell_type).unwrap(),
        f(&r["cell_type_asw"]),
        "cell-type ASW",
    );
    close(
        silhouette_score(b.x.view(), &b.batch).unwrap(),
        f(&r["silhouette_batch_raw"]),
        "silhouette over batches",
    );
    let s = silhouette_samples(b.x.view(), &b.cell_type).unwrap();
    for (i, want) in r["silhouette_samples_first10"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
    {
        close(s[i], f(want), "silhouette sample");
    }
    let asw = batch_asw(b.x.view(), &b.batch, &b.cell_type).unwrap();
    close(asw.value, f(&r["batch_asw"]), "batch ASW");
    assert_eq!(
        asw.n_skipped as u64,
        r["batch_asw_n_skipped"].as_u64().unwrap()
    );
}

#[test]
fn graph_connectivity_and_lisi_match_reference() {
    let r = &reference()["bmmc_embedding"];
    let b = bmmc();
    close(
        graph_connectivity_knn(b.x.view(), &b.cell_type, 14).unwrap(),
        f(&r["graph_connectivity_k14"]),
        "graph connectivity",
    );
    for perp in [30.0, 10.0] {
        let p = perp as u32;
        let il = lisi(b.x.view(), &b.batch, perp).unwrap();
        for (i, want) in r[format!("lisi_batch_p{p}_first10")]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            close(il[i], f(want), "LISI batch");
        }
        close(
            il.iter().sum::<f64>() / il.len() as f64,
            f(&r[format!("lisi_batch_p{p}_mean")]),
            "mean LISI batch",
        );
        let cl = lisi(b.x.view(), &b.cell_type, perp).unwrap();
        close(
            cl.iter().sum::<f64>() / cl.len() as f64,
            f(&r[format!("lisi_cell_type_p{p}_mean")]),
            "mean LISI cell type",
        );
        close(
            ilisi(b.x.view(), &b.batch, perp).unwrap(),
            f(&r[format!("ilisi_p{p}")]),
            "iLISI",
        );
        close(
            clisi(b.x.view(), &b.cell_type, perp).unwrap(),
            f(&r[format!("clisi_p{p}")]),
            "cLISI",
        );
    }
}

#[test]
fn knn_search_and_label_transfer_match_sklearn() {
    let r = &reference()["bmmc_embedding"];
    let b = bmmc();
    let nn = exact_knn_self(b.x.view(), 10).unwrap();
    let want_i = r["knn10_indices_first20"].as_array().unwrap();
    let want_d = r["knn10_distances_first20"].as_array().unwrap();
    for i in 0..20 {
        assert_eq!(
            nn.indices_of(i),
            usizes(&want_i[i]).as_slice(),
            "neighbours of {i}"
        );
        for (g, w) in nn.distances_of(i).iter().zip(want_d[i].as_array().unwrap()) {
            close(*g, f(w), "neighbour distance");
        }
    }
    let train: Vec<usize> = (0..b.batch.len()).filter(|&i| b.batch[i] == 0).collect();
    let test: Vec<usize> = (0..b.batch.len()).filter(|&i| b.batch[i] == 1).collect();
    let xtr = b.x.select(Axis(0), &train);
    let xte = b.x.select(Axis(0), &test);
    let ytr: Vec<usize> = train.iter().map(|&i| b.cell_type[i]).collect();
    let yte: Vec<usize> = test.iter().map(|&i| b.cell_type[i]).collect();
    for k in [1usize, 5, 15] {
        let t = knn_label_transfer(xtr.view(), &ytr, xte.view(), &yte, k).unwrap();
        assert_eq!(
            t.predicted,
            usizes(&r[format!("knn_k{k}_pred")]),
            "k={k} predictions"
        );
        close(
            t.accuracy,
            f(&r[format!("knn_k{k}_accuracy")]),
            "kNN accuracy",
        );
        close(
            t.macro_f1,
            f(&r[format!("knn_k{k}_macro_f1")]),
            "kNN macro F1",
        );
        close(
            knn_label_accuracy(xtr.view(), &ytr, xte.view(), &yte, k).unwrap(),
            f(&r[format!("knn_k{k}_accuracy")]),
            "kNN accuracy",
        );
    }
}

#[test]
fn kmeans_is_as_good_as_sklearn() {
    let r = &reference()["bmmc_embedding"];
    let b = bmmc();
    for k in [5usize, 21] {
        let ours = kmeans_with(b.x.view(), &KMeansParams::new(k, 0)).unwrap();
        let theirs = f(&r[format!("kmeans_k{k}_inertia")]);
        // k-means finds local optima: equal quality within 2% of sklearn's best of 10 restarts
        assert!(
            ours.inertia <= theirs * 1.02,
            "k={k}: inertia {} vs sklearn {theirs}",
            ours.inertia
        );
        assert_eq!(ours.labels.iter().max().unwrap() + 1, k);
    }
}

#[test]
fn modularity_matches_networkx_and_clustering_is_competitive() {
    let r = &reference()["bmmc_embedding"];
    let b = bmmc();
    let g = WeightedGraph::knn_union(&exact_knn_self(b.x.view(), 14).unwrap());
    close(
        modularity(&g, &b.cell_type, 1.0).unwrap(),
        f(&r["modularity_knn14_cell_type_res1"]),
        "modularity",
    );
    close(
        modularity(&g, &b.cell_type, 0.5).unwrap(),
        f(&r["modularity_knn14_cell_type_res0.5"]),
        "modularity at resolution 0.5",
    );
    let nx_louvain = f(&r["networkx_louvain_modularity_knn14"]);
    let params = crossomics_metrics::clustering::ClusterParams::default();
    let lv = louvain(&g, &params).unwrap();
    let ld = leiden(&g, &params).unwrap();
    assert!(
        lv.modularity > nx_louvain - 0.01,
        "louvain {} vs networkx {nx_louvain}",
        lv.modularity
    );
    assert!(
        ld.modularity > nx_louvain - 0.01,
        "leiden {} vs networkx {nx_louvain}",
        ld.modularity
    );
    // resolution search for the number of cell types, on scanpy-style connectivities
    let conn = WeightedGraph::umap_connectivities(&exact_knn_self(b.x.view(), 14).unwrap());
    let n_types = 21;
    let found = search_resolution(&conn, &ResolutionSearch::leiden(n_types, 0)).unwrap();
    assert_eq!(found.n_clusters, n_types);
    assert!(adjusted_rand_index(&b.cell_type, &found.labels).unwrap() > 0.1);
}

#[test]
fn alignment_matches_scipy_distance_matrix() {
    let r = &reference()["alignment"];
    let a = npy("bmmc_pca20.npy");
    let b = npy("bmmc_pca20_noisy.npy");
    close(
        foscttm(a.view(), b.view()).unwrap(),
        f(&r["foscttm"]),
        "FOSCTTM",
    );
    let (fa, fb) = foscttm_per_cell(a.view(), b.view()).unwrap();
    for i in 0..10 {
        close(fa[i], f(&r["foscttm_a_first10"][i]), "FOSCTTM a->b");
        close(fb[i], f(&r["foscttm_b_first10"][i]), "FOSCTTM b->a");
    }
    let n = a.nrows() as f64;
    close(
        foscttm(a.view(), b.view()).unwrap() * (n - 1.0) / n,
        f(&r["foscttm_scglue_mean_over_n"]),
        "scglue convention",
    );
    for k in [1usize, 5, 20] {
        close(
            top_k_matching_accuracy(a.view(), b.view(), k).unwrap(),
            f(&r[format!("top{k}_matching")]),
            "top-k matching",
        );
    }
}

/// A prediction score on `t` and `p` taken three ways against the reference's
/// `{key}_flat`, `{key}_per_cell` and `{key}_per_{feature}`.
fn check_prediction_score(
    score: fn(ArrayView2<f32>, ArrayView2<f32>, Along) -> Result<Score, MetricError>,
    (t, p): (&Array2<f32>, &Array2<f32>),
    r: &Value,
    key: &str,
    feature: &str,
) {
    close(
        score(t.view(), p.view(), Along::Flattened).unwrap().value,
        f(&r[format!("{key}_flat")]),
        &format!("{key} flat"),
    );
    close_score(
        score(t.view(), p.view(), Along::PerCell).unwrap(),
        &r[format!("{key}_per_cell")],
        &format!("{key} per cell"),
    );
    close_score(
        score(t.view(), p.view(), Along::PerFeature).unwrap(),
        &r[format!("{key}_per_{feature}")],
        &format!("{key} per {feature}"),
    );
}

#[test]
fn rna_prediction_matches_scipy() {
    let r = &reference()["rna_prediction"];
    let t = npy("rna_truth.npy");
    let p = npy("rna_pred.npy");
    check_prediction_score(pearson, (&t, &p), r, "pearson", "gene");
    check_prediction_score(spearman, (&t, &p), r, "spearman", "gene");
    close(rmse(t.view(), p.view()).unwrap(), f(&r["rmse"]), "RMSE");
    close(mae(t.view(), p.view()).unwrap(), f(&r["mae"]), "MAE");
}

#[test]
fn atac_prediction_matches_sklearn() {
    let r = &reference()["atac_prediction"];
    let t = npy("atac_truth.npy");
    let p = npy("atac_pred.npy");
    check_prediction_score(auroc, (&t, &p), r, "auroc", "peak");
    check_prediction_score(auprc, (&t, &p), r, "auprc", "peak");
}
