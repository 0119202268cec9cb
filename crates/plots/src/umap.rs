//! UMAP layout (McInnes, Healy & Melville 2018), implemented from the paper and the
//! reference implementation's defaults.
//!
//! 1. the fuzzy kNN graph of `scanpy.pp.neighbors` (`WeightedGraph::umap_connectivities`,
//!    k = 15);
//! 2. initial coordinates: the first two principal components, scaled to a spread of 10
//!    (umap-learn uses a spectral layout; PCA is the documented alternative `init="pca"`);
//! 3. stochastic gradient descent on the fuzzy-set cross-entropy with the curve
//!    `1 / (1 + a d^(2b))`, a = 1.577, b = 0.8951 (min_dist 0.1, spread 1): each edge is
//!    sampled in proportion to its weight, pulled together, and 5 random points are pushed
//!    away; gradients clipped at 4, learning rate decaying linearly from 1 to 0.

use crossomics_metrics::community::WeightedGraph;
use crossomics_metrics::knn::{KnnMethod, knn_graph};
use ndarray::{Array2, ArrayView2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::PlotError;

const A: f64 = 1.577;
const B: f64 = 0.8951;
const NEGATIVE_SAMPLES: usize = 5;

/// Settings of the layout.
#[derive(Debug, Clone)]
pub struct UmapParams {
    pub n_neighbors: usize,
    /// 0 chooses as umap-learn: 500 epochs below 10,000 cells, 200 above.
    pub n_epochs: usize,
    pub seed: u64,
}

impl Default for UmapParams {
    fn default() -> Self {
        Self {
            n_neighbors: 15,
            n_epochs: 0,
            seed: 0,
        }
    }
}

/// 2-D coordinates of the rows of `x`.
pub fn layout(x: ArrayView2<f32>, params: &UmapParams) -> Result<Array2<f64>, PlotError> {
    let n = x.nrows();
    if n < 3 {
        return Err(PlotError::Input(format!(
            "{n} cells; a layout needs at least 3"
        )));
    }
    let k = params.n_neighbors.min(n - 1);
    let nn = knn_graph(x, k, &KnnMethod::default())?;
    let graph = WeightedGraph::umap_connectivities(&nn);
    let mut edges: Vec<(usize, usize, f64)> = Vec::new();
    for i in 0..n {
        for (j, w) in graph.neighbors(i) {
            if w > 0.0 {
                edges.push((i, j, w));
            }
        }
    }
    let mut y = pca_init(x);
    let n_epochs = match params.n_epochs {
        0 if n <= 10_000 => 500,
        0 => 200,
        e => e,
    };
    optimize(&mut y, &edges, n_epochs, params.seed);
    Ok(y)
}

fn pca_init(x: ArrayView2<f32>) -> Array2<f64> {
    let xf = x.mapv(f64::from);
    let mean = xf.mean_axis(Axis(0)).expect("n >= 3");
    let c = &xf - &mean;
    // the top two eigenvectors of the covariance by power iteration with deflation
    let cov = c.t().dot(&c);
    let d = cov.nrows();
    let mut vecs: Vec<ndarray::Array1<f64>> = Vec::new();
    for k in 0..2.min(d) {
        let mut v = ndarray::Array1::from_shape_fn(d, |i| if (i + k) % 2 == 0 { 1.0 } else { 0.5 });
        for _ in 0..200 {
            let mut w = cov.dot(&v);
            for u in &vecs {
                w = &w - &(u * u.dot(&w));
            }
            let norm = w.dot(&w).sqrt();
            if norm < 1e-12 {
                break;
            }
            v = w / norm;
        }
        vecs.push(v);
    }
    let mut y = Array2::<f64>::zeros((x.nrows(), 2));
    for (k, v) in vecs.iter().enumerate() {
        y.column_mut(k).assign(&c.dot(v));
    }
    let max = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    if max > 0.0 {
        y *= 10.0 / max;
    }
    y
}

fn clip(g: f64) -> f64 {
    g.clamp(-4.0, 4.0)
}

fn optimize(y: &mut Array2<f64>, edges: &[(usize, usize, f64)], n_epochs: usize, seed: u64) {
    let n = y.nrows();
    let max_w = edges.iter().map(|e| e.2).fold(0.0, f64::max);
    let period: Vec<f64> = edges.iter().map(|e| max_w / e.2).collect();
    let mut next = period.clone();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for epoch in 0..n_epochs {
        let alpha = 1.0 - epoch as f64 / n_epochs as f64;
        for (e, &(i, j, _)) in edges.iter().enumerate() {
            if next[e] > (epoch + 1) as f64 {
                continue;
            }
            next[e] += period[e];
            let (dx, dy) = (y[[i, 0]] - y[[j, 0]], y[[i, 1]] - y[[j, 1]]);
            let d2 = dx * dx + dy * dy;
            if d2 > 0.0 {
                let coeff = -2.0 * A * B * d2.powf(B - 1.0) / (1.0 + A * d2.powf(B));
                let (gx, gy) = (clip(coeff * dx) * alpha, clip(coeff * dy) * alpha);
                y[[i, 0]] += gx;
                y[[i, 1]] += gy;
                y[[j, 0]] -= gx;
                y[[j, 1]] -= gy;
            }
            for _ in 0..NEGATIVE_SAMPLES {
                let m = rng.gen_range(0..n);
                if m == i {
                    continue;
                }
                let (dx, dy) = (y[[i, 0]] - y[[m, 0]], y[[i, 1]] - y[[m, 1]]);
                let d2 = dx * dx + dy * dy;
                let coeff = 2.0 * B / ((0.001 + d2) * (1.0 + A * d2.powf(B)));
                y[[i, 0]] += clip(coeff * dx) * alpha;
                y[[i, 1]] += clip(coeff * dy) * alpha;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_distr::{Distribution, StandardNormal};

    fn normal<R: Rng>(rng: &mut R) -> f64 {
        StandardNormal.sample(rng)
    }

    /// Three well-separated Gaussian blobs in 10 dimensions.
    fn blobs(n_per: usize) -> (Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let mut x = Array2::<f32>::zeros((3 * n_per, 10));
        let mut labels = Vec::new();
        for c in 0..3 {
            for i in 0..n_per {
                let row = c * n_per + i;
                for d in 0..10 {
                    let centre = if d == c { 8.0 } else { 0.0 };
                    x[[row, d]] = (centre + normal(&mut rng)) as f32;
                }
                labels.push(c);
            }
        }
        (x, labels)
    }

    #[test]
    fn separated_clusters_stay_separated_and_runs_are_seeded() {
        let (x, labels) = blobs(40);
        let params = UmapParams {
            n_epochs: 200,
            ..Default::default()
        };
        let y = layout(x.view(), &params).unwrap();
        assert!(y.iter().all(|v| v.is_finite()));
        // nearest 2-D neighbour of every point is in its own cluster
        let mut same = 0;
        for i in 0..y.nrows() {
            let j = (0..y.nrows())
                .filter(|&j| j != i)
                .min_by(|&a, &b| {
                    let da = (y[[i, 0]] - y[[a, 0]]).powi(2) + (y[[i, 1]] - y[[a, 1]]).powi(2);
                    let db = (y[[i, 0]] - y[[b, 0]]).powi(2) + (y[[i, 1]] - y[[b, 1]]).powi(2);
                    da.total_cmp(&db)
                })
                .unwrap();
            same += usize::from(labels[i] == labels[j]);
        }
        assert_eq!(
            same,
            y.nrows(),
            "every 2-D nearest neighbour in the same blob"
        );
        // cluster centres are further apart than cluster spreads
        let centre = |c: usize| {
            let rows: Vec<usize> = (0..y.nrows()).filter(|&i| labels[i] == c).collect();
            let m = y.select(Axis(0), &rows).mean_axis(Axis(0)).unwrap();
            let spread = rows
                .iter()
                .map(|&i| ((y[[i, 0]] - m[0]).powi(2) + (y[[i, 1]] - m[1]).powi(2)).sqrt())
                .sum::<f64>()
                / rows.len() as f64;
            (m, spread)
        };
        let (m0, s0) = centre(0);
        let (m1, s1) = centre(1);
        let gap = ((m0[0] - m1[0]).powi(2) + (m0[1] - m1[1]).powi(2)).sqrt();
        assert!(gap > 2.0 * (s0 + s1), "gap {gap} vs spreads {s0} {s1}");
        assert_eq!(layout(x.view(), &params).unwrap(), y);
    }

    #[test]
    fn too_few_cells_is_an_error() {
        let x = Array2::<f32>::zeros((2, 3));
        assert!(layout(x.view(), &UmapParams::default()).is_err());
    }
}
