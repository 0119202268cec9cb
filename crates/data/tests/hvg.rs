//! Seurat v3 highly variable genes against scanpy 1.11.5 / scikit-misc 0.5.3 on the
//! shared real data (fixtures from `scripts/hvg_fixtures.py`), plus the loess on its own,
//! permutation invariance and bad input.
//!
//! Tolerances: the loess reproduces skmisc's fitted log10 variances to `LOESS_TOL`
//! (absolute, both surfaces: same k-d tree, same vertices, same local fits; what is
//! left is rounding in the least-squares solve); means, variances and normalized variances
//! match scanpy to `REL_TOL` relative. Genes whose normalized variances tie (within
//! `REL_TOL`) may be ranked in a different order inside the tie: numpy's argsort is not
//! stable, ours keeps gene order. Every such difference is asserted to be inside a tie.

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::{csr, plain_data};
use crossomics_data::hvg::{self, HvgConfig, HvgFlavor, HvgResult, LoessSurface};
use crossomics_data::{Csr, DataError};
use proptest::prelude::*;
use serde::Deserialize;

const REL_TOL: f64 = 1e-12;
const LOESS_TOL: f64 = 1e-12;

#[derive(Deserialize)]
struct Fixture {
    dataset: String,
    n_cells: usize,
    n_genes: usize,
    span: f64,
    batch_key: Option<String>,
    means: Vec<f64>,
    variances: Vec<f64>,
    variances_norm: Vec<f64>,
    selections: Vec<Selection>,
    batches: Vec<BatchFixture>,
}

#[derive(Deserialize)]
struct Selection {
    n_top_genes: usize,
    flavor: HvgFlavor,
    highly_variable_rank: Vec<Option<f64>>,
    highly_variable_nbatches: Vec<usize>,
    highly_variable: Vec<bool>,
}

#[derive(Deserialize)]
struct BatchFixture {
    batch: Option<String>,
    n_cells: usize,
    means: Vec<f64>,
    variances: Vec<f64>,
    variances_norm: Vec<f64>,
    loess_genes: Vec<usize>,
    loess_interpolate: Vec<f64>,
    loess_direct: Vec<f64>,
}

fn fixture(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/hvg")
        .join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/hvg_fixtures.py)", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// Largest relative difference, with `floor` guarding values near zero.
fn max_rel(ours: &[f64], theirs: &[f64], floor: f64) -> (f64, usize) {
    assert_eq!(ours.len(), theirs.len());
    ours.iter()
        .zip(theirs)
        .enumerate()
        .map(|(i, (a, b))| ((a - b).abs() / b.abs().max(floor), i))
        .fold((0.0, 0), |m, x| if x.0 > m.0 { x } else { m })
}

fn assert_close(what: &str, ours: &[f64], theirs: &[f64], tol: f64) -> f64 {
    let (err, i) = max_rel(ours, theirs, 1e-12);
    assert!(
        err <= tol,
        "{what}: relative difference {err:e} at gene {i} ({} vs scanpy {}) exceeds {tol:e}",
        ours[i],
        theirs[i]
    );
    err
}

/// The genes whose score ties (within `REL_TOL`) with another gene's.
fn tied(scores: &[f64]) -> BTreeSet<usize> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&i, &j| scores[i].total_cmp(&scores[j]));
    let mut out = BTreeSet::new();
    for w in order.windows(2) {
        let (a, b) = (scores[w[0]], scores[w[1]]);
        if (a - b).abs() <= REL_TOL * a.abs().max(b.abs()) {
            out.insert(w[0]);
            out.insert(w[1]);
        }
    }
    out
}

/// Per-batch ranks agree except inside ties, where they may be permuted.
fn assert_ranks_up_to_ties(what: &str, ours: &[usize], scores: &[f64], theirs_scores: &[f64]) {
    // scanpy's ranks follow from its scores: the rank of a gene is the number of genes
    // with a larger score, plus its place inside its exact tie
    let ties = tied(scores);
    for (g, &r) in ours.iter().enumerate() {
        let above = theirs_scores
            .iter()
            .filter(|&&s| s > theirs_scores[g])
            .count();
        let equal = theirs_scores
            .iter()
            .filter(|&&s| s == theirs_scores[g])
            .count();
        if ties.contains(&g) {
            let lo = scores
                .iter()
                .filter(|&&s| s > scores[g] * (1.0 + REL_TOL) + 1e-300)
                .count();
            let hi = scores
                .iter()
                .filter(|&&s| s >= scores[g] * (1.0 - REL_TOL))
                .count();
            assert!(
                (lo..hi).contains(&r),
                "{what}: rank {r} of tied gene {g} outside its tie {lo}..{hi}"
            );
        } else {
            assert_eq!(equal, 1, "{what}: gene {g} ties in scanpy but not here");
            assert_eq!(r, above, "{what}: rank of gene {g}");
        }
    }
}

