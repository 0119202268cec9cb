//! Nearest neighbours (exact, tiled; approximate HNSW above a size) and kNN label transfer.
//!
//! Distances are Euclidean, accumulated in f64 from the f32 inputs. Exact search visits
//! every (query, point) pair once and keeps only an `O(n)` buffer per query: memory is
//! `O(n * k)` for the result, never `O(n^2)`. Distance ties are broken by the smaller
//! point index, so results are deterministic.

use ndarray::{Array2, ArrayView2};

use crate::MetricError;
use crate::util::{check_len, row, sq_dist, to_f64, to_f64_pair};

/// k nearest neighbours of each query, row-major `n_queries x k`, nearest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Neighbors {
    /// Neighbours per query.
    pub k: usize,
    /// Indices into the searched points, `n_queries * k`.
    pub indices: Vec<usize>,
    /// Euclidean distances matching `indices`.
    pub distances: Vec<f64>,
}

impl Neighbors {
    /// Number of queries.
    pub fn n_queries(&self) -> usize {
        self.indices.len().checked_div(self.k).unwrap_or(0)
    }

    /// Neighbour indices of query `i`.
    pub fn indices_of(&self, i: usize) -> &[usize] {
        &self.indices[i * self.k..(i + 1) * self.k]
    }

    /// Neighbour distances of query `i`.
    pub fn distances_of(&self, i: usize) -> &[f64] {
        &self.distances[i * self.k..(i + 1) * self.k]
    }

    /// Fraction of `exact`'s neighbour sets found by `self` (same queries and `k`):
    /// `sum_i |N_self(i) ∩ N_exact(i)| / (n k)`.
    pub fn recall_against(&self, exact: &Neighbors) -> Result<f64, MetricError> {
        check_len("neighbors", exact.indices.len(), self.indices.len())?;
        check_len("k", exact.k, self.k)?;
        if self.indices.is_empty() {
            return Err(MetricError::Empty { what: "neighbors" });
        }
        let mut hit = 0usize;
        for i in 0..self.n_queries() {
            let mut truth = exact.indices_of(i).to_vec();
            truth.sort_unstable();
            hit += self
                .indices_of(i)
                .iter()
                .filter(|j| truth.binary_search(j).is_ok())
                .count();
        }
        Ok(hit as f64 / self.indices.len() as f64)
    }
}

/// Exact k nearest `data` rows of every `queries` row.
///
/// Errors: `k == 0` or `k > n_data`, column mismatch, empty or non-finite input.
pub fn exact_knn(
    data: ArrayView2<f32>,
    queries: ArrayView2<f32>,
    k: usize,
) -> Result<Neighbors, MetricError> {
    let (data, queries) = to_f64_pair(("data", data), ("queries", queries))?;
    check_k(k, data.nrows())?;
    Ok(knn_f64(&data, &queries, k, false))
}

/// Exact k nearest other rows of every row of `x` (a cell is never its own neighbour).
///
/// Errors: `k == 0` or `k >= n`, empty or non-finite input.
pub fn exact_knn_self(x: ArrayView2<f32>, k: usize) -> Result<Neighbors, MetricError> {
    let x = to_f64("x", x)?;
    check_k(k, x.nrows().saturating_sub(1))?;
    Ok(knn_f64(&x, &x, k, true))
}

/// Settings of the approximate (HNSW) search.
#[derive(Debug, Clone, PartialEq)]
pub struct HnswParams {
    /// Candidate list size while building (`efConstruction`).
    pub ef_construction: usize,
    /// Candidate list size while searching (`ef`); raised to `k + 1` when smaller.
    pub ef_search: usize,
    /// Seed of the layer assignment.
    pub seed: u64,
}

impl Default for HnswParams {
    fn default() -> Self {
        Self {
            ef_construction: 100,
            ef_search: 100,
            seed: 0,
        }
    }
}

