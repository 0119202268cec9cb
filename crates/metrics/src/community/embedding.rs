//! scanpy's default Leiden clustering of an embedding (no labels needed).

use super::{ClusterParams, CommunityResult, WeightedGraph, leiden};
use crate::MetricError;

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
