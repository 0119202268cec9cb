//! The whole-genome gene tables compiled into the crate: coverage of the shared datasets'
//! genes and of the protein-coding genes (against `tests/fixtures/annotation_coverage.tsv`,
//! written by `scripts/gene_annotation.py`), known coordinates, and the file formats.

use std::path::{Path, PathBuf};

use crossomics_data::annotation::{
    self, GeneLocus, GeneRecord, GeneTable, HEADER, LEGACY_HEADER, Strand, parse_annotation,
    parse_gene_records, read_annotation, read_gene_records,
};
use crossomics_data::transfer::GenomeBuild;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn table(build: GenomeBuild) -> &'static GeneTable {
    annotation::bundled_table(build).unwrap()
}

/// (genes, found) of a dataset's symbols: found when a symbol or alias (any case).
fn dataset_coverage(t: &GeneTable, genes: &[String]) -> (usize, usize) {
    let found = genes.iter().filter(|g| t.lookup(g).is_some()).count();
    (genes.len(), found)
}

/// (protein-coding genes, those whose symbol finds that very gene).
fn protein_coding_coverage(t: &GeneTable) -> (usize, usize) {
    let pc: Vec<&GeneRecord> = t
        .records()
        .iter()
        .filter(|r| r.biotype == "protein_coding")
        .collect();
    let found = pc
        .iter()
        .filter(|r| {
            t.by_symbol(r.gene())
                .is_some_and(|p| p.gene_id == r.gene_id)
        })
        .count();
    (pc.len(), found)
}

#[test]
fn coverage_matches_the_fixture_and_is_at_least_95_percent() {
    let text = std::fs::read_to_string(fixtures().join("annotation_coverage.tsv")).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("build\tdataset\tgenes\tfound\tfraction"));
    let mut builds_seen = Vec::new();
    let mut rows = 0;
    for line in lines {
        let f: Vec<&str> = line.split('\t').collect();
        let [build, dataset, genes, found, fraction] = f[..] else {
            panic!("bad fixture line `{line}`");
        };
        let build: GenomeBuild = build.parse().unwrap();
        let t = table(build);
        let (n, k) = if dataset == "protein_coding" {
            protein_coding_coverage(t)
        } else {
            let list = std::fs::read_to_string(
                fixtures()
                    .join("annotation_genes")
                    .join(format!("{dataset}.tsv")),
            )
            .unwrap();
            let genes: Vec<String> = list
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(String::from)
                .collect();
            dataset_coverage(t, &genes)
        };
        assert_eq!(
            (n.to_string(), k.to_string()),
            (genes.to_string(), found.to_string()),
            "{build} {dataset}"
        );
        let frac = k as f64 / n as f64;
        assert_eq!(format!("{frac:.4}"), fraction, "{build} {dataset}");
        assert!(frac >= 0.95, "{build} {dataset}: {k}/{n}");
        builds_seen.push(build);
        rows += 1;
    }
    // every build has its protein-coding row and at least one dataset
    for b in GenomeBuild::ALL {
        assert!(
            builds_seen.iter().filter(|x| **x == b).count() >= 2,
            "{b} missing in the fixture"
        );
    }
    assert!(rows >= 9);
}

/// A gene's chromosome, start, end and strand.
fn place(g: &GeneRecord) -> (&str, u64, u64, Strand) {
    (
        g.locus.chrom.as_str(),
        g.locus.start,
        g.locus.end,
        g.locus.strand,
    )
}