/// How neighbours are found.
#[derive(Debug, Clone, PartialEq)]
pub enum KnnMethod {
    /// Exact search, `O(n^2 d)` time, `O(n k)` memory.
    Exact,
    /// Approximate search with an HNSW index (Malkov & Yashunin 2018; crate `instant-distance`).
    Hnsw(HnswParams),
    /// Exact up to `max_exact` cells (default 200,000), HNSW above.
    Auto {
        /// Largest number of cells searched exactly.
        max_exact: usize,
        /// Settings used above that size.
        hnsw: HnswParams,
    },
}

impl Default for KnnMethod {
    /// Exact up to 200,000 cells: the tiled exact search is faster than the HNSW index
    /// (crate `instant-distance`, single thread, 50 dimensions) below that size
    /// (100,000 cells: 34 s against about 300 s; docs/performance.md).
    fn default() -> Self {
        Self::Auto {
            max_exact: 200_000,
            hnsw: HnswParams::default(),
        }
    }
}

/// The k nearest other cells of every cell of `x` with the chosen method.
///
/// HNSW candidates are re-scored with exact f64 distances and sorted (ties by index), so
/// distances are exact and only membership is approximate. The index is built in
/// parallel (rayon), so the approximate result may vary slightly between runs.
/// Errors: `k == 0` or `k >= n`, empty or non-finite input.
pub fn knn_graph(
    x: ArrayView2<f32>,
    k: usize,
    method: &KnnMethod,
) -> Result<Neighbors, MetricError> {
    let hnsw = match method {
        KnnMethod::Exact => None,
        KnnMethod::Hnsw(p) => Some(p),
        KnnMethod::Auto { max_exact, hnsw } => (x.nrows() > *max_exact).then_some(hnsw),
    };
    match hnsw {
        None => exact_knn_self(x, k),
        Some(p) => approximate_knn_self(x, k, p),
    }
}

#[derive(Clone)]
struct HnswPoint(Vec<f32>);

impl instant_distance::Point for HnswPoint {
    fn distance(&self, other: &Self) -> f32 {
        // Eight independent accumulators so that the compiler vectorises the loop (a single
        // f32 sum cannot be reassociated): the index build is dominated by this function.
        let (a, b) = (&self.0, &other.0);
        let split = a.len() / 8 * 8;
        let mut acc = [0.0f32; 8];
        for (x, y) in a[..split].chunks_exact(8).zip(b[..split].chunks_exact(8)) {
            for l in 0..8 {
                let d = x[l] - y[l];
                acc[l] += d * d;
            }
        }
        let mut s =
            ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        for (x, y) in a[split..].iter().zip(&b[split..]) {
            s += (x - y) * (x - y);
        }
        s.sqrt()
    }
}

/// Approximate k nearest other cells with an HNSW index (see [`knn_graph`]).
pub fn approximate_knn_self(
    x: ArrayView2<f32>,
    k: usize,
    params: &HnswParams,
) -> Result<Neighbors, MetricError> {
    let xf = to_f64("x", x)?;
    let n = xf.nrows();
    check_k(k, n.saturating_sub(1))?;
    if params.ef_construction == 0 {
        return Err(MetricError::invalid(
            "ef_construction",
            "must be at least 1",
        ));
    }
    let points: Vec<HnswPoint> = x
        .rows()
        .into_iter()
        .map(|r| HnswPoint(r.to_vec()))
        .collect();
    let map = instant_distance::Builder::default()
        .ef_construction(params.ef_construction)
        .ef_search(params.ef_search.max(k + 1))
        .seed(params.seed)
        .build(points.clone(), (0..n).collect::<Vec<usize>>());
    let mut search = instant_distance::Search::default();
    let mut indices = Vec::with_capacity(n * k);
    let mut distances = Vec::with_capacity(n * k);
    let mut cand: Vec<(f64, usize)> = Vec::new();
    for (i, p) in points.iter().enumerate() {
        cand.clear();
        cand.extend(
            map.search(p, &mut search)
                .map(|item| *item.value)
                .filter(|&j| j != i)
                .map(|j| (sq_dist(row(&xf, i), row(&xf, j)), j)),
        );
        cand.sort_unstable_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        cand.dedup_by_key(|c| c.1);
        if cand.len() < k {
            // the index returned too few candidates (tiny or degenerate data): fall back
            let exact = knn_f64(
                &xf,
                &xf.slice(ndarray::s![i..i + 1, ..]).to_owned(),
                k + 1,
                false,
            );
            cand.clear();
            cand.extend(
                exact
                    .indices
                    .iter()
                    .zip(&exact.distances)
                    .filter(|(j, _)| **j != i)
                    .map(|(&j, &d)| (d * d, j)),
            );
        }
        for &(d, j) in cand.iter().take(k) {
            indices.push(j);
            distances.push(d.sqrt());
        }
    }
    Ok(Neighbors {
        k,
        indices,
        distances,
    })
}

