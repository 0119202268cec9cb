//! Applying a trained model to new single-modality data: gene matching (case, Ensembl ids
//! and versions), peak overlap (the sweep against brute force), genome builds, coverage
//! refusal, projection into the model's features, and CrossMP's regulatory potential and
//! gene activity against hand-computed and brute-force values.

mod common;

use std::path::{Path, PathBuf};

use common::{csr, dense, s};
use crossomics_data::annotation::{
    self, GeneLocus, Strand, gene_activity, parse_annotation, read_annotation, regulatory_potential,
};
use crossomics_data::pair::SingleModality;
use crossomics_data::transfer::{
    FeatureCoverage, GenomeBuild, Modality, ModelFeatures, PeakAggregation, Upload, check_build,
    match_genes, match_peaks, overlaps, parse_peaks, require_coverage, to_model_features,
};
use crossomics_data::{CellTable, DataError, Peak};
use nalgebra_sparse::CsrMatrix;
use proptest::prelude::*;

fn p(text: &str) -> Peak {
    Peak::parse(text).unwrap()
}

fn cells(n: usize) -> CellTable {
    CellTable::new((0..n).map(|i| format!("cell{i}")).collect())
}

fn upload<F>(source: &str, matrix: CsrMatrix<f32>, features: Vec<F>) -> SingleModality<F> {
    SingleModality {
        source: PathBuf::from(source),
        cells: cells(matrix.nrows()),
        matrix,
        features,
    }
}

// ---- peak overlap ----------------------------------------------------------------------

fn brute_force(model: &[Peak], input: &[Peak]) -> Vec<Vec<usize>> {
    model
        .iter()
        .map(|m| {
            (0..input.len())
                .filter(|&i| {
                    m.chrom == input[i].chrom && m.start < input[i].end && input[i].start < m.end
                })
                .collect()
        })
        .collect()
}

