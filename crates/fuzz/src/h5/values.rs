//! Random contents: sparse matrices (maybe with odd values), index arrays corrupted now
//! and then, name lists with the odd duplicate or strange name, and 10x feature tables.

use rand::Rng;

use crate::mutate::{CaseRng, pick};

/// A random sparse matrix `rows x cols` with values that are mostly small counts.
pub(super) fn random_csr(
    rng: &mut CaseRng,
    rows: usize,
    cols: usize,
    weird: bool,
) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let mut indptr = vec![0i64];
    let mut indices = Vec::new();
    let mut data = Vec::new();
    for _ in 0..rows {
        for c in 0..cols {
            if rng.gen_bool(0.3) {
                indices.push(c as i64);
                data.push(if weird && rng.gen_bool(0.1) {
                    pick(rng, &[f64::NAN, f64::INFINITY, -1.0, 0.5, 1e39, 0.0, -0.0])
                } else {
                    f64::from(rng.gen_range(1u8..20))
                });
            }
        }
        indptr.push(indices.len() as i64);
    }
    (indptr, indices, data)
}

/// Corrupts an index array now and then: out of range, negative, unsorted, wrong length.
pub(super) fn corrupt_ints(rng: &mut CaseRng, v: &mut Vec<i64>) {
    if !rng.gen_bool(0.3) {
        return;
    }
    match rng.gen_range(0..6) {
        0 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] = pick(rng, &[-1, i64::MIN, i64::MAX, 1 << 32, 100_000, 1_000_001]);
        }
        1 => {
            v.pop();
        }
        2 => v.push(rng.gen_range(0..50)),
        3 => v.reverse(),
        4 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] += rng.gen_range(1..5);
        }
        _ => v.clear(),
    }
}

pub(super) fn names(prefix: &str, n: usize, rng: &mut CaseRng) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    if n > 1 && rng.gen_bool(0.05) {
        v[n - 1] = v[0].clone();
    }
    if n > 0 && rng.gen_bool(0.05) {
        v[0] = pick(rng, &["", "é", "a\u{0}b", "x".repeat(5000).as_str()]).to_string();
    }
    v
}

/// The columns (ids, names, types) of a 10x feature table: `genes` genes, then `peaks`
/// peaks, each named by its interval unless `odd_peak` gives another name.
pub(super) fn tenx_features(
    genes: usize,
    peaks: usize,
    mut odd_peak: impl FnMut() -> Option<String>,
) -> (Vec<String>, Vec<String>, Vec<String>) {
    let mut ids = Vec::new();
    let mut fnames = Vec::new();
    let mut types = Vec::new();
    for g in 0..genes {
        ids.push(format!("ENSG{g:05}"));
        fnames.push(format!("GENE{g}"));
        types.push("Gene Expression".to_string());
    }
    for p in 0..peaks {
        let start = 100 + 1000 * p;
        let id = odd_peak().unwrap_or_else(|| format!("chr{}:{start}-{}", p % 2 + 1, start + 500));
        fnames.push(id.clone());
        ids.push(id);
        types.push("Peaks".to_string());
    }
    (ids, fnames, types)
}