pub(crate) fn check_k(k: usize, max: usize) -> Result<(), MetricError> {
    if k == 0 || k > max {
        return Err(MetricError::invalid(
            "k",
            format!("must be in 1..={max}, got {k}"),
        ));
    }
    Ok(())
}

/// Core exact search on validated f64 matrices; `exclude_self` skips `j == i`.
///
/// Distances come in tiles from one matrix product each (`util::sq_dist_tile`); each query
/// keeps its `k + 16` best candidates by those values, which are then re-scored with the
/// direct f64 distance and sorted by (distance, index). A query whose candidate list cannot
/// be proven to contain the exact answer (the product's rounding error bound exceeds the
/// gap to the last kept candidate: heavy ties) is searched again directly, so the result
/// is always that of the direct definition. `O(n_data n_queries d)` time, `O(n_queries k)`
/// memory.
pub(crate) fn knn_f64(
    data: &Array2<f64>,
    queries: &Array2<f64>,
    k: usize,
    exclude_self: bool,
) -> Neighbors {
    use crate::util::{TILE, gram_error_scale, sq_dist_tile, sq_norms};
    let n = data.nrows();
    let nq = queries.nrows();
    let avail = if exclude_self { n - 1 } else { n };
    let c = (k + 16).min(avail);
    let d_norms = sq_norms(data);
    let q_norms = sq_norms(queries);
    let max_dn = d_norms.iter().copied().fold(0.0f64, f64::max);
    let err_scale = gram_error_scale(data.ncols());
    let near_zero = 1e-6_f64.max(1e3 * err_scale);
    let mut indices = Vec::with_capacity(nq * k);
    let mut distances = Vec::with_capacity(nq * k);
    let mut buf = Array2::<f64>::zeros((TILE, TILE));
    // per query of the block: up to c (value, index) pairs, sorted ascending
    let mut cands: Vec<Vec<(f64, usize)>> = (0..TILE).map(|_| Vec::with_capacity(c + 1)).collect();
    let mut exact: Vec<(f64, usize)> = Vec::with_capacity(c);
    let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    for ib in (0..nq).step_by(TILE) {
        let wi = TILE.min(nq - ib);
        cands.iter_mut().for_each(Vec::clear);
        for jb in (0..n).step_by(TILE) {
            let wj = TILE.min(n - jb);
            let mut tile = buf.slice_mut(ndarray::s![..wi, ..wj]);
            sq_dist_tile(
                queries,
                &q_norms,
                ib..ib + wi,
                data,
                &d_norms,
                jb..jb + wj,
                near_zero,
                tile.view_mut(),
            );
            for (ii, list) in cands.iter_mut().enumerate().take(wi) {
                let i = ib + ii;
                for (jj, &g) in tile.row(ii).iter().enumerate() {
                    let j = jb + jj;
                    if list.len() == c && g >= list[c - 1].0 || exclude_self && j == i {
                        continue;
                    }
                    let pos = list.partition_point(|e| e.0 <= g);
                    list.insert(pos, (g, j));
                    list.truncate(c);
                }
            }
        }
        for (ii, list) in cands.iter().enumerate().take(wi) {
            let i = ib + ii;
            let q = row(queries, i);
            exact.clear();
            exact.extend(list.iter().map(|&(_, j)| (sq_dist(q, row(data, j)), j)));
            exact.sort_unstable_by(cmp);
            // every point left out has a product value >= the last kept one, hence a true
            // squared distance >= that minus the error bound: it cannot enter the top k if
            // that is still above the k-th exact distance
            let proven = list.len() == avail
                || list[c - 1].0 - err_scale * (q_norms[i] + max_dn) > exact[k - 1].0;
            if proven {
                for &(d2, j) in &exact[..k] {
                    indices.push(j);
                    distances.push(d2.sqrt());
                }
            } else {
                knn_row_direct(data, q, i, k, exclude_self, &mut indices, &mut distances);
            }
        }
    }
    Neighbors {
        k,
        indices,
        distances,
    }
}

