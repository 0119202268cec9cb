//! The simulator: streamed files equal the in-memory simulation, calibration reproduces
//! the real sample's depths and sparsity, cell types and gene-peak links are learnable,
//! NB sampling is right, and bad input fails loudly without partial output.

use std::path::Path;

use crossomics_data::plain;
use crossomics_data::preprocess::{cells_per_feature, library_sizes};
use crossomics_data::simulate::{
    AtacModel, Calibration, NegativeBinomial, Simulator, SimulatorParams, WriteOptions, simulate,
    simulate_to_dir,
};
use crossomics_data::{Csr, PairedDataset};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_distr::Distribution;

fn calibration() -> Calibration {
    Calibration::bundled().unwrap()
}

fn small(seed: u64) -> SimulatorParams {
    SimulatorParams {
        n_cells: 300,
        n_genes: 150,
        n_peaks: 400,
        n_types: 4,
        n_batches: 3,
        seed,
        ..Default::default()
    }
}

fn assert_same(a: &PairedDataset, b: &PairedDataset) {
    assert_eq!(a.rna, b.rna);
    assert_eq!(a.atac, b.atac);
    assert_eq!(a.cells, b.cells);
    assert_eq!(a.genes, b.genes);
    assert_eq!(a.peaks, b.peaks);
}

fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        (v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0)).sqrt(),
    )
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let (ma, sa) = mean_sd(a);
    let (mb, sb) = mean_sd(b);
    let n = a.len() as f64;
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / ((n - 1.0) * sa * sb)
}

fn log_libs(m: &Csr) -> Vec<f64> {
    library_sizes(m)
        .into_iter()
        .filter(|l| *l > 0.0)
        .map(f64::ln)
        .collect()
}

fn nonzero_fraction(m: &Csr) -> Vec<f64> {
    cells_per_feature(m)
        .into_iter()
        .map(|c| c as f64 / m.nrows() as f64)
        .collect()
}

fn binarized(m: &Csr) -> Csr {
    crossomics_data::preprocess::binarize(m)
}

#[test]
fn streamed_files_equal_the_in_memory_simulation_for_any_chunking() {
    let cal = calibration();
    for (params, chunkings) in [
        (small(11), vec![(1, 1), (64, 3), (1000, 2)]),
        (
            SimulatorParams {
                atac_model: AtacModel::Poisson,
                ..small(12)
            },
            vec![(7, 2)],
        ),
    ] {
        let sim = Simulator::new(&params, &cal).unwrap();
        let memory = sim.dataset().unwrap();
        assert!(memory.rna.nnz() > 1000 && memory.atac.nnz() > 1000);
        // a cell drawn on its own is the same cell
        let cell = sim.cell(17);
        let row = memory.rna.row(17);
        let entries: Vec<(u32, u32)> = row
            .col_indices()
            .iter()
            .zip(row.values())
            .map(|(c, v)| (*c as u32, *v as u32))
            .collect();
        assert_eq!(cell.rna, entries);
        assert_eq!(cell.atac.len(), memory.atac.row(17).nnz());
        let types = memory.cells.column("cell_type").unwrap();
        assert_eq!(sim.type_names()[cell.draw.cell_type], types[17]);
        for (chunk_cells, threads) in chunkings {
            let dir = tempfile::tempdir().unwrap();
            let out = dir.path().join("sim");
            let options = WriteOptions {
                chunk_cells,
                threads,
                compression: 1,
            };
            let summary = sim.write_dir(&out, &options).unwrap();
            assert_eq!(summary.rna_nnz, memory.rna.nnz() as u64);
            assert_eq!(summary.atac_nnz, memory.atac.nnz() as u64);
            let read = plain::read_dir(&out, &crossomics_limits::Limits::default()).unwrap();
            assert_same(&read, &memory);
            // only the finished files, no temporaries
            let mut names: Vec<String> = std::fs::read_dir(&out)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                [
                    "atac_counts.mtx.gz",
                    "cells.tsv",
                    "genes.tsv",
                    "links.tsv",
                    "peaks.tsv",
                    "rna_counts.mtx.gz"
                ]
            );
        }
        if params.atac_model == AtacModel::Poisson {
            assert!(memory.atac.values().iter().any(|v| *v > 1.0));
        } else {
            assert!(memory.atac.values().iter().all(|v| *v == 1.0));
        }
    }
    // the free functions agree, and a smaller simulation is a prefix of a larger one
    let dir = tempfile::tempdir().unwrap();
    simulate_to_dir(&small(11), &cal, dir.path()).unwrap();
    let full = simulate(&small(11), &cal).unwrap();
    assert_same(
        &plain::read_dir(dir.path(), &crossomics_limits::Limits::default()).unwrap(),
        &full,
    );
    let prefix = simulate(
        &SimulatorParams {
            n_cells: 120,
            ..small(11)
        },
        &cal,
    )
    .unwrap();
    let first: Vec<usize> = (0..120).collect();
    assert_same(&prefix, &full.subset_cells(&first));
    // another seed is another dataset
    assert_ne!(simulate(&small(13), &cal).unwrap().rna, full.rna);
}