#[test]
fn known_genes_sit_where_gencode_puts_them() {
    let gene = |b: GenomeBuild, name: &str| table(b).lookup(name).unwrap().clone();
    // GAPDH GRCh38: GTF chr12:6534512-6538374 (+)
    let g = gene(GenomeBuild::Grch38, "GAPDH");
    assert_eq!(g.gene_id, "ENSG00000111640");
    assert_eq!(place(&g), ("chr12", 6_534_511, 6_538_374, Strand::Plus));
    assert_eq!(g.biotype, "protein_coding");
    // TP53 GRCh38: chr17:7661779-7687546 (-), TSS at the end
    let g = gene(GenomeBuild::Grch38, "tp53");
    assert_eq!((g.locus.start, g.locus.end), (7_661_778, 7_687_546));
    assert_eq!(g.locus.tss(), 7_687_546);
    // GAPDH hg19 (GENCODE 19): chr12:6643093-6647537, the same gene id
    let g = gene(GenomeBuild::Hg19, "GAPDH");
    assert_eq!(g.gene_id, "ENSG00000111640");
    assert_eq!((g.locus.start, g.locus.end), (6_643_092, 6_647_537));
    // Gapdh mm10 (GENCODE M11 via RGT): chr6:125161715-125166467 (-)
    let g = gene(GenomeBuild::Mm10, "Gapdh");
    assert_eq!(g.gene_id, "ENSMUSG00000057666");
    assert_eq!(place(&g), ("chr6", 125_161_714, 125_166_467, Strand::Minus));
    // Gapdh GRCm39 (GENCODE M37): chr6:125138678-125143430 (-)
    let g = gene(GenomeBuild::Grcm39, "GAPDH");
    assert_eq!(g.gene_id, "ENSMUSG00000057666");
    assert_eq!(place(&g), ("chr6", 125_138_677, 125_143_430, Strand::Minus));
    // Xkr4, the first gene of mouse chr1: mm10 3205901-3671498, GRCm39 3276124-3741721
    let (a, b) = (
        gene(GenomeBuild::Mm10, "Xkr4"),
        gene(GenomeBuild::Grcm39, "Xkr4"),
    );
    assert_eq!((a.locus.start, a.locus.end), (3_205_900, 3_671_498));
    assert_eq!((b.locus.start, b.locus.end), (3_276_123, 3_741_721));
    assert_eq!(a.gene_id, b.gene_id);
}

#[test]
fn aliases_find_renamed_genes() {
    let t = table(GenomeBuild::Grch38);
    // H3F3A is H3-3A since 2020, FAM49A CYRIA, LARS LARS1
    for (old, new) in [("H3F3A", "H3-3A"), ("FAM49A", "CYRIA"), ("lars", "LARS1")] {
        assert!(t.by_symbol(old).is_none(), "{old} is a symbol");
        assert_eq!(t.lookup(old).unwrap().gene(), new, "{old}");
    }
    // hg19 (GENCODE 19) has the old names; the current ones are aliases
    let t = table(GenomeBuild::Hg19);
    assert_eq!(t.lookup("H3-3A").unwrap().gene(), "H3F3A");
    // the mouse dataset's older symbols find GRCm39 genes
    let t = table(GenomeBuild::Grcm39);
    for old in ["Sept4", "March1", "Fam19a1"] {
        assert!(t.by_symbol(old).is_none(), "{old} is a symbol");
        assert!(t.lookup(old).is_some(), "{old}");
    }
    assert_eq!(t.lookup("Sept4").unwrap().gene(), "Septin4");
    // bundled(): one locus per symbol or alias, no name twice (ignoring case)
    for b in GenomeBuild::ALL {
        let loci = annotation::bundled(b).unwrap();
        let t = table(b);
        let mut names: Vec<String> = loci.iter().map(|l| l.gene.to_ascii_uppercase()).collect();
        names.sort_unstable();
        let n = names.len();
        names.dedup();
        assert_eq!(names.len(), n, "{b}: a name twice");
        let symbols: std::collections::HashSet<String> = t
            .records()
            .iter()
            .map(|r| r.gene().to_ascii_uppercase())
            .collect();
        assert_eq!(loci.len(), symbols.len() + t.aliases().count(), "{b}");
        assert!(loci.iter().any(|l| l.gene == "Gapdh" || l.gene == "GAPDH"));
    }
}

#[test]
fn bundled_tables_are_whole_genomes_on_their_build() {
    for b in GenomeBuild::ALL {
        let t = table(b);
        assert_eq!(t.build(), b);
        assert!(t.records().len() > 45_000, "{b}: {}", t.records().len());
        let pc = t
            .records()
            .iter()
            .filter(|r| r.biotype == "protein_coding")
            .count();
        assert!((19_000..23_000).contains(&pc), "{b}: {pc} protein-coding");
        let prefix = if b.species() == crossomics_data::transfer::Species::Human {
            "ENSG"
        } else {
            "ENSMUSG"
        };
        let mut last = (0u32, 0u64);
        for r in t.records() {
            assert!(r.gene_id.starts_with(prefix), "{b}: {r:?}");
            let len = b.chrom_length(&r.locus.chrom);
            assert!(len.is_some_and(|l| r.locus.end <= l), "{b}: {r:?}");
            assert!(!r.biotype.is_empty());
            assert_eq!(t.by_id(&r.gene_id), Some(r));
            // sorted by chromosome (in build order) and start
            let rank = b
                .chrom_lengths()
                .position(|(c, _)| c == r.locus.chrom)
                .unwrap() as u32;
            assert!((rank, r.locus.start) >= last, "{b}: {r:?} out of order");
            last = (rank, r.locus.start);
        }
        for (alias, r) in t.aliases() {
            assert!(
                t.by_symbol(alias).is_none(),
                "{b}: alias {alias} is a symbol"
            );
            assert_eq!(t.lookup(alias), Some(r));
        }
    }
    // the second call returns the same decoded table
    assert!(std::ptr::eq(
        table(GenomeBuild::Mm10),
        annotation::bundled_table(GenomeBuild::Mm10).unwrap()
    ));
    // a PAR gene: the chrX copy is what its symbol finds, the chrY copy has its own id
    let t = table(GenomeBuild::Grch38);
    let shox: Vec<&GeneRecord> = t.records().iter().filter(|r| r.gene() == "SHOX").collect();
    assert_eq!(shox.len(), 2);
    assert_eq!(t.by_symbol("SHOX").unwrap().locus.chrom, "chrX");
}

