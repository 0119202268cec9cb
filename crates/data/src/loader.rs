//! Minibatches of per-cell rows, loaded ahead of the trainer on a background thread.
//!
//! Every model reads its cells through this module: a [`Loader`] holds one or more
//! [`Source`]s whose rows are the same cells (paired RNA and ATAC, the RNA PCA, the
//! decoder's confounders, per-cell weights), each optionally restricted to a column set.
//! A source is anything implementing [`RowSource`], the minibatch-source trait: today the
//! in-memory CSR matrices and dense arrays, and an on-disk store behind the same trait
//! without any model changing. Given a plan, an
//! iterator of cell-index lists such as the epochs of [`crate::batches::shuffled`], it
//! yields [`Batch`]es holding the cell indices and, per source, the rows as one
//! contiguous row-major f32 buffer (`cells x columns`, written straight from the CSR:
//! zero-fill, then scatter the non-zeros) and/or as re-based CSR slices (`indptr`,
//! `indices`, `values`; `i64` indices, the index type of torch's sparse tensors) for a
//! sparse first layer. A trainer wraps a buffer as a tensor with its one copy.
//!
//! [`Loader::run`] with [`Prefetch::Background`] fills batches on a producer thread
//! (`std::thread::scope`, so the sources are borrowed, never cloned or `Arc`ed) that runs
//! at most [`DEPTH`] batches ahead through a bounded channel. A dropped [`Batch`] sends its
//! buffers back through a return channel and the producer refills them, so after warm-up
//! no buffer is allocated per batch (at most `DEPTH + 2` buffer sets live while the
//! consumer drops each batch before asking for the next). [`Prefetch::Inline`] (and
//! [`Loader::iter`]) produce the identical batches on the calling thread.
//!
//! When the consumer stops early (returns, or panics), the iterator is dropped, the
//! producer's next send fails and it ends, so the scope closes without deadlock. A panic
//! on the producer (a cell index out of range) is re-raised on the consumer's thread.
//!
//! Nothing here depends on tch.

use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::thread::{self, ScopedJoinHandle};

use crate::Csr;
use crate::error::{DataError, Result};

/// Batches the background producer may have ready beyond the one the consumer holds.
pub const DEPTH: usize = 2;

/// Marks a column outside the source's column set.
const DROPPED: u32 = u32::MAX;

/// One stored row of a [`RowSource`].
#[derive(Debug, Clone, Copy)]
pub enum Row<'r> {
    /// The non-zero entries: columns in increasing order, and their values.
    Sparse {
        indices: &'r [usize],
        values: &'r [f32],
    },
    /// Every column's value.
    Dense(&'r [f32]),
}

/// A matrix whose rows are cells: what the loader reads minibatches from.
pub trait RowSource: Sync + Send + std::fmt::Debug {
    fn nrows(&self) -> usize;
    fn ncols(&self) -> usize;
    /// Row `r` (`r < nrows()`; a larger one may panic).
    fn row(&self, r: usize) -> Row<'_>;
}

impl<T: RowSource + ?Sized> RowSource for &T {
    fn nrows(&self) -> usize {
        (**self).nrows()
    }
    fn ncols(&self) -> usize {
        (**self).ncols()
    }
    fn row(&self, r: usize) -> Row<'_> {
        (**self).row(r)
    }
}

impl RowSource for Csr {
    fn nrows(&self) -> usize {
        Csr::nrows(self)
    }
    fn ncols(&self) -> usize {
        Csr::ncols(self)
    }
    fn row(&self, r: usize) -> Row<'_> {
        let (offsets, indices, values) = self.csr_data();
        let (lo, hi) = (offsets[r], offsets[r + 1]);
        Row::Sparse {
            indices: &indices[lo..hi],
            values: &values[lo..hi],
        }
    }
}

/// A dense array, rows = cells (standard layout; a view of another layout is copied row
/// by row into a contiguous one when the source is made).
#[derive(Debug, Clone)]
pub struct DenseSource<'a> {
    values: std::borrow::Cow<'a, [f32]>,
    nrows: usize,
    ncols: usize,
}