/// Simulating the sample's own shape (600 genes, 600 peaks, its 21 type frequencies)
/// reproduces its depth distribution and per-feature sparsity.
#[test]
fn calibrated_simulation_looks_like_the_bundled_sample() {
    let real = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let cal = Calibration::fit(&real, Some("cell_type")).unwrap();
    let params = SimulatorParams {
        n_cells: 2000,
        n_genes: 600,
        n_peaks: 600,
        n_types: 21,
        n_batches: 2,
        seed: 5,
        ..Default::default()
    };
    let sim = simulate(&params, &cal).unwrap();
    println!(
        "{:?} {:?} rho {}",
        cal.rna_library, cal.atac_library, cal.library_correlation
    );
    println!("{:?} {:?}", cal.rna_type_effect, cal.atac_type_effect);

    // Library sizes on the log scale. The real mean and sd over 500 cells have standard
    // errors of about sd/sqrt(500) = 0.02 and sd/sqrt(1000) = 0.015; NB/Bernoulli noise
    // adds a little variance to the simulated depths, and the real distribution is not
    // exactly log-normal: 0.1 on the mean and 0.1 on the sd are several standard errors.
    // Measured: RNA 6.010 / 0.661 real vs 5.976 / 0.674 simulated, ATAC (open peaks)
    // 4.277 / 0.655 vs 4.245 / 0.643.
    for (what, real_m, sim_m) in [
        ("RNA", &real.rna, &sim.rna),
        // Bernoulli ATAC: compare open peaks per cell with the real binarized matrix
        ("ATAC", &binarized(&real.atac), &sim.atac),
    ] {
        let (rm, rs) = mean_sd(&log_libs(real_m));
        let (sm, ss) = mean_sd(&log_libs(sim_m));
        println!("{what}: real {rm:.3} {rs:.3} sim {sm:.3} {ss:.3}");
        assert!(
            (rm - sm).abs() < 0.1,
            "{what} log-library mean {sm} vs {rm}"
        );
        assert!((rs - ss).abs() < 0.1, "{what} log-library sd {ss} vs {rs}");
    }

    // Per-feature sparsity, feature by feature (the features are simulated in the
    // calibration's order when their number is the same). The real fractions carry a
    // binomial error of up to 0.022 (500 cells, mean absolute error about 0.013 over the
    // features), and every simulated feature draws its own random type and batch effects,
    // which move its fraction a little (P(X > 0) is concave in the mean). Measured: mean
    // absolute difference 0.025 (RNA) / 0.007 (ATAC), correlation 0.98 / 0.997; the
    // bounds 0.035 and 0.95 leave room for that noise but not for a broken fit (without
    // the sparsity-matched type effects RNA was 10% too sparse, mad 0.044).
    for (what, real_m, sim_m) in [
        ("RNA", &real.rna, &sim.rna),
        ("ATAC", &real.atac, &sim.atac),
    ] {
        let r = nonzero_fraction(real_m);
        let s = nonzero_fraction(sim_m);
        let mad = r.iter().zip(&s).map(|(a, b)| (a - b).abs()).sum::<f64>() / r.len() as f64;
        let corr = pearson(&r, &s);
        println!(
            "{what}: sparsity mad {mad:.4} corr {corr:.4} mean real {:.4} sim {:.4}",
            mean_sd(&r).0,
            mean_sd(&s).0
        );
        assert!(
            mad < 0.035,
            "{what} per-feature non-zero fraction differs by {mad}"
        );
        assert!(
            corr > 0.95,
            "{what} per-feature non-zero fraction correlation {corr}"
        );
    }
}