fn intervals(max: usize) -> impl Strategy<Value = Vec<Peak>> {
    // few chromosomes and a short span so that overlaps, nesting, shared starts/ends and
    // touching intervals are all common
    proptest::collection::vec(
        (
            prop::sample::select(vec!["chr1", "chr2", "chrX"]),
            0u64..300,
            1u64..80,
        ),
        0..max,
    )
    .prop_map(|v| {
        v.into_iter()
            .map(|(c, start, len)| Peak {
                chrom: c.to_string(),
                start,
                end: start + len,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_sweep_finds_exactly_the_overlapping_pairs(
        model in intervals(60),
        input in intervals(60),
    ) {
        let got = match_peaks(&model, &input);
        prop_assert_eq!(&got, &brute_force(&model, &input));
        for (m, hits) in model.iter().zip(&got) {
            for &i in hits {
                prop_assert!(overlaps(m, &input[i]));
            }
        }
    }
}

#[test]
fn chromosome_spellings_are_unified_for_overlap() {
    let model = [p("chr1-100-200"), p("chrX-100-200"), p("chrM-1-50")];
    let input = vec![
        Peak {
            chrom: "1".into(),
            start: 150,
            end: 160,
        },
        Peak {
            chrom: "x".into(),
            start: 0,
            end: 101,
        },
        Peak {
            chrom: "MT".into(),
            start: 40,
            end: 60,
        },
    ];
    assert_eq!(match_peaks(&model, &input), vec![vec![0], vec![1], vec![2]]);
}

#[test]
fn the_sweep_scales_to_a_genome_of_peaks() {
    // 200k model peaks against 200k shifted input peaks: quadratic would take minutes
    let model: Vec<Peak> = (0..200_000u64)
        .map(|i| Peak {
            chrom: format!("chr{}", 1 + i % 22),
            start: i * 1000,
            end: i * 1000 + 500,
        })
        .collect();
    let input: Vec<Peak> = model
        .iter()
        .map(|m| Peak {
            chrom: m.chrom.clone(),
            start: m.start + 250,
            end: m.end + 250,
        })
        .collect();
    let got = match_peaks(&model, &input);
    assert!(got.iter().enumerate().all(|(i, v)| v == &vec![i]));
}

// ---- genes -----------------------------------------------------------------------------

#[test]
fn genes_match_across_case_and_ensembl_versions() {
    let model = s(&[
        "ENSG00000141510.16",
        "ENSG00000153563",
        "cd4",
        "GAPDH",
        "NOPE",
    ]);
    let names = s(&["TP53", "CD8A", "CD4", "GAPDH"]);
    let ids = s(&[
        "ensg00000141510",
        "ENSG00000153563.17",
        "ENSG00000010610.10",
        "ENSG00000111640.15",
    ]);
    assert_eq!(
        match_genes(&model, &names, Some(&ids)),
        vec![Some(0), Some(1), Some(2), Some(3), None]
    );
    // the input named by versioned ids, the model by unversioned ones
    let model = s(&["ENSG00000141510", "ensg00000010610"]);
    let names = s(&["ENSG00000010610.10", "ENSG00000141510.16"]);
    assert_eq!(match_genes(&model, &names, None), vec![Some(1), Some(0)]);
    // symbols with dots are not versions
    assert_eq!(
        match_genes(&s(&["RP11-34P13"]), &s(&["RP11-34P13.7"]), None),
        vec![None]
    );
}

#[test]
fn rna_projection_follows_the_model_gene_order() {
    // cells x [TP53, CD4, Gapdh]; the model wants [gapdh, ENSG00000141510, MISSING, CD4]
    let m = csr(2, 3, &[(0, 0, 5.0), (0, 2, 1.0), (1, 1, 3.0), (1, 2, 2.0)]);
    let data = upload("rna.h5ad", m, s(&["TP53", "CD4", "Gapdh"]));
    let ids = s(&[
        "ENSG00000141510.16",
        "ENSG00000010610.10",
        "ENSG00000111640.15",
    ]);
    let model = s(&["gapdh", "ENSG00000141510", "MISSING", "CD4"]);
    let out = to_model_features(
        Upload::Rna {
            data: &data,
            ids: Some(&ids),
        },
        ModelFeatures::Genes(&model),
        PeakAggregation::Auto,
    )
    .unwrap();
    assert_eq!(
        dense(&out.matrix),
        vec![vec![1.0, 5.0, 0.0, 0.0], vec![2.0, 0.0, 0.0, 3.0]]
    );
    assert_eq!(out.aggregation, None);
    assert_eq!(
        out.coverage,
        FeatureCoverage {
            modality: Modality::Rna,
            found: 3,
            total: 4,
            missing: s(&["MISSING"]),
        }
    );
    assert!((out.coverage.fraction() - 0.75).abs() < 1e-12);
}

// ---- peaks projection ------------------------------------------------------------------

#[test]
fn two_input_peaks_overlapping_one_model_peak_are_combined() {
    // model: A = chr1:1000-2000, B = chr1:5000-5500, C = chr2:100-200 (nothing overlaps C)
    let model = vec![p("chr1-1000-2000"), p("chr1-5000-5500"), p("chr2-100-200")];
    // input peaks 0 and 1 overlap A, peak 2 overlaps B, peak 3 overlaps nothing
    let features = vec![
        p("chr1-900-1200"),
        p("chr1-1800-2100"),
        p("chr1-5400-5600"),
        p("chr3-1-10"),
    ];
    let project = |data: &SingleModality<Peak>, aggregation| {
        to_model_features(
            Upload::Atac(data),
            ModelFeatures::Peaks(&model),
            aggregation,
        )
        .unwrap()
    };
    let binary = csr(
        3,
        4,
        &[
            (0, 0, 1.0),
            (0, 1, 1.0),
            (1, 1, 1.0),
            (1, 2, 1.0),
            (2, 3, 1.0),
        ],
    );
    let data = upload("atac.h5ad", binary, features.clone());
    let out = project(&data, PeakAggregation::Auto);
    // binary input: the maximum, so it stays binary
    assert_eq!(out.aggregation, Some(PeakAggregation::Max));
    assert_eq!(
        dense(&out.matrix),
        vec![
            vec![1.0, 0.0, 0.0],
            vec![1.0, 1.0, 0.0],
            vec![0.0, 0.0, 0.0]
        ]
    );
    assert_eq!(out.coverage.found, 2);
    assert_eq!(out.coverage.missing, s(&["chr2:100-200"]));

    // counts: summed
    let counts = csr(2, 4, &[(0, 0, 2.0), (0, 1, 3.0), (1, 0, 4.0), (1, 2, 7.0)]);
    let data = upload("atac.h5ad", counts, features);
    let out = project(&data, PeakAggregation::Auto);
    assert_eq!(out.aggregation, Some(PeakAggregation::Sum));
    assert_eq!(
        dense(&out.matrix),
        vec![vec![5.0, 0.0, 0.0], vec![4.0, 7.0, 0.0]]
    );
    // the maximum of counts when asked for
    let out = project(&data, PeakAggregation::Max);
    assert_eq!(
        dense(&out.matrix),
        vec![vec![3.0, 0.0, 0.0], vec![4.0, 7.0, 0.0]]
    );
}

fn err_text(e: DataError) -> String {
    e.to_string()
}

/// The error `to_model_features` gives `upload` against `model`, as text.
fn refusal(upload: Upload<'_>, model: ModelFeatures<'_>) -> String {
    err_text(to_model_features(upload, model, PeakAggregation::Auto).unwrap_err())
}

#[test]
fn bad_uploads_are_errors_that_name_the_file() {
    let model_peaks = vec![p("chr1-1000-2000")];
    let model_genes = s(&["CD4"]);
    let atac = |m: CsrMatrix<f32>, f: Vec<Peak>| upload("up/atac.h5ad", m, f);
    let peaks_refusal = |m: CsrMatrix<f32>, f: Vec<Peak>| {
        refusal(
            Upload::Atac(&atac(m, f)),
            ModelFeatures::Peaks(&model_peaks),
        )
    };

    // empty matrix
    let e = peaks_refusal(csr(0, 1, &[]), vec![p("chr1-1000-1100")]);
    assert!(e.contains("up/atac.h5ad") && e.contains("0 cells"), "{e}");

    // NaN
    let e = peaks_refusal(csr(2, 1, &[(1, 0, f32::NAN)]), vec![p("chr1-1000-1100")]);
    assert!(
        e.contains("up/atac.h5ad") && e.contains("NaN") && e.contains("row 1"),
        "{e}"
    );

    // feature table of the wrong length
    let e = peaks_refusal(csr(1, 2, &[]), vec![p("chr1-1000-1100")]);
    assert!(
        e.contains("up/atac.h5ad") && e.contains("peaks table"),
        "{e}"
    );

    // an empty peak
    let bad = Peak {
        chrom: "chr1".into(),
        start: 10,
        end: 10,
    };
    let e = peaks_refusal(csr(1, 1, &[(0, 0, 1.0)]), vec![bad]);
    assert!(
        e.contains("up/atac.h5ad: peak 1") && e.contains("not after"),
        "{e}"
    );

    // nothing overlaps
    let data = atac(csr(1, 1, &[(0, 0, 1.0)]), vec![p("chr5-1000-1100")]);
    let e = refusal(Upload::Atac(&data), ModelFeatures::Peaks(&model_peaks));
    assert!(
        e.contains("up/atac.h5ad")
            && e.contains("none of the model's peaks")
            && e.contains("genome build"),
        "{e}"
    );

    // the wrong modality
    let e = refusal(Upload::Atac(&data), ModelFeatures::Genes(&model_genes));
    assert!(e.contains("ATAC") && e.contains("RNA genes"), "{e}");

    // no gene matched, with a hint about ids
    let rna = upload(
        "up/rna.h5ad",
        csr(1, 1, &[(0, 0, 1.0)]),
        s(&["ENSG00000010610"]),
    );
    let rna_refusal = |ids: Option<&[String]>| {
        refusal(
            Upload::Rna { data: &rna, ids },
            ModelFeatures::Genes(&model_genes),
        )
    };
    let e = rna_refusal(None);
    assert!(
        e.contains("up/rna.h5ad") && e.contains("gene_ids") && e.contains("ENSG00000010610"),
        "{e}"
    );
    // ids of the wrong length
    let e = rna_refusal(Some(&s(&["a", "b"])[..]));
    assert!(e.contains("up/rna.h5ad") && e.contains("gene ids"), "{e}");

    // unparseable peak names
    let e = err_text(parse_peaks(&s(&["chr1-1-5", "chr1:9"]), "up/atac.tsv").unwrap_err());
    assert!(
        e.contains("up/atac.tsv: peak 2") && e.contains("chr1:9"),
        "{e}"
    );
}

// ---- coverage --------------------------------------------------------------------------

#[test]
fn too_low_coverage_is_refused_with_the_numbers() {
    let cov = FeatureCoverage {
        modality: Modality::Rna,
        found: 450,
        total: 1000,
        missing: (0..20).map(|i| format!("G{i}")).collect(),
    };
    assert!(require_coverage(&cov, 0.4, "upload.h5ad").is_ok());
    let e = err_text(require_coverage(&cov, 0.8, "upload.h5ad").unwrap_err());
    for want in [
        "upload.h5ad",
        "450 of the model's 1000 RNA genes",
        "45.0%",
        "80.0%",
        "first 20 of 550",
        "G0, G1",
    ] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }
    // nothing found is refused even at threshold 0; a threshold outside [0, 1] is an error
    let none = FeatureCoverage {
        found: 0,
        ..cov.clone()
    };
    assert!(require_coverage(&none, 0.0, "u").is_err());
    for bad in [-0.1, 1.5, f64::NAN] {
        let e = err_text(require_coverage(&cov, bad, "u").unwrap_err());
        assert!(e.contains("threshold"), "{e}");
    }
    // serializable for the portal's report
    let json = serde_json::to_value(&cov).unwrap();
    assert_eq!(json["modality"], "rna");
    assert_eq!(json["found"], 450);
}

// ---- genome builds ---------------------------------------------------------------------

#[test]
fn a_declared_build_mismatch_is_refused() {
    let e = err_text(
        check_build(
            Some(GenomeBuild::Grch38),
            Some("GRCh37".parse().unwrap()),
            &[],
            "lab/peaks.h5ad",
        )
        .unwrap_err(),
    );
    for want in ["genome build mismatch", "GRCh38", "hg19", "lab/peaks.h5ad"] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }
    assert!(
        check_build(
            Some(GenomeBuild::Grch38),
            Some("hg38".parse().unwrap()),
            &[p("chr1-100-200")],
            "x"
        )
        .is_ok()
    );
    assert!(check_build(None, None, &[p("chr1-999999999-1000000000")], "x").is_ok());
}

#[test]
fn hg19_coordinates_past_a_grch38_chromosome_end_are_caught() {
    // hg19 chr1 is 249,250,621 bp, GRCh38 chr1 248,956,422
    let peaks = vec![
        p("chr1-1000-1500"),
        p("chr1-249000000-249000500"),
        p("chrUn_KI270742v1-1-999999999"),
    ];
    let e = err_text(check_build(Some(GenomeBuild::Grch38), None, &peaks, "up.h5ad").unwrap_err());
    for want in [
        "genome build mismatch",
        "up.h5ad",
        "chr1:249000000-249000500",
        "GRCh38",
        "248,956,422",
        "fits hg19",
    ] {
        assert!(e.contains(want), "`{want}` not in: {e}");
    }
    // the same peaks are fine for an hg19 model
    assert!(check_build(Some(GenomeBuild::Hg19), None, &peaks, "up.h5ad").is_ok());
    // past the end of both builds
    let e = err_text(
        check_build(
            Some(GenomeBuild::Hg19),
            None,
            &[p("chr1-249300000-249300100"), p("chr2-1-999999999")],
            "up.h5ad",
        )
        .unwrap_err(),
    );
    assert!(e.contains("fits neither") && e.contains("1 more"), "{e}");
    // a GRCh38 chr17 peak past the end of hg19 chr17, declared as hg19 with no model build
    let e = err_text(
        check_build(
            None,
            Some(GenomeBuild::Hg19),
            &[p("chr17-83000000-83000100")],
            "d",
        )
        .unwrap_err(),
    );
    assert!(
        e.contains("declared build") && e.contains("fits GRCh38"),
        "{e}"
    );
}

// ---- regulatory potential and gene activity --------------------------------------------

fn gene(name: &str, chrom: &str, start: u64, end: u64, strand: Strand) -> GeneLocus {
    GeneLocus {
        gene: name.into(),
        chrom: chrom.into(),
        start,
        end,
        strand,
    }
}

#[test]
fn regulatory_potential_matches_hand_computed_weights() {
    let genes = vec![
        // + strand: TSS = start = 100,000
        gene("PLUS", "chr1", 100_000, 150_000, Strand::Plus),
        // - strand: TSS = end = 500,000 (start would be 40 kb from the peak below)
        gene("MINUS", "chr1", 460_000, 500_000, Strand::Minus),
    ];
    let peaks = vec![
        // centre 110,000: 10 kb downstream of PLUS's TSS
        p("chr1-109750-110250"),
        // centre 490,000: 10 kb downstream of MINUS's TSS (on the - strand)
        p("chr1-489900-490100"),
        // centre 100,000.5: half a base from PLUS's TSS
        p("chr1-99999-100002"),
    ];
    let rp = regulatory_potential(
        &peaks,
        &genes,
        annotation::DEFAULT_HALF_DISTANCE,
        annotation::DEFAULT_MAX_DISTANCE,
    )
    .unwrap();
    let w = |r, c| rp.get_entry(r, c).map(|e| e.into_value()).unwrap_or(0.0);
    assert!((w(0, 0) - 0.5).abs() < 1e-7, "{}", w(0, 0));
    assert!((w(1, 1) - 0.5).abs() < 1e-7, "{}", w(1, 1));
    assert!((w(2, 0) - 2f32.powf(-0.5 / 10_000.0)).abs() < 1e-7);
    // PLUS's TSS is 380 kb from peak 1, MINUS's 390 kb from peak 0: beyond 150 kb
    assert_eq!(w(1, 0), 0.0);
    assert_eq!(w(0, 1), 0.0);
    assert_eq!(rp.nnz(), 3);
    // a window under 10 kb keeps only the peak on the TSS
    let narrow = regulatory_potential(&peaks, &genes, 10_000.0, 9_999).unwrap();
    assert_eq!(narrow.nnz(), 1);
}

#[test]
fn regulatory_potential_equals_brute_force_on_random_loci() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let chroms = ["chr1", "chr2", "3"];
    let genes: Vec<GeneLocus> = (0..300)
        .map(|i| {
            let start = rng.gen_range(0..2_000_000u64);
            gene(
                &format!("G{i}"),
                chroms[rng.gen_range(0..3)],
                start,
                start + rng.gen_range(1..100_000),
                if rng.gen_bool(0.5) {
                    Strand::Plus
                } else {
                    Strand::Minus
                },
            )
        })
        .collect();
    let peaks: Vec<Peak> = (0..500)
        .map(|_| {
            let start = rng.gen_range(0..2_100_000u64);
            Peak {
                chrom: chroms[rng.gen_range(0..3)].to_string(),
                start,
                end: start + rng.gen_range(1..2_000),
            }
        })
        .collect();
    let (half, max) = (10_000.0, 50_000u64);
    let rp = dense(&regulatory_potential(&peaks, &genes, half, max).unwrap());
    let unify = crossomics_data::genome::unify_chrom;
    for (i, peak) in peaks.iter().enumerate() {
        for (g, locus) in genes.iter().enumerate() {
            let centre = (peak.start + peak.end) as f64 / 2.0;
            let d = (centre - locus.tss() as f64).abs();
            let want = if unify(&peak.chrom) == unify(&locus.chrom) && d <= max as f64 {
                (-d / half).exp2() as f32
            } else {
                0.0
            };
            assert!(
                (rp[i][g] - want).abs() <= 1e-6 * want.max(1e-30),
                "peak {i} gene {g}: {} vs {want}",
                rp[i][g]
            );
        }
    }
}

#[test]
fn gene_activity_is_the_dense_product() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let sparse = |rows: usize, cols: usize, density: f64, rng: &mut rand_chacha::ChaCha8Rng| {
        let mut e = Vec::new();
        for r in 0..rows {
            for c in 0..cols {
                if rng.gen_bool(density) {
                    e.push((r, c, rng.gen_range(0.1f32..3.0)));
                }
            }
        }
        csr(rows, cols, &e)
    };
    let atac = sparse(17, 40, 0.2, &mut rng);
    let rp = sparse(40, 13, 0.15, &mut rng);
    let got = dense(&gene_activity(&atac, &rp).unwrap());
    let (a, w) = (dense(&atac), dense(&rp));
    for i in 0..17 {
        for g in 0..13 {
            let want: f64 = (0..40)
                .map(|p| f64::from(a[i][p]) * f64::from(w[p][g]))
                .sum();
            assert!((f64::from(got[i][g]) - want).abs() < 1e-5, "{i},{g}");
        }
    }
    // exact zeros are not stored: every stored entry is a product of stored entries
    let ga = gene_activity(&atac, &rp).unwrap();
    assert!(ga.values().iter().all(|&v| v != 0.0));
    assert_eq!(ga.nrows(), 17);
    assert_eq!(ga.ncols(), 13);
}