/// Selected sets agree, or differ only in genes that tie (within `REL_TOL`) in some batch.
fn assert_selection_up_to_ties(what: &str, ours: &HvgResult, theirs: &[bool]) -> usize {
    let mine: BTreeSet<usize> = ours.selected.iter().copied().collect();
    let scanpy: BTreeSet<usize> = (0..theirs.len()).filter(|&g| theirs[g]).collect();
    assert_eq!(mine.len(), scanpy.len(), "{what}: number of selected genes");
    let differ: Vec<usize> = mine.symmetric_difference(&scanpy).copied().collect();
    let ties: BTreeSet<usize> = ours
        .batches
        .iter()
        .flat_map(|b| tied(&b.variances_norm))
        .collect();
    for g in &differ {
        assert!(
            ties.contains(g),
            "{what}: gene {g} is selected by only one side and does not tie: ours {:?} scanpy {}",
            ours.batches
                .iter()
                .map(|b| (b.variances_norm[*g], b.ranks[*g]))
                .collect::<Vec<_>>(),
            theirs[*g]
        );
    }
    differ.len()
}

fn check_dataset(name: &str) {
    let fx = fixture(name);
    let d = plain_data(&fx.dataset);
    assert_eq!((d.n_cells(), d.rna.ncols()), (fx.n_cells, fx.n_genes));
    let codes: Option<Vec<u32>> = fx.batch_key.as_ref().map(|key| {
        let (codes, names) = d.cells.codes(key).unwrap();
        let fixture_names: Vec<String> = fx
            .batches
            .iter()
            .map(|b| b.batch.clone().unwrap())
            .collect();
        assert_eq!(names, fixture_names, "batch order");
        codes.into_iter().map(|c| c as u32).collect()
    });

    let mut worst_norm = 0.0f64;
    let mut tie_differences = 0;
    for sel in &fx.selections {
        let what = format!("{name} n_top={} {:?}", sel.n_top_genes, sel.flavor);
        let r = hvg::seurat_v3_with_flavor(
            &d.rna,
            sel.n_top_genes,
            fx.span,
            codes.as_deref(),
            sel.flavor,
        )
        .unwrap();
        assert_close(&format!("{what} means"), &r.means, &fx.means, REL_TOL);
        assert_close(
            &format!("{what} variances"),
            &r.variances,
            &fx.variances,
            REL_TOL,
        );
        worst_norm = worst_norm.max(assert_close(
            &format!("{what} variances_norm"),
            &r.variances_norm,
            &fx.variances_norm,
            REL_TOL,
        ));
        assert_eq!(r.batches.len(), fx.batches.len());
        for (b, fb) in r.batches.iter().zip(&fx.batches) {
            let bw = format!("{what} batch {:?}", fb.batch);
            assert_eq!(b.n_cells, fb.n_cells);
            assert_close(&format!("{bw} means"), &b.means, &fb.means, REL_TOL);
            assert_close(
                &format!("{bw} variances"),
                &b.variances,
                &fb.variances,
                REL_TOL,
            );
            worst_norm = worst_norm.max(assert_close(
                &format!("{bw} variances_norm"),
                &b.variances_norm,
                &fb.variances_norm,
                REL_TOL,
            ));
            assert_ranks_up_to_ties(&bw, &b.ranks, &b.variances_norm, &fb.variances_norm);
            let fitted: Vec<f64> = fb
                .loess_genes
                .iter()
                .map(|&g| b.log10_expected_variances[g])
                .collect();
            let (err, i) = max_rel(&fitted, &fb.loess_interpolate, 1.0);
            assert!(err <= LOESS_TOL, "{bw}: loess differs by {err:e} at {i}");
        }
        let ties: BTreeSet<usize> = r
            .batches
            .iter()
            .flat_map(|b| tied(&b.variances_norm))
            .collect();
        for g in 0..fx.n_genes {
            if !ties.contains(&g) {
                assert_eq!(
                    r.highly_variable_rank[g], sel.highly_variable_rank[g],
                    "{what}: rank of gene {g}"
                );
                assert_eq!(
                    r.highly_variable_nbatches[g], sel.highly_variable_nbatches[g],
                    "{what}: nbatches of gene {g}"
                );
            }
        }
        tie_differences += assert_selection_up_to_ties(&what, &r, &sel.highly_variable);
        if sel.n_top_genes >= fx.n_genes {
            assert_eq!(
                r.selected,
                (0..fx.n_genes).collect::<Vec<_>>(),
                "{what}: n_top > genes keeps all"
            );
        }
    }
    eprintln!(
        "{name}: max relative difference of normalized variances {worst_norm:e}; {tie_differences} selection differences, all inside ties"
    );
}