/// Per-type mean profiles of log-normalized RNA: (centroids, per-cell rows).
fn log_normalized(m: &Csr) -> Vec<Vec<f64>> {
    let norm = crossomics_data::preprocess::normalize_log1p(m, Some(1e4)).unwrap();
    let dense = crossomics_data::preprocess::to_dense(&norm);
    dense
        .rows()
        .into_iter()
        .map(|r| r.iter().map(|v| f64::from(*v)).collect())
        .collect()
}

/// Nearest-centroid accuracy: centroids from the even cells, scored on the odd cells.
fn centroid_accuracy(rows: &[Vec<f64>], labels: &[usize], k: usize) -> f64 {
    let d = rows[0].len();
    let mut centroids = vec![vec![0.0; d]; k];
    let mut counts = vec![0.0f64; k];
    for (i, row) in rows.iter().enumerate().step_by(2) {
        counts[labels[i]] += 1.0;
        for (c, v) in centroids[labels[i]].iter_mut().zip(row) {
            *c += v;
        }
    }
    for (c, n) in centroids.iter_mut().zip(&counts) {
        c.iter_mut().for_each(|v| *v /= n.max(1.0));
    }
    let (mut right, mut total) = (0, 0);
    for (i, row) in rows.iter().enumerate().skip(1).step_by(2) {
        let best = (0..k)
            .filter(|&t| counts[t] > 0.0)
            .min_by(|&a, &b| {
                let da: f64 = row
                    .iter()
                    .zip(&centroids[a])
                    .map(|(x, c)| (x - c).powi(2))
                    .sum();
                let db: f64 = row
                    .iter()
                    .zip(&centroids[b])
                    .map(|(x, c)| (x - c).powi(2))
                    .sum();
                da.total_cmp(&db)
            })
            .unwrap();
        right += usize::from(best == labels[i]);
        total += 1;
    }
    right as f64 / total as f64
}

/// The simulated types are in the counts: nearest-centroid classification of held-out
/// cells from log-normalized RNA recovers the true types far better than it recovers
/// the same labels shuffled (which carry no information, so sit near the majority rate).
#[test]
fn cell_types_are_recoverable_from_rna() {
    let params = SimulatorParams {
        n_cells: 1200,
        n_genes: 400,
        n_peaks: 200,
        n_types: 6,
        n_batches: 2,
        seed: 21,
        ..Default::default()
    };
    let data = simulate(&params, &calibration()).unwrap();
    let (labels, names) = data.cells.codes("cell_type").unwrap();
    assert_eq!(names.len(), 6, "every type is drawn in 1200 cells");
    let rows = log_normalized(&data.rna);
    let accuracy = centroid_accuracy(&rows, &labels, 6);
    let mut shuffled = labels.clone();
    shuffled.shuffle(&mut ChaCha8Rng::seed_from_u64(0));
    let chance = centroid_accuracy(&rows, &shuffled, 6);
    println!("type accuracy {accuracy:.3}, shuffled {chance:.3}");
    assert!(
        accuracy > 0.9,
        "true types recovered for {accuracy} of cells"
    );
    assert!(
        chance < 0.5,
        "shuffled labels recovered for {chance} of cells"
    );
}