/// Direct exact search of one query (fallback of [`knn_f64`]).
fn knn_row_direct(
    data: &Array2<f64>,
    q: &[f64],
    i: usize,
    k: usize,
    exclude_self: bool,
    indices: &mut Vec<usize>,
    distances: &mut Vec<f64>,
) {
    let mut buf: Vec<(f64, usize)> = (0..data.nrows())
        .filter(|&j| !(exclude_self && j == i))
        .map(|j| (sq_dist(q, row(data, j)), j))
        .collect();
    let cmp = |a: &(f64, usize), b: &(f64, usize)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    if k < buf.len() {
        buf.select_nth_unstable_by(k, cmp);
    }
    let top = &mut buf[..k];
    top.sort_unstable_by(cmp);
    for &(d, j) in top.iter() {
        indices.push(j);
        distances.push(d.sqrt());
    }
}

/// Majority vote among neighbour labels; ties go to the smallest label
/// (as `sklearn.neighbors.KNeighborsClassifier(weights="uniform")`, whose `mode` picks
/// the smallest of the tied classes).
pub(crate) fn majority(
    labels: impl Iterator<Item = usize>,
    scratch: &mut Vec<(usize, usize)>,
) -> usize {
    scratch.clear();
    for l in labels {
        match scratch.iter_mut().find(|(lab, _)| *lab == l) {
            Some((_, c)) => *c += 1,
            None => scratch.push((l, 1)),
        }
    }
    scratch
        .iter()
        .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
        .map(|&(l, _)| l)
        .expect("k >= 1")
}

/// Labels predicted for `test` rows by a k-nearest-neighbour vote among `train` rows
/// (Euclidean, uniform weights, ties to the smallest label).
pub fn knn_predict(
    train: ArrayView2<f32>,
    train_labels: &[usize],
    test: ArrayView2<f32>,
    k: usize,
) -> Result<Vec<usize>, MetricError> {
    check_len("train_labels", train.nrows(), train_labels.len())?;
    let nn = exact_knn(train, test, k)?;
    let mut scratch = Vec::new();
    Ok((0..nn.n_queries())
        .map(|i| {
            majority(
                nn.indices_of(i).iter().map(|&j| train_labels[j]),
                &mut scratch,
            )
        })
        .collect())
}

/// Result of [`knn_label_transfer`].
#[derive(Debug, Clone, PartialEq)]
pub struct LabelTransfer {
    /// Predicted label of each test cell.
    pub predicted: Vec<usize>,
    /// Fraction of test cells whose predicted label equals the true one.
    pub accuracy: f64,
    /// Unweighted mean over labels of `F1 = 2 TP / (2 TP + FP + FN)`, labels being the
    /// union of true and predicted test labels, as `sklearn.metrics.f1_score(average="macro")`.
    pub macro_f1: f64,
}

/// kNN label transfer from train cells to test cells: accuracy and macro F1 of
/// [`knn_predict`], as `KNeighborsClassifier(n_neighbors=k).fit(train).predict(test)`
/// scored with `accuracy_score` and `f1_score(average="macro")`.
pub fn knn_label_transfer(
    train: ArrayView2<f32>,
    train_labels: &[usize],
    test: ArrayView2<f32>,
    test_labels: &[usize],
    k: usize,
) -> Result<LabelTransfer, MetricError> {
    check_len("test_labels", test.nrows(), test_labels.len())?;
    let predicted = knn_predict(train, train_labels, test, k)?;
    let accuracy = accuracy(test_labels, &predicted)?;
    let macro_f1 = macro_f1(test_labels, &predicted)?;
    Ok(LabelTransfer {
        predicted,
        accuracy,
        macro_f1,
    })
}