impl<'a> From<ndarray::ArrayView2<'a, f32>> for DenseSource<'a> {
    fn from(a: ndarray::ArrayView2<'a, f32>) -> Self {
        let (nrows, ncols) = a.dim();
        let values = match a.to_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(a.iter().copied().collect()),
        };
        Self {
            values,
            nrows,
            ncols,
        }
    }
}

impl<'a> DenseSource<'a> {
    /// One value per cell, as a one-column source (per-cell weights).
    pub fn column(values: &'a [f32]) -> Self {
        Self {
            values: std::borrow::Cow::Borrowed(values),
            nrows: values.len(),
            ncols: 1,
        }
    }
}

impl RowSource for DenseSource<'_> {
    fn nrows(&self) -> usize {
        self.nrows
    }
    fn ncols(&self) -> usize {
        self.ncols
    }
    fn row(&self, r: usize) -> Row<'_> {
        Row::Dense(&self.values[r * self.ncols..(r + 1) * self.ncols])
    }
}

/// One source (cells x features) to load rows of.
#[derive(Debug)]
pub struct Source<'a> {
    matrix: Box<dyn RowSource + 'a>,
    columns: Option<&'a [usize]>,
    dense: bool,
    sparse: bool,
}

impl<'a> Source<'a> {
    /// All columns, as a dense buffer (no CSR slices).
    pub fn new(matrix: impl RowSource + 'a) -> Self {
        Self {
            matrix: Box::new(matrix),
            columns: None,
            dense: true,
            sparse: false,
        }
    }

    /// A dense array's rows ([`DenseSource`]).
    pub fn dense(array: ndarray::ArrayView2<'a, f32>) -> Self {
        Self::new(DenseSource::from(array))
    }

    /// Only these columns, in this order: output column `k` is matrix column `columns[k]`.
    pub fn with_columns(mut self, columns: &'a [usize]) -> Self {
        self.columns = Some(columns);
        self
    }

    /// Whether batches hold the rows as a dense buffer (default on).
    pub fn with_dense(mut self, on: bool) -> Self {
        self.dense = on;
        self
    }

    /// Whether batches hold the rows as CSR slices (default off).
    pub fn with_sparse(mut self, on: bool) -> Self {
        self.sparse = on;
        self
    }
}

/// A source checked and ready: its column map built once.
#[derive(Debug)]
struct Prepared<'a> {
    matrix: Box<dyn RowSource + 'a>,
    /// matrix column -> output column, [`DROPPED`] outside the set; `None`: identity.
    map: Option<Vec<u32>>,
    /// The output columns are in increasing matrix order (CSR slices need no sorting).
    monotone: bool,
    ncols: usize,
    dense: bool,
    sparse: bool,
}

/// Where batches are filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Prefetch {
    /// On a producer thread, up to [`DEPTH`] batches ahead of the consumer.
    #[default]
    Background,
    /// On the consumer's thread when it asks for the next batch (no thread).
    Inline,
}

/// Loads minibatches of rows of one or more CSR matrices of the same cells.
#[derive(Debug)]
pub struct Loader<'a> {
    sources: Vec<Prepared<'a>>,
}

impl<'a> Loader<'a> {
    /// Checks the sources: the same number of rows, columns in range and not repeated.
    pub fn new(sources: impl IntoIterator<Item = Source<'a>>) -> Result<Self> {
        let mut prepared: Vec<Prepared<'a>> = Vec::new();
        for (i, s) in sources.into_iter().enumerate() {
            let what = || format!("loader source {i}");
            if let Some(first) = prepared.first()
                && first.matrix.nrows() != s.matrix.nrows()
            {
                return Err(DataError::invalid(
                    what(),
                    format!(
                        "{} rows, but source 0 has {} (sources must be the same cells)",
                        s.matrix.nrows(),
                        first.matrix.nrows()
                    ),
                ));
            }
            let width = s.matrix.ncols();
            let (map, monotone, ncols) = match s.columns {
                None => (None, true, width),
                Some(cols) => {
                    if width >= DROPPED as usize {
                        return Err(DataError::invalid(
                            what(),
                            format!("{width} columns; a column set needs fewer than 2^32 - 1"),
                        ));
                    }
                    let mut map = vec![DROPPED; width];
                    for (k, &c) in cols.iter().enumerate() {
                        if c >= width {
                            return Err(DataError::invalid(
                                what(),
                                format!(
                                    "column {c} of the column set is out of range ({width} columns)"
                                ),
                            ));
                        }
                        if map[c] != DROPPED {
                            return Err(DataError::invalid(
                                what(),
                                format!("column {c} appears twice in the column set"),
                            ));
                        }
                        map[c] = k as u32;
                    }
                    let monotone = cols.windows(2).all(|w| w[0] < w[1]);
                    (Some(map), monotone, cols.len())
                }
            };
            prepared.push(Prepared {
                matrix: s.matrix,
                map,
                monotone,
                ncols,
                dense: s.dense,
                sparse: s.sparse,
            });
        }
        Ok(Self { sources: prepared })
    }