// ---- annotation files ------------------------------------------------------------------

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn annotation_files_are_read_and_bad_lines_named() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "genes.tsv",
        "gene\tchrom\tstart\tend\tstrand\nTP53\tchr17\t7661778\t7687538\t-\nCD4\t12\t6789527\t6820810\t+\n",
    );
    let genes = read_annotation(&good).unwrap();
    assert_eq!(genes.len(), 2);
    assert_eq!(genes[0].tss(), 7_687_538);
    assert_eq!(genes[1].chrom, "chr12");
    assert_eq!(genes[1].tss(), 6_789_527);

    let header = "gene\tchrom\tstart\tend\tstrand\n";
    for (body, line, want) in [
        (
            "A\tchr1\t10\t20\t+\nB\tchr1\t10\t20\n",
            3,
            "4 tab-separated fields",
        ),
        ("A\tchr1\tten\t20\t+\n", 2, "start `ten`"),
        ("A\tchr1\t10\t-5\t+\n", 2, "end `-5`"),
        ("A\tchr1\t20\t20\t+\n", 2, "not after start"),
        ("A\tchr1\t10\t20\t*\n", 2, "strand `*`"),
        ("\tchr1\t10\t20\t+\n", 2, "empty gene"),
    ] {
        let path = write(dir.path(), "bad.tsv", &format!("{header}{body}"));
        let e = read_annotation(&path).unwrap_err();
        assert!(
            matches!(e, DataError::Parse { line: l, .. } if l == line),
            "{e}"
        );
        let e = e.to_string();
        assert!(
            e.contains("bad.tsv") && e.contains(&format!("line {line}")) && e.contains(want),
            "{e}"
        );
    }
    // a missing or wrong header
    let e =
        err_text(parse_annotation("A\tchr1\t10\t20\t+\n", Path::new("noheader.tsv")).unwrap_err());
    assert!(
        e.contains("noheader.tsv, line 1") && e.contains("header"),
        "{e}"
    );
    let e = err_text(parse_annotation(header, Path::new("h.tsv")).unwrap_err());
    assert!(e.contains("h.tsv") && e.contains("no genes"), "{e}");
    let e = err_text(read_annotation(dir.path().join("absent.tsv")).unwrap_err());
    assert!(e.contains("absent.tsv"), "{e}");
}