/// Sample mean, variance and P(0) of the public NB sampler (the simulator's RNA law)
/// against mu, mu + mu^2 / theta and (theta / (theta + mu))^theta. The tolerance on
/// the variance is five standard errors estimated from 20 independent batches, since
/// the variance of a sample variance depends on the NB's fourth moment.
#[test]
fn negative_binomial_matches_mean_and_variance() {
    let mut rng = ChaCha8Rng::seed_from_u64(99);
    for (mu, theta) in [
        (0.05, 0.2),
        (0.8, 2.0),
        (5.0, 1.0),
        (60.0, 8.0),
        (400.0, 0.7),
    ] {
        let nb = NegativeBinomial::new(mu, theta).unwrap();
        assert_eq!(nb.variance(), mu + mu * mu / theta);
        let (batches, per) = (20, 10_000);
        let mut means = Vec::new();
        let mut vars = Vec::new();
        let mut zeros = 0usize;
        for _ in 0..batches {
            let xs: Vec<f64> = (0..per).map(|_| nb.sample(&mut rng) as f64).collect();
            zeros += xs.iter().filter(|x| **x == 0.0).count();
            let (m, s) = mean_sd(&xs);
            means.push(m);
            vars.push(s * s);
        }
        let (m, m_sd) = mean_sd(&means);
        let (v, v_sd) = mean_sd(&vars);
        let se = |sd: f64| sd / (batches as f64).sqrt();
        assert!(
            (m - mu).abs() < 5.0 * se(m_sd),
            "NB({mu}, {theta}): mean {m} ± {}",
            se(m_sd)
        );
        let want_v = nb.variance();
        assert!(
            (v - want_v).abs() < 5.0 * se(v_sd),
            "NB({mu}, {theta}): variance {v} vs {want_v} ± {}",
            se(v_sd)
        );
        let n = (batches * per) as f64;
        let p0 = nb.p_zero();
        let z = zeros as f64 / n;
        assert!(
            (z - p0).abs() < 5.0 * (p0 * (1.0 - p0) / n).sqrt() + 1e-12,
            "NB({mu}, {theta}): P(0) {z} vs {p0}"
        );
    }
    assert!(NegativeBinomial::new(1.0, 0.0).is_err());
    assert!(NegativeBinomial::new(-1.0, 1.0).is_err());
}