    /// Number of sources.
    pub fn n_sources(&self) -> usize {
        self.sources.len()
    }

    /// Output columns of `source` (the column set's size, or all the matrix's columns).
    pub fn ncols(&self, source: usize) -> usize {
        self.sources[source].ncols
    }

    /// Loads one batch on the calling thread (its buffers are freed when it is dropped).
    pub fn load(&self, cells: Vec<usize>) -> Batch {
        let mut bufs = self.new_buffers();
        self.fill(cells, &mut bufs);
        Batch {
            index: 0,
            bufs,
            recycle: None,
        }
    }

    /// The batches of `plan` filled on the calling thread, buffers reused.
    pub fn iter<'s, P>(&'s self, plan: P) -> Batches<'s>
    where
        P: IntoIterator<Item = Vec<usize>>,
        P::IntoIter: 's,
    {
        let (recycle, pool) = mpsc::channel();
        Batches {
            inner: Inner::Inline {
                loader: self,
                plan: Box::new(plan.into_iter()),
                next_index: 0,
                pool,
                recycle,
            },
        }
    }

    /// Runs `consume` over the batches of `plan`, filled according to `prefetch`. The
    /// batches are the same, in the same order, either way. With
    /// [`Prefetch::Background`] a producer thread fills them while `consume` works; it
    /// ends when the plan is exhausted or `consume` stops early (drops the iterator,
    /// returns or panics), and this returns after it has ended.
    pub fn run<P, R>(
        &self,
        plan: P,
        prefetch: Prefetch,
        consume: impl FnOnce(&mut Batches<'_>) -> R,
    ) -> R
    where
        P: IntoIterator<Item = Vec<usize>>,
        P::IntoIter: Send,
    {
        match prefetch {
            Prefetch::Inline => consume(&mut self.iter(plan)),
            Prefetch::Background => thread::scope(|scope| {
                let (tx, rx) = mpsc::sync_channel(DEPTH);
                let plan = plan.into_iter();
                let producer = scope.spawn(move || self.produce(plan, &tx));
                let mut batches = Batches {
                    inner: Inner::Background {
                        rx,
                        producer: Some(producer),
                    },
                };
                consume(&mut batches)
            }),
        }
    }

    fn produce(&self, plan: impl Iterator<Item = Vec<usize>>, tx: &SyncSender<Batch>) {
        let (recycle, pool) = mpsc::channel::<Buffers>();
        for (index, cells) in plan.enumerate() {
            // never block on the pool: a consumer that keeps batches just costs a new set
            let mut bufs = pool.try_recv().unwrap_or_else(|_| self.new_buffers());
            self.fill(cells, &mut bufs);
            let batch = Batch {
                index,
                bufs,
                recycle: Some(recycle.clone()),
            };
            if tx.send(batch).is_err() {
                return; // the consumer is gone
            }
        }
    }

    fn new_buffers(&self) -> Buffers {
        Buffers {
            cells: Vec::new(),
            sources: self
                .sources
                .iter()
                .map(|s| SourceBuf {
                    ncols: s.ncols,
                    dense: s.dense.then(Vec::new),
                    sparse: s.sparse.then(SparseBuf::default),
                })
                .collect(),
        }
    }

    fn fill(&self, cells: Vec<usize>, bufs: &mut Buffers) {
        for (s, b) in self.sources.iter().zip(&mut bufs.sources) {
            if let Some(d) = &mut b.dense {
                densify(&*s.matrix, &cells, s.map.as_deref(), s.ncols, d);
            }
            if let Some(sp) = &mut b.sparse {
                slice(&*s.matrix, &cells, s.map.as_deref(), s.monotone, sp);
            }
        }
        bufs.cells = cells;
    }
}