#[test]
fn scicar_a549_matches_scanpy() {
    check_dataset("scicar_a549");
}

#[test]
fn bmmc_matches_scanpy() {
    check_dataset("bmmc_multiome_starter");
}

#[test]
fn bmmc_by_batch_matches_scanpy() {
    check_dataset("bmmc_multiome_starter_batch");
}

#[test]
fn loess_matches_skmisc_on_both_surfaces() {
    for name in [
        "scicar_a549",
        "bmmc_multiome_starter",
        "bmmc_multiome_starter_batch",
    ] {
        let fx = fixture(name);
        for b in &fx.batches {
            let x: Vec<f64> = b.loess_genes.iter().map(|&g| b.means[g].log10()).collect();
            let y: Vec<f64> = b
                .loess_genes
                .iter()
                .map(|&g| b.variances[g].log10())
                .collect();
            for (surface, expected) in [
                (LoessSurface::Interpolate, &b.loess_interpolate),
                (LoessSurface::Direct, &b.loess_direct),
            ] {
                let fitted = hvg::loess(&x, &y, fx.span, surface).unwrap();
                let (err, i) = max_rel(&fitted, expected, 1.0);
                eprintln!(
                    "{name} batch {:?} {surface:?}: max difference {err:e}",
                    b.batch
                );
                assert!(
                    err <= LOESS_TOL,
                    "{name} {surface:?}: {} vs skmisc {} at {i} ({err:e})",
                    fitted[i],
                    expected[i]
                );
            }
        }
    }
}

#[test]
fn loess_reproduces_a_quadratic() {
    // irregular x with ties, an exact quadratic: every local quadratic fit is exact and
    // cubic Hermite interpolation of exact values and slopes reproduces it
    let x: Vec<f64> = (0..300)
        .map(|i| {
            let t = f64::from(i % 250);
            (t * 0.37).sin() * 2.0 + t * 0.05
        })
        .collect();
    let y: Vec<f64> = x.iter().map(|x| 1.5 - 0.7 * x + 0.3 * x * x).collect();
    for span in [0.1, 0.3, 0.75, 1.5] {
        for surface in [LoessSurface::Interpolate, LoessSurface::Direct] {
            let fitted = hvg::loess(&x, &y, span, surface).unwrap();
            let err = fitted
                .iter()
                .zip(&y)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-10, "span {span} {surface:?}: {err:e}");
        }
    }
}

/// A dense-ish matrix of small counts where every gene varies.
fn toy(n_cells: usize, n_genes: usize) -> Csr {
    let mut e = Vec::new();
    for c in 0..n_cells {
        for g in 0..n_genes {
            let v = ((c * 7 + g * 13 + c * g) % (g % 5 + 3)) as f32;
            if v > 0.0 {
                e.push((c, g, v * (1 + g % 4) as f32));
            }
        }
    }
    csr(n_cells, n_genes, &e)
}

fn is_invalid(r: Result<HvgResult, DataError>, needle: &str) {
    match r {
        Err(e) => assert!(e.to_string().contains(needle), "`{e}` lacks `{needle}`"),
        Ok(_) => panic!("accepted; expected an error about `{needle}`"),
    }
}