/// A linked peak's accessibility follows its gene's expression across cell types:
/// per-type mean expression and per-type open rate correlate strongly for linked pairs
/// whose gene is a marker, and not for the same peaks paired with other marker genes.
#[test]
fn linked_peaks_follow_their_gene_across_types() {
    let params = SimulatorParams {
        n_cells: 3000,
        n_genes: 300,
        n_peaks: 1500,
        n_types: 8,
        n_batches: 2,
        link_fraction: 0.5,
        seed: 8,
        ..Default::default()
    };
    let sim = Simulator::new(&params, &calibration()).unwrap();
    let data = sim.dataset().unwrap();
    let (labels, _) = data.cells.codes("cell_type").unwrap();
    let libs = library_sizes(&data.rna);
    let k = params.n_types;
    let mut expr = vec![vec![0.0; params.n_genes]; k];
    let mut open = vec![vec![0.0; params.n_peaks]; k];
    let mut n = vec![0.0; k];
    for i in 0..data.n_cells() {
        let t = labels[i];
        n[t] += 1.0;
        let row = data.rna.row(i);
        for (g, v) in row.col_indices().iter().zip(row.values()) {
            expr[t][*g] += f64::from(*v) / libs[i].max(1.0);
        }
        for j in data.atac.row(i).col_indices() {
            open[t][*j] += 1.0;
        }
    }
    let per_type =
        |m: &Vec<Vec<f64>>, f: usize| -> Vec<f64> { (0..k).map(|t| m[t][f] / n[t]).collect() };
    // linked pairs whose gene differs between types
    let markers: Vec<(usize, usize)> = sim
        .links()
        .iter()
        .filter(|l| {
            let lfc: Vec<f64> = (0..k)
                .map(|t| f64::from(sim.gene_log_fold_changes(t)[l.gene]))
                .collect();
            mean_sd(&lfc).1 > 0.5
        })
        .map(|l| (l.gene, l.peak))
        .collect();
    assert!(markers.len() >= 30, "{} marker links", markers.len());
    let corr = |pairs: &[(usize, usize)]| -> f64 {
        let c: Vec<f64> = pairs
            .iter()
            .map(|&(g, j)| pearson(&per_type(&expr, g), &per_type(&open, j)))
            .filter(|c| c.is_finite())
            .collect();
        mean_sd(&c).0
    };
    let linked = corr(&markers);
    let rotated: Vec<(usize, usize)> = markers
        .iter()
        .zip(markers.iter().cycle().skip(markers.len() / 2))
        .map(|(&(g, _), &(_, j))| (g, j))
        .collect();
    let unlinked = corr(&rotated);
    println!(
        "{} marker links: mean correlation {linked:.3}, mismatched {unlinked:.3}",
        markers.len()
    );
    assert!(linked > 0.7, "linked correlation {linked}");
    assert!(unlinked.abs() < 0.25, "mismatched correlation {unlinked}");
    // links are local: the nearest gene on the peak's chromosome
    for l in sim.links() {
        let (chrom, tss) = sim.gene_position(l.gene);
        let peak = &sim.peaks()[l.peak];
        assert_eq!(chrom, peak.chrom);
        assert_eq!(l.distance, tss.abs_diff((peak.start + peak.end) / 2));
    }
}

