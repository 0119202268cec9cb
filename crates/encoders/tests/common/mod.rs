//! Shared helpers of the integration tests: seeded random CSR batches.

#![allow(dead_code)]

/// A small deterministic generator (SplitMix64), so the tests need no `rand`.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Owned CSR arrays.
#[derive(Debug, Clone)]
pub struct Csr {
    pub nrows: usize,
    pub ncols: usize,
    pub indptr: Vec<i64>,
    pub indices: Vec<i64>,
    pub values: Vec<f32>,
}

impl Csr {
    pub fn batch(&self) -> crossomics_encoders::CsrBatch<'_> {
        crossomics_encoders::CsrBatch::new(
            self.nrows,
            self.ncols,
            &self.indptr,
            &self.indices,
            &self.values,
        )
        .unwrap()
    }
}

/// Random rows at `density`; every third row empty; values in (0.5, 2) unless
/// `binary`. With `messy`, rows are stored in descending column order and the first
/// non-empty row repeats one column (sums in every representation).
pub fn random_csr(
    rng: &mut Rng,
    nrows: usize,
    ncols: usize,
    density: f64,
    binary: bool,
    messy: bool,
) -> Csr {
    let mut indptr = vec![0i64];
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut repeated = false;
    for r in 0..nrows {
        let mut row: Vec<i64> = if r % 3 == 2 {
            Vec::new()
        } else {
            (0..ncols as i64)
                .filter(|_| rng.uniform() < density)
                .collect()
        };
        if messy {
            row.reverse();
            if !repeated && !row.is_empty() {
                row.push(row[0]);
                repeated = true;
            }
        }
        for c in row {
            indices.push(c);
            values.push(if binary {
                1.0
            } else {
                0.5 + 1.5 * rng.uniform() as f32
            });
        }
        indptr.push(indices.len() as i64);
    }
    Csr {
        nrows,
        ncols,
        indptr,
        indices,
        values,
    }
}

/// Peak names spread over chromosomes `chr1..` with the given numbers of peaks,
/// interleaved (column `j` goes to the next chromosome that still has peaks left).
pub fn interleaved_peaks(counts: &[(&str, usize)]) -> Vec<String> {
    let mut left: Vec<usize> = counts.iter().map(|c| c.1).collect();
    let mut names = Vec::new();
    let mut pos = 0;
    while left.iter().any(|&l| l > 0) {
        for (i, (chrom, _)) in counts.iter().enumerate() {
            if left[i] > 0 {
                left[i] -= 1;
                pos += 1;
                names.push(format!("{chrom}:{}-{}", pos * 1000, pos * 1000 + 500));
            }
        }
    }
    names
}