#[test]
fn bad_input_is_an_error() {
    let m = toy(30, 40);
    assert!(hvg::seurat_v3(&m, 10, 0.3, None).is_ok());
    is_invalid(hvg::seurat_v3(&csr(0, 40, &[]), 10, 0.3, None), "empty");
    is_invalid(hvg::seurat_v3(&csr(30, 0, &[]), 10, 0.3, None), "empty");
    is_invalid(hvg::seurat_v3(&m, 0, 0.3, None), "n_top_genes");
    for span in [0.0, -0.3, f64::NAN, f64::INFINITY] {
        is_invalid(hvg::seurat_v3(&m, 10, span, None), "span");
    }
    let mut bad = m.clone();
    bad.values_mut()[5] = f32::NAN;
    is_invalid(hvg::seurat_v3(&bad, 10, 0.3, None), "NaN");
    bad.values_mut()[5] = -1.0;
    is_invalid(hvg::seurat_v3(&bad, 10, 0.3, None), "non-negative");
    is_invalid(
        hvg::seurat_v3(&m, 10, 0.3, Some(&[0; 29])),
        "29 batch labels",
    );
    let mut one = vec![0u32; 30];
    one[3] = 7;
    is_invalid(
        hvg::seurat_v3(&m, 10, 0.3, Some(&one)),
        "batch 7 has 1 cell",
    );
    // 10 varying genes: span 0.3 leaves 3 neighbours, too few for a quadratic
    is_invalid(hvg::seurat_v3(&toy(30, 10), 5, 0.3, None), "at least 4");
    assert!(hvg::seurat_v3(&toy(30, 10), 5, 0.9, None).is_ok());
    assert!(hvg::loess(&[1.0, 2.0], &[1.0], 0.5, LoessSurface::Direct).is_err());
    assert!(hvg::loess(&[1.0; 10], &[1.0; 10], 0.5, LoessSurface::Direct).is_err());
}

#[test]
fn constant_genes_have_zero_normalized_variance() {
    let mut e = Vec::new();
    let m = toy(30, 40);
    for (r, c, v) in m.triplet_iter() {
        if c != 3 && c != 4 {
            e.push((r, c, *v));
        }
    }
    // gene 3 is all zero, gene 4 is 2 everywhere
    e.extend((0..30).map(|c| (c, 4, 2.0)));
    let r = hvg::seurat_v3(&csr(30, 40, &e), 40, 0.3, None).unwrap();
    let constant = r.variances.iter().filter(|v| **v == 0.0).count();
    for g in [3, 4] {
        assert_eq!(r.variances[g], 0.0);
        assert_eq!(r.batches[0].log10_expected_variances[g], 0.0);
        assert!(r.variances_norm[g].abs() < 1e-12, "{}", r.variances_norm[g]);
        // constant genes rank below every varying gene
        assert!(r.batches[0].ranks[g] >= 40 - constant);
    }
    for g in (0..40).filter(|&g| r.variances[g] > 0.0) {
        assert!(
            r.variances_norm[g] > 1e-9,
            "gene {g}: {}",
            r.variances_norm[g]
        );
    }
    assert_eq!(r.selected.len(), 40);
    // more genes than exist: all of them, as scanpy
    let r = hvg::seurat_v3(&csr(30, 40, &e), 2000, 0.3, None).unwrap();
    assert_eq!(r.selected, (0..40).collect::<Vec<_>>());
    assert!(r.highly_variable_rank.iter().all(Option::is_some));
}

#[test]
fn batches_rank_by_median_or_by_count() {
    let m = toy(60, 50);
    let batches: Vec<u32> = (0..60).map(|c| [5, 9, 2][c % 3]).collect();
    let v3 = hvg::seurat_v3_with_flavor(&m, 10, 0.5, Some(&batches), HvgFlavor::SeuratV3).unwrap();
    let paper =
        hvg::seurat_v3_with_flavor(&m, 10, 0.5, Some(&batches), HvgFlavor::SeuratV3Paper).unwrap();
    assert_eq!(
        v3.batches.iter().map(|b| b.code).collect::<Vec<_>>(),
        vec![2, 5, 9]
    );
    assert_eq!(v3.variances_norm, paper.variances_norm);
    for r in [&v3, &paper] {
        assert_eq!(r.selected.len(), 10);
        for g in 0..50 {
            let top: Vec<usize> = r
                .batches
                .iter()
                .map(|b| b.ranks[g])
                .filter(|&k| k < 10)
                .collect();
            assert_eq!(r.highly_variable_nbatches[g], top.len());
            assert_eq!(r.highly_variable_rank[g].is_some(), !top.is_empty());
        }
    }
    // paper: every selected gene is in at least as many batches' tops as any unselected one
    let min_sel = paper
        .selected
        .iter()
        .map(|&g| paper.highly_variable_nbatches[g])
        .min()
        .unwrap();
    let max_unsel = (0..50)
        .filter(|g| !paper.highly_variable[*g])
        .map(|g| paper.highly_variable_nbatches[g])
        .max()
        .unwrap();
    assert!(min_sel >= max_unsel);
    // seurat_v3: selected genes have the smallest median ranks
    let worst_sel = v3
        .selected
        .iter()
        .map(|&g| v3.highly_variable_rank[g].unwrap())
        .fold(0.0, f64::max);
    for g in (0..50).filter(|g| !v3.highly_variable[*g]) {
        if let Some(r) = v3.highly_variable_rank[g] {
            assert!(r >= worst_sel);
        }
    }
}