#[test]
fn bad_parameters_are_errors_naming_the_parameter() {
    let cal = calibration();
    let base = small(1);
    let cases = [
        (
            SimulatorParams {
                n_cells: 0,
                ..base.clone()
            },
            "n_cells",
        ),
        (
            SimulatorParams {
                n_genes: 0,
                ..base.clone()
            },
            "n_genes",
        ),
        (
            SimulatorParams {
                n_peaks: 0,
                ..base.clone()
            },
            "n_peaks",
        ),
        (
            SimulatorParams {
                n_types: 301,
                ..base.clone()
            },
            "n_types",
        ),
        (
            SimulatorParams {
                n_batches: 0,
                ..base.clone()
            },
            "n_batches",
        ),
        (
            SimulatorParams {
                batch_effect: -0.1,
                ..base.clone()
            },
            "batch_effect",
        ),
        (
            SimulatorParams {
                type_effect: f64::NAN,
                ..base.clone()
            },
            "type_effect",
        ),
        (
            SimulatorParams {
                depth_sd: Some(-1.0),
                ..base.clone()
            },
            "depth_sd",
        ),
        (
            SimulatorParams {
                link_fraction: 1.5,
                ..base.clone()
            },
            "link_fraction",
        ),
        (
            SimulatorParams {
                link_strength: -2.0,
                ..base.clone()
            },
            "link_strength",
        ),
        (
            SimulatorParams {
                chromosomes: vec![],
                ..base.clone()
            },
            "chromosomes",
        ),
        (
            SimulatorParams {
                chromosomes: vec!["chr1".into(), "chr 2".into()],
                ..base.clone()
            },
            "chromosomes",
        ),
        (
            SimulatorParams {
                gene_prefix: "a b".into(),
                ..base.clone()
            },
            "gene_prefix",
        ),
    ];
    for (params, name) in cases {
        let msg = simulate(&params, &cal).unwrap_err().to_string();
        assert!(msg.contains(&format!("`{name}`")), "{name}: {msg}");
    }
    // unknown keys in a config are rejected; missing ones take defaults
    let parsed: SimulatorParams = toml::from_str("n_cells = 5\natac_model = \"poisson\"").unwrap();
    assert_eq!((parsed.n_cells, parsed.atac_model), (5, AtacModel::Poisson));
    assert!(toml::from_str::<SimulatorParams>("n_cels = 5").is_err());
    let dir = tempfile::tempdir().unwrap();
    let options = WriteOptions {
        chunk_cells: 0,
        ..Default::default()
    };
    let sim = Simulator::new(&base, &cal).unwrap();
    let msg = sim.write_dir(dir.path(), &options).unwrap_err().to_string();
    assert!(msg.contains("chunk_cells"), "{msg}");
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn unwritable_output_is_an_error_naming_the_path_and_leaves_nothing() {
    let cal = calibration();
    let params = small(2);
    let sim = Simulator::new(&params, &cal).unwrap();
    let options = WriteOptions {
        chunk_cells: 50,
        threads: 2,
        compression: 1,
    };

    // a folder below a regular file cannot be created
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("a_file");
    std::fs::write(&file, "x").unwrap();
    let target = file.join("out");
    let msg = sim.write_dir(&target, &options).unwrap_err().to_string();
    assert!(msg.contains(&target.display().to_string()), "{msg}");
    assert_eq!(entries(tmp.path()), ["a_file"]);

    // a failure at the very end (a folder where cells.tsv must go) removes every file
    let out = tmp.path().join("blocked");
    std::fs::create_dir_all(out.join("cells.tsv")).unwrap();
    let msg = sim.write_dir(&out, &options).unwrap_err().to_string();
    assert!(
        msg.contains(&out.join("cells.tsv").display().to_string()),
        "{msg}"
    );
    assert_eq!(entries(&out), ["cells.tsv"]);

    // a stale uncompressed matrix would shadow the new one when read
    let out = tmp.path().join("stale");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("rna_counts.mtx"), "old").unwrap();
    let msg = sim.write_dir(&out, &options).unwrap_err().to_string();
    assert!(msg.contains("rna_counts.mtx"), "{msg}");
    assert_eq!(entries(&out), ["rna_counts.mtx"]);

    // and a writable folder works, overwriting an earlier simulation
    let out = tmp.path().join("ok");
    sim.write_dir(&out, &options).unwrap();
    Simulator::new(&small(3), &cal)
        .unwrap()
        .write_dir(&out, &options)
        .unwrap();
    assert_same(
        &plain::read_dir(&out, &crossomics_limits::Limits::default()).unwrap(),
        &simulate(&small(3), &cal).unwrap(),
    );
}

#[test]
fn calibration_round_trips_and_is_validated() {
    let real = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let cal = Calibration::fit(&real, Some("cell_type")).unwrap();
    assert_eq!(cal.gene_relative_mean.len(), 600);
    assert_eq!(cal.peak_rate.len(), 600);
    assert_eq!(cal.type_proportions.len(), 21);
    assert!((cal.gene_relative_mean.iter().sum::<f64>() - 1.0).abs() < 1e-9);
    let text = toml::to_string(&cal).unwrap();
    let back: Calibration = toml::from_str(&text).unwrap();
    back.validate().unwrap();
    assert_eq!(
        simulate(&small(4), &back).unwrap().rna,
        simulate(&small(4), &cal).unwrap().rna
    );
    let mut broken = cal.clone();
    broken.gene_dispersion.pop();
    let msg = broken.validate().unwrap_err().to_string();
    assert!(msg.contains("gene_dispersion"), "{msg}");
    let mut broken = cal.clone();
    broken.peak_rate[3] = f64::NAN;
    assert!(
        simulate(&small(4), &broken)
            .unwrap_err()
            .to_string()
            .contains("peak_rate")
    );
    // without a type column there are no type proportions, and a missing column is named
    let untyped = Calibration::fit(&real, None).unwrap();
    assert!(untyped.type_proportions.is_empty());
    let msg = Calibration::fit(&real, Some("celltype"))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("celltype"), "{msg}");
}