/// Rows `rows` of `m`, all columns, densified row-major into `out` (resized to
/// `rows.len() * m.ncols()`; its capacity is kept). Equal to
/// [`crate::preprocess::dense_rows`], without the intermediate array.
pub fn densify_rows(m: &dyn RowSource, rows: &[usize], out: &mut Vec<f32>) {
    densify(m, rows, None, m.ncols(), out);
}

fn check_row(m: &dyn RowSource, r: usize) {
    assert!(
        r < m.nrows(),
        "loader: cell {r} is out of range for a matrix of {} rows",
        m.nrows()
    );
}

/// One pass: zero-fill, then scatter each row's non-zeros (or copy a dense row).
fn densify(
    m: &dyn RowSource,
    rows: &[usize],
    map: Option<&[u32]>,
    ncols: usize,
    out: &mut Vec<f32>,
) {
    out.clear();
    out.resize(rows.len() * ncols, 0.0);
    if ncols == 0 {
        rows.iter().for_each(|&r| check_row(m, r));
        return;
    }
    for (dst, &r) in out.chunks_exact_mut(ncols).zip(rows) {
        check_row(m, r);
        match (m.row(r), map) {
            (Row::Sparse { indices, values }, None) => {
                indices.iter().zip(values).for_each(|(&c, &v)| dst[c] = v)
            }
            (Row::Dense(values), None) => dst.copy_from_slice(values),
            (row, Some(map)) => for_each_entry(row, |c, v| {
                let k = map[c];
                if k != DROPPED {
                    dst[k as usize] = v;
                }
            }),
        }
    }
}

/// Every stored entry of a row (a dense row's non-zeros), in column order.
fn for_each_entry(row: Row<'_>, mut f: impl FnMut(usize, f32)) {
    match row {
        Row::Sparse { indices, values } => indices.iter().zip(values).for_each(|(&c, &v)| f(c, v)),
        Row::Dense(values) => values
            .iter()
            .enumerate()
            .filter(|(_, v)| **v != 0.0)
            .for_each(|(c, &v)| f(c, v)),
    }
}

/// The rows as CSR arrays re-based to the batch (row `i` of the batch is `indptr[i]..
/// indptr[i + 1]`), columns renumbered by the column set and sorted within each row.
fn slice(
    m: &dyn RowSource,
    rows: &[usize],
    map: Option<&[u32]>,
    monotone: bool,
    out: &mut SparseBuf,
) {
    out.indptr.clear();
    out.indices.clear();
    out.values.clear();
    out.indptr.push(0);
    for &r in rows {
        check_row(m, r);
        let row = m.row(r);
        match (row, map) {
            (Row::Sparse { indices, values }, None) => {
                out.indices.extend(indices.iter().map(|&c| c as i64));
                out.values.extend_from_slice(values);
            }
            (row, None) => for_each_entry(row, |c, v| {
                out.indices.push(c as i64);
                out.values.push(v);
            }),
            (row, Some(map)) => {
                let start = out.indices.len();
                for_each_entry(row, |c, v| {
                    let k = map[c];
                    if k != DROPPED {
                        out.indices.push(i64::from(k));
                        out.values.push(v);
                    }
                });
                if !monotone {
                    out.scratch.clear();
                    out.scratch.extend(
                        out.indices[start..]
                            .iter()
                            .copied()
                            .zip(out.values[start..].iter().copied()),
                    );
                    out.scratch.sort_unstable_by_key(|&(k, _)| k);
                    for (i, &(k, v)) in out.scratch.iter().enumerate() {
                        out.indices[start + i] = k;
                        out.values[start + i] = v;
                    }
                }
            }
        }
        out.indptr.push(out.indices.len() as i64);
    }
}

#[derive(Debug, Default)]
struct SparseBuf {
    indptr: Vec<i64>,
    indices: Vec<i64>,
    values: Vec<f32>,
    scratch: Vec<(i64, f32)>,
}

#[derive(Debug)]
struct SourceBuf {
    ncols: usize,
    dense: Option<Vec<f32>>,
    sparse: Option<SparseBuf>,
}

