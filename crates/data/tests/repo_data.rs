//! Every plain-layout folder of the repository's real data (`data/`) reads with the shapes
//! and labels `data/README.md` documents; nothing outside the clone is needed.

mod common;

use common::plain_data;

#[test]
fn bmmc_multiome_starter_matches_the_bundled_copy() {
    let d = plain_data("bmmc_multiome_starter");
    let bundled = crossomics_data::sample::bmmc_multiome_starter().unwrap();
    assert_eq!(d.rna, bundled.rna);
    assert_eq!(d.atac, bundled.atac);
    assert_eq!(d.cells, bundled.cells);
    assert_eq!(d.genes, bundled.genes);
    assert_eq!(d.peaks, bundled.peaks);
}

#[test]
fn scicar_a549_reads_with_its_contigs() {
    let d = plain_data("scicar_a549");
    assert_eq!(
        (d.n_cells(), d.rna.ncols(), d.atac.ncols()),
        (2641, 1185, 52761)
    );
    // hg19 peaks written as `1-9963-10665` are unified to UCSC names
    assert_eq!(d.peaks[0].to_string(), "chr1:9963-10665");
    let groups = d.chromosome_groups();
    assert!(groups.iter().any(|(c, _)| c == "chrX"));
    assert_eq!(groups.iter().map(|(_, p)| p.len()).sum::<usize>(), 52761);
    // ATAC is binary, RNA exact integers
    assert!(d.atac.values().iter().all(|v| *v == 1.0));
    assert!(d.rna.values().iter().all(|v| v.fract() == 0.0));
    let (_, times) = d.cells.codes("time_h").unwrap();
    assert_eq!(times, vec!["0", "1", "3"]);
    let counts = |t: &str| {
        d.cells
            .column("time_h")
            .unwrap()
            .iter()
            .filter(|v| *v == t)
            .count()
    };
    assert_eq!((counts("0"), counts("1"), counts("3")), (583, 983, 1075));
}

#[test]
fn pbmc_multiome_100_reads_underscore_peaks() {
    let d = plain_data("pbmc_multiome_100");
    assert_eq!(
        (d.n_cells(), d.rna.ncols(), d.atac.ncols()),
        (100, 200, 200)
    );
    assert_eq!(d.peaks[0].to_string(), "chr18:11980068-11982718");
    let (_, types) = d.cells.codes("celltype").unwrap();
    assert_eq!(types.len(), 19);
}

#[test]
fn snare_mouse_cortex_has_ten_thousand_labelled_cells_on_mm10() {
    let d = plain_data("snare_mouse_cortex");
    assert_eq!(
        (d.n_cells(), d.rna.ncols(), d.atac.ncols()),
        (10_309, 1_677, 25_734)
    );
    assert_eq!(d.peaks[0].to_string(), "chr1:4914570-4914685");
    let (codes, types) = d.cells.codes("cell_type").unwrap();
    assert_eq!(types.len(), 15);
    let n = |t: &str| {
        let i = types.iter().position(|x| x == t).unwrap();
        codes.iter().filter(|&&c| c == i).count()
    };
    assert_eq!(
        (n("L2/3"), n("L4/5"), n("L6"), n("Astro")),
        (3_928, 2_275, 1_186, 444)
    );
    assert_eq!(d.cells.codes("cluster_chen2019").unwrap().1.len(), 23);
    assert_eq!(d.cells.codes("batch").unwrap().1.len(), 12);
    // raw integer counts; 990 regions are empty in every cell (data/README.md)
    assert!(
        d.rna
            .values()
            .iter()
            .chain(d.atac.values())
            .all(|v| v.fract() == 0.0 && *v > 0.0)
    );
    let mut used = vec![false; d.atac.ncols()];
    for &j in d.atac.col_indices() {
        used[j] = true;
    }
    assert_eq!(used.iter().filter(|u| !**u).count(), 990);
    let mut depth: Vec<f64> = (0..d.n_cells())
        .map(|i| d.rna.row(i).values().iter().map(|&v| f64::from(v)).sum())
        .collect();
    depth.sort_by(f64::total_cmp);
    assert_eq!(depth[d.n_cells() / 2], 247.0);
}