#[test]
fn config_defaults_and_unknown_keys() {
    let c: HvgConfig = toml::from_str("").unwrap();
    assert_eq!(c, HvgConfig::default());
    assert_eq!(
        (c.n_top_genes, c.span, c.batch_column, c.flavor),
        (2000, 0.3, None, HvgFlavor::SeuratV3)
    );
    let c: HvgConfig =
        toml::from_str("n_top_genes = 500\nbatch_column = \"batch\"\nflavor = \"seurat_v3_paper\"")
            .unwrap();
    assert_eq!(
        (c.n_top_genes, c.batch_column.as_deref(), c.flavor),
        (500, Some("batch"), HvgFlavor::SeuratV3Paper)
    );
    assert!(toml::from_str::<HvgConfig>("n_top = 5").is_err());
}

#[test]
fn select_genes_reads_the_batch_column() {
    let d = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let config = HvgConfig {
        n_top_genes: 150,
        batch_column: Some("batch".into()),
        ..HvgConfig::default()
    };
    let r = hvg::select_genes(&d, &config).unwrap();
    assert_eq!(r.batches.len(), 2);
    assert_eq!(r.selected.len(), 150);
    let missing = HvgConfig {
        batch_column: Some("no_such_column".into()),
        ..HvgConfig::default()
    };
    assert!(hvg::select_genes(&d, &missing).is_err());
}

fn permuted(m: &Csr, perm: &[usize]) -> Csr {
    let mut e = Vec::new();
    for (r, c, v) in m.triplet_iter() {
        e.push((perm[r], c, *v));
    }
    csr(m.nrows(), m.ncols(), &e)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn permuting_cells_changes_nothing(
        (n_cells, n_genes, values, keys, batched) in (8usize..40, 14usize..40).prop_flat_map(|(c, g)| (
            Just(c),
            Just(g),
            proptest::collection::vec(0u8..12, c * g),
            proptest::collection::vec(any::<u32>(), c),
            any::<bool>(),
        )),
        n_top in 1usize..30,
    ) {
        let mut e = Vec::new();
        for c in 0..n_cells {
            for g in 0..n_genes {
                let v = values[c * n_genes + g];
                // sparse: about half the entries are zero
                if v >= 6 {
                    e.push((c, g, f32::from(v - 5)));
                }
            }
        }
        let m = csr(n_cells, n_genes, &e);
        let batches: Vec<u32> = (0..n_cells).map(|c| (c % 2) as u32).collect();
        let batches = batched.then_some(batches.as_slice());
        let base = hvg::seurat_v3(&m, n_top, 0.5, batches);
        prop_assume!(base.is_ok());
        let base = base.unwrap();
        // a permutation from the random keys
        let mut order: Vec<usize> = (0..n_cells).collect();
        order.sort_by_key(|&i| (keys[i], i));
        let mut perm = vec![0; n_cells];
        for (new, &old) in order.iter().enumerate() {
            perm[old] = new;
        }
        let pm = permuted(&m, &perm);
        let pb: Option<Vec<u32>> = batches.map(|b| {
            let mut out = vec![0; n_cells];
            for (old, &new) in perm.iter().enumerate() {
                out[new] = b[old];
            }
            out
        });
        let other = hvg::seurat_v3(&pm, n_top, 0.5, pb.as_deref()).unwrap();
        let close = |a: &[f64], b: &[f64]| max_rel(a, b, 1e-12).0 <= REL_TOL;
        prop_assert!(close(&base.means, &other.means));
        prop_assert!(close(&base.variances, &other.variances));
        prop_assert!(close(&base.variances_norm, &other.variances_norm));
        for (a, b) in base.batches.iter().zip(&other.batches) {
            prop_assert!(close(&a.variances_norm, &b.variances_norm));
            prop_assert!(max_rel(&a.log10_expected_variances, &b.log10_expected_variances, 1.0).0 <= 1e-10);
        }
        assert_selection_up_to_ties("permuted", &base, &other.highly_variable);
    }
}