/// One batch's reusable storage.
#[derive(Debug, Default)]
struct Buffers {
    cells: Vec<usize>,
    sources: Vec<SourceBuf>,
}

/// One minibatch: cell indices and, per source, their rows. Dropping it hands its
/// buffers back to the loader for reuse.
#[derive(Debug)]
pub struct Batch {
    index: usize,
    bufs: Buffers,
    recycle: Option<Sender<Buffers>>,
}

/// A batch's rows of one source as a row-major `nrows x ncols` buffer.
#[derive(Debug, Clone, Copy)]
pub struct DenseRows<'b> {
    pub nrows: usize,
    pub ncols: usize,
    pub values: &'b [f32],
}

impl<'b> DenseRows<'b> {
    /// Row `i` of the batch.
    pub fn row(&self, i: usize) -> &'b [f32] {
        &self.values[i * self.ncols..(i + 1) * self.ncols]
    }
}

/// A batch's rows of one source in CSR form, re-based to the batch: row `i` holds
/// `indices[indptr[i]..indptr[i + 1]]` (output columns, increasing) and their `values`.
#[derive(Debug, Clone, Copy)]
pub struct CsrRows<'b> {
    pub nrows: usize,
    pub ncols: usize,
    pub indptr: &'b [i64],
    pub indices: &'b [i64],
    pub values: &'b [f32],
}

impl Batch {
    /// Position of the batch in the plan (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// The cells (row indices into every source), in batch order.
    pub fn cells(&self) -> &[usize] {
        &self.bufs.cells
    }

    pub fn len(&self) -> usize {
        self.bufs.cells.len()
    }

    pub fn is_empty(&self) -> bool {
        self.bufs.cells.is_empty()
    }

    /// The rows of `source` densified, or `None` when the source is not loaded dense
    /// (or there is no such source).
    pub fn dense(&self, source: usize) -> Option<DenseRows<'_>> {
        let s = self.bufs.sources.get(source)?;
        Some(DenseRows {
            nrows: self.len(),
            ncols: s.ncols,
            values: s.dense.as_deref()?,
        })
    }

    /// The rows of `source` as CSR slices, or `None` when the source is not loaded
    /// sparse (or there is no such source).
    pub fn sparse(&self, source: usize) -> Option<CsrRows<'_>> {
        let s = self.bufs.sources.get(source)?;
        let sp = s.sparse.as_ref()?;
        Some(CsrRows {
            nrows: self.len(),
            ncols: s.ncols,
            indptr: &sp.indptr,
            indices: &sp.indices,
            values: &sp.values,
        })
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(recycle) = &self.recycle {
            // the loader may be gone already; then the buffers are simply freed
            let _ = recycle.send(std::mem::take(&mut self.bufs));
        }
    }
}

/// The batches of one [`Loader::run`] or [`Loader::iter`], in plan order.
pub struct Batches<'s> {
    inner: Inner<'s>,
}

enum Inner<'s> {
    Background {
        rx: Receiver<Batch>,
        producer: Option<ScopedJoinHandle<'s, ()>>,
    },
    Inline {
        loader: &'s Loader<'s>,
        plan: Box<dyn Iterator<Item = Vec<usize>> + 's>,
        next_index: usize,
        pool: Receiver<Buffers>,
        recycle: Sender<Buffers>,
    },
}

impl std::fmt::Debug for Batches<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.inner {
            Inner::Background { .. } => "background",
            Inner::Inline { .. } => "inline",
        };
        f.debug_struct("Batches").field("mode", &mode).finish()
    }
}