/// More genes and peaks than the calibration has: the fitted per-feature parameters are
/// resampled, so the distribution of per-feature sparsity is kept, and the library sizes
/// grow with the number of features (the per-feature depth is what is calibrated).
#[test]
fn resampled_features_keep_the_sparsity_distribution() {
    let real = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    let cal = Calibration::fit(&real, Some("cell_type")).unwrap();
    let params = SimulatorParams {
        n_cells: 600,
        n_genes: 2400,
        n_peaks: 3000,
        n_types: 10,
        seed: 6,
        ..Default::default()
    };
    let sim = simulate(&params, &cal).unwrap();
    for (what, real_m, sim_m) in [
        ("RNA", &real.rna, &sim.rna),
        ("ATAC", &real.atac, &sim.atac),
    ] {
        let r = mean_sd(&nonzero_fraction(real_m)).0;
        let s = mean_sd(&nonzero_fraction(sim_m)).0;
        println!("{what}: mean sparsity real {r:.4} sim {s:.4}");
        assert!(
            (r - s).abs() < 0.15 * r,
            "{what}: mean non-zero fraction {s} vs {r}"
        );
    }
    let (real_rna, _) = mean_sd(&log_libs(&real.rna));
    let (sim_rna, _) = mean_sd(&log_libs(&sim.rna));
    // 4x the genes: about ln 4 = 1.39 more on the log scale
    assert!(
        (sim_rna - real_rna - 4f64.ln()).abs() < 0.2,
        "{sim_rna} vs {real_rna}"
    );
    assert!(sim.genes[0] == "SIMG00001" && sim.genes[2399] == "SIMG02400");
    assert_eq!(sim.peaks[0].chrom, "chr1");
    assert!(sim.peaks.iter().any(|p| p.chrom == "chrX"));
    assert!(
        sim.peaks
            .windows(2)
            .all(|w| w[0].chrom != w[1].chrom || w[0].end <= w[1].start)
    );
}

/// Timing at scale (release): `cargo test --release -p crossomics-data --test simulate
/// -- --ignored --nocapture`. SIM_CELLS / SIM_THREADS / SIM_LEVEL (gzip) / SIM_DIR
/// override the defaults.
#[test]
#[ignore]
fn stream_at_scale() {
    let env = |k: &str, d: usize| {
        std::env::var(k)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(d)
    };
    let params = SimulatorParams {
        n_cells: env("SIM_CELLS", 100_000),
        n_genes: 20_000,
        n_peaks: 100_000,
        n_types: 20,
        n_batches: 4,
        seed: 1,
        ..Default::default()
    };
    let cal = calibration();
    let start = std::time::Instant::now();
    let sim = Simulator::new(&params, &cal).unwrap();
    let built = start.elapsed();
    let tmp = tempfile::tempdir().unwrap();
    let dir = std::env::var("SIM_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or(tmp.path().join("sim"));
    let options = WriteOptions {
        threads: env("SIM_THREADS", 1),
        compression: env("SIM_LEVEL", 1) as u32,
        ..Default::default()
    };
    let summary = sim.write_dir(&dir, &options).unwrap();
    let total = start.elapsed();
    println!(
        "{} cells x {} genes x {} peaks: model {:.1} s ({} MB), total {:.1} s with {} thread(s); \
         {} RNA + {} ATAC entries ({:.0} + {:.0} per cell), {:.2} GB written",
        params.n_cells,
        params.n_genes,
        params.n_peaks,
        built.as_secs_f64(),
        sim.model_bytes() >> 20,
        total.as_secs_f64(),
        options.threads,
        summary.rna_nnz,
        summary.atac_nnz,
        summary.rna_nnz as f64 / params.n_cells as f64,
        summary.atac_nnz as f64 / params.n_cells as f64,
        summary.bytes as f64 / 1e9
    );
}