#[test]
fn seven_and_five_column_files_plain_or_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let seven = format!(
        "{HEADER}\nENSG00000111640\tGAPDH\tchr12\t6534511\t6538374\t+\tprotein_coding\n\
         ENSG00000141510\tTP53\t17\t7661778\t7687546\t-\tprotein_coding\n"
    );
    let five = format!("{LEGACY_HEADER}\nGAPDH\tchr12\t6534511\t6538374\t+\n");
    let plain = dir.path().join("seven.tsv");
    std::fs::write(&plain, &seven).unwrap();
    let gz = dir.path().join("seven.tsv.gz");
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, seven.as_bytes()).unwrap();
    std::fs::write(&gz, enc.finish().unwrap()).unwrap();
    let a = read_gene_records(&plain).unwrap();
    let b = read_gene_records(&gz).unwrap();
    assert_eq!(a, b);
    assert_eq!(a[1].gene_id, "ENSG00000141510");
    assert_eq!(a[1].locus.chrom, "chr17");
    assert_eq!(a[1].biotype, "protein_coding");
    let loci: Vec<GeneLocus> = read_annotation(&gz).unwrap();
    assert_eq!(loci[0].tss(), 6_534_511);
    let old = parse_gene_records(&five, Path::new("five.tsv")).unwrap();
    assert_eq!(old[0].gene_id, "");
    assert_eq!(old[0].locus, loci[0]);
    assert_eq!(
        parse_annotation(&five, Path::new("five.tsv")).unwrap()[0],
        loci[0]
    );
    // a 5-field row under the 7-column header, an empty id
    let e = parse_annotation(
        &format!("{HEADER}\nGAPDH\tchr12\t6534511\t6538374\t+\n"),
        Path::new("x.tsv"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("x.tsv") && e.contains("expected 7"), "{e}");
    let e = parse_annotation(
        &format!("{HEADER}\n\tGAPDH\tchr12\t1\t2\t+\tx\n"),
        Path::new("x.tsv"),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("empty gene_id"), "{e}");
    // not gzip after all
    let bad = dir.path().join("bad.tsv.gz");
    std::fs::write(&bad, [0x1f, 0x8b, 0, 1, 2]).unwrap();
    let e = read_annotation(&bad).unwrap_err().to_string();
    assert!(e.contains("bad.tsv.gz") && e.contains("gzip"), "{e}");
}

#[test]
fn a_table_refuses_duplicate_ids_and_clashing_aliases() {
    let rec = |id: &str, gene: &str| GeneRecord {
        gene_id: id.into(),
        locus: GeneLocus {
            gene: gene.into(),
            chrom: "chr1".into(),
            start: 10,
            end: 20,
            strand: Strand::Plus,
        },
        biotype: "protein_coding".into(),
    };
    let b = GenomeBuild::Grch38;
    assert!(GeneTable::new(b, vec![rec("E1", "A"), rec("E1", "B")], vec![], "t").is_err());
    let recs = || vec![rec("E1", "A"), rec("E2", "B")];
    assert!(GeneTable::new(b, recs(), vec![("a".into(), "E2".into())], "t").is_err());
    assert!(GeneTable::new(b, recs(), vec![("C".into(), "E9".into())], "t").is_err());
    let t = GeneTable::new(b, recs(), vec![("C".into(), "E2".into())], "t").unwrap();
    assert_eq!(t.lookup("c").unwrap().gene(), "B");
    let loci = t.loci();
    assert_eq!(
        loci.iter().map(|l| l.gene.as_str()).collect::<Vec<_>>(),
        ["A", "B", "C"]
    );
}