#[test]
fn bundled_annotations_parse_and_sit_on_their_build() {
    // whole genomes since the 4-build tables (the old ones held 784 / 1,179 dataset genes)
    for build in GenomeBuild::ALL {
        let genes = annotation::bundled(build).unwrap();
        assert!(genes.len() > 45_000, "{build}: {} genes", genes.len());
        for g in &genes {
            let len = build.chrom_length(&g.chrom);
            assert!(len.is_some_and(|l| g.end <= l), "{build}: {g:?}");
        }
    }
    let grch38 = annotation::bundled(GenomeBuild::Grch38).unwrap();
    let hg19 = annotation::bundled(GenomeBuild::Hg19).unwrap();
    let find = |genes: &[GeneLocus], name: &str| genes.iter().find(|g| g.gene == name).cloned();
    // GENCODE gene records, 0-based half-open (GTF start - 1)
    let ptprc = find(&grch38, "PTPRC").unwrap();
    assert_eq!((ptprc.chrom.as_str(), ptprc.tss()), ("chr1", 198_638_456));
    let hbb = find(&grch38, "HBB").unwrap();
    assert_eq!((hbb.strand, hbb.tss()), (Strand::Minus, 5_229_395));
    let errfi1 = find(&hg19, "ERRFI1").unwrap();
    assert_eq!(
        (errfi1.start, errfi1.end, errfi1.tss()),
        (8_064_463, 8_086_368, 8_086_368)
    );
    // the same gene sits elsewhere on the other build
    let (a, b) = (
        find(&grch38, "ANXA2").unwrap(),
        find(&hg19, "ANXA2").unwrap(),
    );
    assert_eq!(a.chrom, b.chrom);
    assert_ne!(a.start, b.start);
}