/// Accuracy of kNN label transfer (train -> test), see [`knn_label_transfer`].
///
/// Errors: `k == 0` or `k > n_train`, length or column mismatches, empty or non-finite input.
pub fn knn_label_accuracy(
    train: ArrayView2<f32>,
    train_labels: &[usize],
    test: ArrayView2<f32>,
    test_labels: &[usize],
    k: usize,
) -> Result<f64, MetricError> {
    Ok(knn_label_transfer(train, train_labels, test, test_labels, k)?.accuracy)
}

/// Fraction of equal entries, as `sklearn.metrics.accuracy_score`.
pub fn accuracy(labels_true: &[usize], labels_pred: &[usize]) -> Result<f64, MetricError> {
    check_len("labels_pred", labels_true.len(), labels_pred.len())?;
    if labels_true.is_empty() {
        return Err(MetricError::Empty { what: "labels" });
    }
    let hit = labels_true
        .iter()
        .zip(labels_pred)
        .filter(|(a, b)| a == b)
        .count();
    Ok(hit as f64 / labels_true.len() as f64)
}

/// Macro-averaged F1 over the union of true and predicted labels, as
/// `sklearn.metrics.f1_score(average="macro")` (a label never predicted scores 0).
pub fn macro_f1(labels_true: &[usize], labels_pred: &[usize]) -> Result<f64, MetricError> {
    check_len("labels_pred", labels_true.len(), labels_pred.len())?;
    if labels_true.is_empty() {
        return Err(MetricError::Empty { what: "labels" });
    }
    let mut all: Vec<usize> = labels_true.iter().chain(labels_pred).copied().collect();
    all.sort_unstable();
    all.dedup();
    let mut tp = vec![0usize; all.len()];
    let mut fp = vec![0usize; all.len()];
    let mut fneg = vec![0usize; all.len()];
    for (t, p) in labels_true.iter().zip(labels_pred) {
        let ti = all.binary_search(t).expect("present");
        let pi = all.binary_search(p).expect("present");
        if ti == pi {
            tp[ti] += 1;
        } else {
            fp[pi] += 1;
            fneg[ti] += 1;
        }
    }
    let sum: f64 = (0..all.len())
        .map(|c| {
            let den = 2 * tp[c] + fp[c] + fneg[c];
            if den == 0 {
                0.0
            } else {
                2.0 * tp[c] as f64 / den as f64
            }
        })
        .sum();
    Ok(sum / all.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn exact_knn_orders_and_breaks_ties_by_index() {
        let x = array![[0.0f32], [1.0], [-1.0], [3.0]];
        let nn = exact_knn_self(x.view(), 2).unwrap();
        assert_eq!(nn.indices_of(0), &[1, 2]); // tie at distance 1 -> smaller index first
        assert_eq!(nn.distances_of(0), &[1.0, 1.0]);
        assert_eq!(nn.indices_of(3), &[1, 0]);
        let q = array![[2.9f32]];
        let nn = exact_knn(x.view(), q.view(), 1).unwrap();
        assert_eq!(nn.indices, vec![3]);
        assert_eq!(nn.recall_against(&nn).unwrap(), 1.0);
    }

    #[test]
    fn knn_errors() {
        let x = array![[0.0f32], [1.0]];
        assert!(matches!(
            exact_knn_self(x.view(), 2),
            Err(MetricError::InvalidParameter { .. })
        ));
        assert!(matches!(
            exact_knn_self(x.view(), 0),
            Err(MetricError::InvalidParameter { .. })
        ));
        let q = array![[0.0f32, 1.0]];
        assert!(matches!(
            exact_knn(x.view(), q.view(), 1),
            Err(MetricError::DimensionMismatch { .. })
        ));
        let one = array![[0.0f32]];
        assert!(exact_knn_self(one.view(), 1).is_err());
    }

    #[test]
    fn label_transfer_tie_goes_to_smallest_label() {
        let train = array![[0.0f32], [1.0], [10.0]];
        let test = array![[0.5f32], [9.0]];
        // k = 2: first test cell sees labels {7, 3} -> tie -> 3
        let p = knn_predict(train.view(), &[7, 3, 5], test.view(), 2).unwrap();
        assert_eq!(p, vec![3, 3]);
        let t = knn_label_transfer(train.view(), &[7, 3, 5], test.view(), &[3, 5], 1).unwrap();
        assert_eq!(t.predicted, vec![7, 5]);
        assert_eq!(t.accuracy, 0.5);
        // labels {3,5,7}: F1(3)=0, F1(5)=1, F1(7)=0
        assert!((t.macro_f1 - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(
            knn_label_accuracy(train.view(), &[7, 3, 5], test.view(), &[3, 5], 1).unwrap(),
            0.5
        );
        assert!(matches!(
            knn_label_accuracy(train.view(), &[7, 3], test.view(), &[3, 5], 1),
            Err(MetricError::LengthMismatch {
                what: "train_labels",
                ..
            })
        ));
        assert!(knn_label_accuracy(train.view(), &[7, 3, 5], test.view(), &[3, 5], 4).is_err());
    }

    #[test]
    fn hnsw_recall_is_high() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let x = ndarray::Array2::from_shape_fn((1500, 16), |_| rng.r#gen::<f32>());
        let exact = knn_graph(x.view(), 10, &KnnMethod::Exact).unwrap();
        let approx = knn_graph(x.view(), 10, &KnnMethod::Hnsw(HnswParams::default())).unwrap();
        let recall = approx.recall_against(&exact).unwrap();
        assert!(recall > 0.95, "recall {recall}");
        // distances of approximate neighbours are exact and sorted
        for i in 0..approx.n_queries() {
            let d = approx.distances_of(i);
            assert!(d.windows(2).all(|w| w[0] <= w[1]));
            assert!(!approx.indices_of(i).contains(&i));
        }
        let auto = KnnMethod::Auto {
            max_exact: 2000,
            hnsw: HnswParams::default(),
        };
        assert_eq!(knn_graph(x.view(), 10, &auto).unwrap(), exact);
    }

    #[test]
    fn hnsw_on_duplicates_does_not_panic() {
        let x = ndarray::Array2::<f32>::ones((50, 3));
        let nn = approximate_knn_self(x.view(), 5, &HnswParams::default()).unwrap();
        assert_eq!(nn.indices.len(), 250);
        assert!(approximate_knn_self(x.view(), 50, &HnswParams::default()).is_err());
    }

    #[test]
    fn perfect_and_empty_f1() {
        assert_eq!(macro_f1(&[1, 2, 2], &[1, 2, 2]).unwrap(), 1.0);
        assert!(matches!(macro_f1(&[], &[]), Err(MetricError::Empty { .. })));
        assert!(matches!(accuracy(&[], &[]), Err(MetricError::Empty { .. })));
    }
    #[test]
    fn tiled_search_equals_direct_search_with_ties() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        // integer lattice points: many exactly tied distances and duplicates, 700 rows
        // (several tiles); the tiled search must equal the direct one, ties by index
        let x = Array2::from_shape_fn((700, 3), |_| f64::from(rng.gen_range(-3i32..=3)));
        let q = Array2::from_shape_fn((300, 3), |_| f64::from(rng.gen_range(-3i32..=3)) + 0.5);
        for (queries, exclude_self, k) in [(&x, true, 20), (&q, false, 7), (&x, false, 1)] {
            let fast = knn_f64(&x, queries, k, exclude_self);
            let (mut idx, mut dist) = (Vec::new(), Vec::new());
            for i in 0..queries.nrows() {
                knn_row_direct(&x, row(queries, i), i, k, exclude_self, &mut idx, &mut dist);
            }
            assert_eq!(fast.indices, idx);
            assert_eq!(fast.distances, dist);
        }
    }
}
