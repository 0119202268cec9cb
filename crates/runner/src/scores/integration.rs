//! The integration metrics of an embedding, in the order of the table's columns. With
//! labels: kNN label transfer train -> test, k-means (k = number of cell types) and
//! scib's optimal-resolution Louvain ARI/NMI, cell-type silhouette. With a batch column of
//! at least two batches: iLISI (and batch ASW within cell types when there are labels).
//! Always: the number of Leiden clusters of the embedding and their modularity.

use anyhow::Result;
use crossomics_data::split::Split;
use crossomics_metrics::{clustering, community, integration, knn, silhouette};
use ndarray::{Array2, ArrayView2};

use crate::pipeline::Labels;

/// What an integration metric sees of one embedding.
#[derive(Debug, Clone, Copy)]
pub struct EmbeddingView<'a> {
    /// every prepared cell's embedding (rows = cells)
    pub embedding: ArrayView2<'a, f32>,
    /// the embedding's Leiden clusters (`crate::integration::leiden_clusters`)
    pub clusters: &'a community::CommunityResult,
    pub labels: Option<&'a Labels>,
    pub batches: Option<&'a Labels>,
    pub split: &'a Split,
    /// neighbours of the kNN label transfer (`evaluation.knn_k`)
    pub knn_k: usize,
    pub seed: u64,
}

/// One or more named values of an embedding; none when what it needs is absent (e.g.
/// labels).
pub trait EmbeddingMetric: Sync {
    fn score(&self, view: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>>;
}

/// The integration task's metric set.
pub const METRICS: &[&dyn EmbeddingMetric] = &[
    &KnnTransfer,
    &KmeansAgreement,
    &LouvainAgreement,
    &CellTypeAsw,
    &BatchMixing,
    &LeidenClusters,
];

/// Every metric of `metrics` on `view`, in order.
pub fn score_all(
    metrics: &[&dyn EmbeddingMetric],
    view: &EmbeddingView<'_>,
) -> Result<Vec<(String, f64)>> {
    let mut out = Vec::new();
    for m in metrics {
        out.extend(m.score(view)?);
    }
    Ok(out)
}

fn rows(emb: ArrayView2<f32>, cells: &[usize], codes: &[usize]) -> (Array2<f32>, Vec<usize>) {
    (
        emb.select(ndarray::Axis(0), cells),
        cells.iter().map(|&c| codes[c]).collect(),
    )
}

/// Accuracy of the labels of the test cells predicted by their `knn_k` nearest training
/// cells (`knn_accuracy`).
#[derive(Debug)]
pub struct KnnTransfer;

impl EmbeddingMetric for KnnTransfer {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        let Some(labels) = v.labels else {
            return Ok(Vec::new());
        };
        let (train_x, train_y) = rows(v.embedding, &v.split.train, &labels.codes);
        let (test_x, test_y) = rows(v.embedding, &v.split.test, &labels.codes);
        let acc = if test_y.is_empty() {
            f64::NAN
        } else {
            knn::knn_label_accuracy(train_x.view(), &train_y, test_x.view(), &test_y, v.knn_k)?
        };
        Ok(vec![("knn_accuracy".into(), acc)])
    }
}

/// ARI and NMI of k-means with k = the number of labels (`kmeans_ari`, `kmeans_nmi`).
#[derive(Debug)]
pub struct KmeansAgreement;

impl EmbeddingMetric for KmeansAgreement {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        let Some(labels) = v.labels else {
            return Ok(Vec::new());
        };
        let kmeans = clustering::kmeans(v.embedding, labels.names.len(), v.seed)?;
        Ok(vec![
            (
                "kmeans_ari".into(),
                clustering::adjusted_rand_index(&labels.codes, &kmeans)?,
            ),
            (
                "kmeans_nmi".into(),
                clustering::normalized_mutual_info(&labels.codes, &kmeans)?,
            ),
        ])
    }
}

/// scib's `opt_louvain`: Louvain at the resolution (0.1 to 2.0) that best matches the
/// labels, on scanpy's default graph (15 neighbours counting the cell itself, UMAP
/// connectivities), which the NeurIPS 2021 joint-embedding NMI and ARI use
/// (`louvain_ari`, `louvain_nmi`).
#[derive(Debug)]
pub struct LouvainAgreement;

impl EmbeddingMetric for LouvainAgreement {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        let Some(labels) = v.labels else {
            return Ok(Vec::new());
        };
        let k = 14.min(v.embedding.nrows().saturating_sub(1)).max(1);
        let nn = knn::knn_graph(v.embedding, k, &knn::KnnMethod::default())?;
        let graph = community::WeightedGraph::umap_connectivities(&nn);
        let best = community::cluster_optimal_resolution(
            &graph,
            &labels.codes,
            community::GraphAlgorithm::Louvain,
            &community::scib_resolutions(),
            v.seed,
        )?;
        Ok(vec![
            ("louvain_ari".into(), best.ari),
            ("louvain_nmi".into(), best.nmi),
        ])
    }
}

/// Silhouette of the labels, rescaled to 0..1 (`cell_type_asw`).
#[derive(Debug)]
pub struct CellTypeAsw;

impl EmbeddingMetric for CellTypeAsw {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        let Some(labels) = v.labels else {
            return Ok(Vec::new());
        };
        Ok(vec![(
            "cell_type_asw".into(),
            silhouette::cell_type_asw(v.embedding, &labels.codes)?,
        )])
    }
}

/// iLISI over the batches (scib: perplexity 30 on 90 neighbours, fewer on small data),
/// and with labels the batch ASW within cell types (`ilisi`, `batch_asw`).
#[derive(Debug)]
pub struct BatchMixing;

impl EmbeddingMetric for BatchMixing {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        let Some(batches) = v.batches.filter(|b| b.names.len() > 1) else {
            return Ok(Vec::new());
        };
        let perplexity = 30f64.min((v.embedding.nrows().saturating_sub(1) / 3).max(1) as f64);
        let mut out = vec![(
            "ilisi".into(),
            integration::ilisi(v.embedding, &batches.codes, perplexity)?,
        )];
        if let Some(labels) = v.labels {
            let asw = silhouette::batch_asw(v.embedding, &batches.codes, &labels.codes)
                .map_or(f64::NAN, |a| a.value);
            out.push(("batch_asw".into(), asw));
        }
        Ok(out)
    }
}

/// The number of Leiden clusters of the embedding and their modularity: label-free
/// (`leiden_clusters`, `leiden_modularity`).
#[derive(Debug)]
pub struct LeidenClusters;

impl EmbeddingMetric for LeidenClusters {
    fn score(&self, v: &EmbeddingView<'_>) -> Result<Vec<(String, f64)>> {
        Ok(vec![
            ("leiden_clusters".into(), v.clusters.n_clusters as f64),
            ("leiden_modularity".into(), v.clusters.modularity),
        ])
    }
}