impl Iterator for Batches<'_> {
    type Item = Batch;

    fn next(&mut self) -> Option<Batch> {
        match &mut self.inner {
            Inner::Background { rx, producer } => match rx.recv() {
                Ok(batch) => Some(batch),
                Err(_) => {
                    // the producer has ended: re-raise its panic here, if it had one
                    if let Some(Err(panic)) = producer.take().map(ScopedJoinHandle::join) {
                        std::panic::resume_unwind(panic);
                    }
                    None
                }
            },
            Inner::Inline {
                loader,
                plan,
                next_index,
                pool,
                recycle,
            } => {
                let cells = plan.next()?;
                let mut bufs = pool.try_recv().unwrap_or_else(|_| loader.new_buffers());
                loader.fill(cells, &mut bufs);
                let batch = Batch {
                    index: *next_index,
                    bufs,
                    recycle: Some(recycle.clone()),
                };
                *next_index += 1;
                Some(batch)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batches;
    use crate::preprocess::dense_rows;
    use nalgebra_sparse::CooMatrix;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;
    use std::collections::HashSet;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn random_csr(n: usize, d: usize, density: f64, seed: u64) -> Csr {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut coo = CooMatrix::new(n, d);
        for i in 0..n {
            for j in 0..d {
                if rng.gen_bool(density) {
                    coo.push(i, j, rng.gen_range(1..5) as f32);
                }
            }
        }
        Csr::from(&coo)
    }

    fn plan(n: usize, batch: usize, epochs: usize, seed: u64) -> Vec<Vec<usize>> {
        let cells: Vec<usize> = (0..n).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..epochs)
            .flat_map(|_| batches::shuffled(&cells, batch, &mut rng))
            .collect()
    }

    /// Everything a batch holds, owned, for comparisons.
    type Snapshot = (
        usize,
        Vec<usize>,
        Vec<Option<Vec<f32>>>,
        Vec<Option<CsrOwned>>,
    );
    type CsrOwned = (Vec<i64>, Vec<i64>, Vec<f32>);

    fn snapshot(b: &Batch, n_sources: usize) -> Snapshot {
        let dense = (0..n_sources)
            .map(|s| b.dense(s).map(|d| d.values.to_vec()))
            .collect();
        let sparse = (0..n_sources)
            .map(|s| {
                b.sparse(s)
                    .map(|c| (c.indptr.to_vec(), c.indices.to_vec(), c.values.to_vec()))
            })
            .collect();
        (b.index(), b.cells().to_vec(), dense, sparse)
    }

    #[test]
    fn batches_equal_dense_rows_of_the_same_cells() {
        let a = random_csr(53, 17, 0.2, 1);
        let b = random_csr(53, 9, 0.5, 2);
        let loader = Loader::new([Source::new(&a), Source::new(&b)]).unwrap();
        let p = plan(53, 8, 3, 7);
        for prefetch in [Prefetch::Inline, Prefetch::Background] {
            let seen = loader.run(p.clone(), prefetch, |batches| {
                let mut seen = 0;
                for (k, batch) in batches.enumerate() {
                    assert_eq!(batch.index(), k);
                    assert_eq!(batch.cells(), &p[k][..]);
                    for (s, m) in [(0, &a), (1, &b)] {
                        let d = batch.dense(s).unwrap();
                        let want = dense_rows(m, batch.cells());
                        assert_eq!((d.nrows, d.ncols), want.dim());
                        assert_eq!(d.values, want.as_slice().unwrap());
                        assert_eq!(d.row(1), want.row(1).as_slice().unwrap());
                        assert!(batch.sparse(s).is_none());
                    }
                    assert!(batch.dense(2).is_none());
                    seen += 1;
                }
                seen
            });
            assert_eq!(seen, p.len());
        }
        let mut flat = vec![9.0; 3];
        densify_rows(&a, &[5, 0, 5], &mut flat);
        assert_eq!(flat, dense_rows(&a, &[5, 0, 5]).into_raw_vec_and_offset().0);
    }

    #[test]
    fn column_sets_select_and_reorder_columns() {
        let a = random_csr(30, 12, 0.4, 3);
        let cols = [7usize, 2, 11, 0];
        let loader = Loader::new([Source::new(&a).with_columns(&cols).with_sparse(true)]).unwrap();
        assert_eq!(loader.ncols(0), 4);
        let full = dense_rows(&a, &(0..30).collect::<Vec<_>>());
        for batch in loader.iter(plan(30, 7, 1, 0)) {
            let d = batch.dense(0).unwrap();
            let sp = batch.sparse(0).unwrap();
            for (i, &cell) in batch.cells().iter().enumerate() {
                let want: Vec<f32> = cols.iter().map(|&c| full[[cell, c]]).collect();
                assert_eq!(d.row(i), &want[..]);
                let (lo, hi) = (sp.indptr[i] as usize, sp.indptr[i + 1] as usize);
                assert!(sp.indices[lo..hi].windows(2).all(|w| w[0] < w[1]));
                let mut row = vec![0.0; 4];
                for (&k, &v) in sp.indices[lo..hi].iter().zip(&sp.values[lo..hi]) {
                    row[k as usize] = v;
                }
                assert_eq!(row, want);
            }
        }
    }

    #[test]
    fn csr_slices_reconstruct_the_rows() {
        let a = random_csr(40, 25, 0.15, 4);
        let loader = Loader::new([Source::new(&a).with_dense(false).with_sparse(true)]).unwrap();
        for batch in loader.iter(plan(40, 6, 2, 1)) {
            assert!(batch.dense(0).is_none());
            let sp = batch.sparse(0).unwrap();
            assert_eq!((sp.nrows, sp.ncols), (batch.len(), 25));
            assert_eq!(sp.indptr.len(), batch.len() + 1);
            assert_eq!(sp.indptr[0], 0);
            let mut dense = vec![0.0f32; batch.len() * 25];
            for i in 0..batch.len() {
                for e in sp.indptr[i] as usize..sp.indptr[i + 1] as usize {
                    dense[i * 25 + sp.indices[e] as usize] = sp.values[e];
                }
            }
            let want = dense_rows(&a, batch.cells());
            assert_eq!(dense, want.as_slice().unwrap());
            let nnz: usize = batch.cells().iter().map(|&c| a.row(c).nnz()).sum();
            assert_eq!(sp.values.len(), nnz);
        }
    }

    #[test]
    fn threaded_equals_inline() {
        let a = random_csr(101, 31, 0.1, 5);
        let b = random_csr(101, 8, 0.6, 6);
        let cols = [6usize, 1, 7, 3]; // not increasing: sparse rows get sorted
        let loader = Loader::new([
            Source::new(&a).with_sparse(true),
            Source::new(&b).with_columns(&cols).with_sparse(true),
        ])
        .unwrap();
        let collect = |prefetch| {
            loader.run(plan(101, 16, 4, 9), prefetch, |batches| {
                batches.map(|b| snapshot(&b, 2)).collect::<Vec<_>>()
            })
        };
        let inline = collect(Prefetch::Inline);
        assert_eq!(inline.len(), 4 * batches::count(101, 16));
        assert_eq!(collect(Prefetch::Background), inline);
        let iter: Vec<_> = loader
            .iter(plan(101, 16, 4, 9))
            .map(|b| snapshot(&b, 2))
            .collect();
        assert_eq!(iter, inline);
    }

    #[test]
    fn buffers_are_reused_after_warm_up() {
        let a = random_csr(200, 50, 0.1, 7);
        let loader = Loader::new([Source::new(&a).with_sparse(true)]).unwrap();
        // 200 batches, each the same 10 cells in a new order: equal sizes, so no buffer
        // grows after its first fill and every new pointer is a new buffer
        let p = plan(10, 10, 200, 3);
        for prefetch in [Prefetch::Inline, Prefetch::Background] {
            let (dense, sparse) = loader.run(p.clone(), prefetch, |batches| {
                let mut dense = HashSet::new();
                let mut sparse = HashSet::new();
                for batch in batches {
                    dense.insert(batch.dense(0).unwrap().values.as_ptr() as usize);
                    sparse.insert(batch.sparse(0).unwrap().values.as_ptr() as usize);
                }
                (dense, sparse)
            });
            let limit = match prefetch {
                Prefetch::Inline => 1,
                Prefetch::Background => DEPTH + 2,
            };
            assert!(
                dense.len() <= limit,
                "{prefetch:?}: {} buffers",
                dense.len()
            );
            assert!(
                sparse.len() <= limit,
                "{prefetch:?}: {} buffers",
                sparse.len()
            );
        }
        // a consumer that keeps every batch gets fresh buffers instead of a deadlock
        let kept: Vec<Batch> = loader.run(p[..20].to_vec(), Prefetch::Background, |b| b.collect());
        assert_eq!(kept.len(), 20);
        let ptrs: HashSet<usize> = kept
            .iter()
            .map(|b| b.dense(0).unwrap().values.as_ptr() as usize)
            .collect();
        assert_eq!(ptrs.len(), 20);
    }

    #[test]
    fn a_consumer_that_stops_early_ends_the_producer() {
        let a = random_csr(64, 20, 0.2, 8);
        let loader = Loader::new([Source::new(&a)]).unwrap();
        let produced = AtomicUsize::new(0);
        let endless = (0..).map(|k| {
            produced.fetch_add(1, Ordering::Relaxed);
            vec![k % 64, (k + 1) % 64]
        });
        let first = loader.run(endless, Prefetch::Background, |batches| {
            batches.next().unwrap().cells().to_vec()
        });
        assert_eq!(first, vec![0, 1]);
        assert!(produced.load(Ordering::Relaxed) <= DEPTH + 3);

        // a panicking consumer: the panic comes out of run, nothing hangs
        let endless = (0..).map(|k| vec![k % 64]);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader.run(endless, Prefetch::Background, |batches| {
                let _held = batches.next();
                panic!("consumer failed");
            })
        }));
        let msg = caught.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"consumer failed"));
    }

    #[test]
    fn a_producer_panic_reaches_the_consumer() {
        let a = random_csr(10, 5, 0.5, 9);
        let loader = Loader::new([Source::new(&a)]).unwrap();
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            loader.run(vec![vec![0, 1], vec![3, 10]], Prefetch::Background, |b| {
                b.count()
            })
        }));
        let panic = caught.unwrap_err();
        let msg = panic.downcast_ref::<String>().unwrap();
        assert!(msg.contains("cell 10 is out of range"), "{msg}");
    }

    #[test]
    fn zero_rows_single_batches_and_no_sources() {
        let a = random_csr(5, 4, 0.5, 10);
        let empty = random_csr(0, 4, 0.5, 10);
        for prefetch in [Prefetch::Inline, Prefetch::Background] {
            // an empty plan
            let n = Loader::new([Source::new(&a)]).unwrap().run(
                Vec::<Vec<usize>>::new(),
                prefetch,
                |b| b.count(),
            );
            assert_eq!(n, 0);
            // a matrix without rows and an empty batch
            let loader = Loader::new([Source::new(&empty).with_sparse(true)]).unwrap();
            let got = loader.run(vec![vec![]], prefetch, |b| {
                b.map(|b| snapshot(&b, 1)).collect::<Vec<_>>()
            });
            let want = (
                0,
                vec![],
                vec![Some(vec![])],
                vec![Some((vec![0], vec![], vec![]))],
            );
            assert_eq!(got, vec![want]);
            // one batch of every cell
            let loader = Loader::new([Source::new(&a)]).unwrap();
            let one = loader.run(plan(5, 100, 1, 0), prefetch, |b| {
                b.map(|b| snapshot(&b, 1)).collect::<Vec<_>>()
            });
            assert_eq!(one.len(), 1);
            let cells = &one[0].1;
            assert_eq!(
                one[0].2[0].as_deref().unwrap(),
                dense_rows(&a, cells).as_slice().unwrap()
            );
            // no sources: the cells alone
            let bare = Loader::new([]).unwrap();
            let cells = bare.run(plan(5, 2, 1, 0), prefetch, |b| {
                b.map(|b| b.cells().to_vec()).collect::<Vec<_>>()
            });
            assert_eq!(cells, plan(5, 2, 1, 0));
        }
        // a single loaded batch, zero columns
        let cols: [usize; 0] = [];
        let none = Loader::new([Source::new(&a).with_columns(&cols)]).unwrap();
        let b = none.load(vec![4, 0]);
        assert_eq!(b.dense(0).unwrap().values.len(), 0);
        assert_eq!(b.dense(0).unwrap().ncols, 0);
    }

    #[test]
    fn bad_sources_are_rejected() {
        let a = random_csr(5, 4, 0.5, 11);
        let b = random_csr(6, 4, 0.5, 11);
        let err = Loader::new([Source::new(&a), Source::new(&b)]).unwrap_err();
        assert!(
            err.to_string().contains("6 rows, but source 0 has 5"),
            "{err}"
        );
        let err = Loader::new([Source::new(&a).with_columns(&[1, 4])]).unwrap_err();
        assert!(err.to_string().contains("column 4"), "{err}");
        let err = Loader::new([Source::new(&a).with_columns(&[1, 1])]).unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
