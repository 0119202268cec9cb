//! 10x ATAC fragments files counted into peaks per cell (`crossomics_data::fragments`):
//! the real-cell fixture against an independent Python count, the counting convention on
//! hand-made cases, every compression and the tabix index, hostile inputs, a brute-force
//! property test, and the `format = "fragments"` dataset config.
//!
//! Fixtures: crates/data/tests/fixtures/fragments/, made by scripts/fragments_fixture.py
//! (fragments.tsv.gz + .tbi from the BMMC sample's cells, BGZF and tabix by htslib via
//! pysam) and scripts/fragments_reference.py (peaks.bed, barcodes.tsv and the expected
//! matrix, counted by brute force in pure Python).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crossomics_data::config::DatasetConfig;
use crossomics_data::dataset::CellTable;
use crossomics_data::error::DataError;
use crossomics_data::fragments::{self, count, read_barcodes, read_bed};
use crossomics_data::{Peak, h5ad, mtx};
use crossomics_limits::{Limit, Limits};
use nalgebra_sparse::CsrMatrix;
use proptest::prelude::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/fragments")
        .join(name)
}

fn triplets(m: &CsrMatrix<f32>) -> Vec<(usize, usize, f32)> {
    m.triplet_iter().map(|(r, c, v)| (r, c, *v)).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn bgzf(bytes: &[u8]) -> Vec<u8> {
    let mut w = noodles_bgzf::io::Writer::new(Vec::new());
    w.write_all(bytes).unwrap();
    w.finish().unwrap()
}

/// The fixture's fragments, inflated.
fn fixture_text() -> Vec<u8> {
    let mut text = Vec::new();
    flate2::read::MultiGzDecoder::new(std::fs::File::open(fixture("fragments.tsv.gz")).unwrap())
        .read_to_end(&mut text)
        .unwrap();
    text
}

fn peaks(spec: &[&str]) -> Vec<Peak> {
    spec.iter().map(|s| Peak::parse(s).unwrap()).collect()
}

fn strings(s: &[&str]) -> Vec<String> {
    s.iter().map(|s| s.to_string()).collect()
}

/// The error of counting `text` written as `name` (plain), which must name the file.
fn count_error(text: &[u8], name: &str, limits: &Limits) -> String {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(name);
    std::fs::write(&path, text).unwrap();
    let e = count(
        &path,
        &strings(&["AAAC-1", "TTTG-1"]),
        &peaks(&["chr1-100-200"]),
        limits,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains(name), "{e}");
    e
}

struct Fixture {
    barcodes: Vec<String>,
    peaks: Vec<Peak>,
    expected: CsrMatrix<f32>,
}

fn load_fixture() -> Fixture {
    let limits = Limits::default();
    Fixture {
        barcodes: read_barcodes(&fixture("barcodes.tsv"), &limits).unwrap(),
        peaks: read_bed(&fixture("peaks.bed"), &limits).unwrap(),
        expected: mtx::read_path(&fixture("expected_counts.mtx.gz"), &limits).unwrap(),
    }
}

#[test]
fn the_real_cells_fixture_counts_exactly_as_the_python_reference() {
    let f = load_fixture();
    assert_eq!((f.barcodes.len(), f.peaks.len()), (500, 600));
    assert_eq!(f.peaks[0].to_string(), "chr1:1677585-1678477");
    let m = count(
        &fixture("fragments.tsv.gz"),
        &f.barcodes,
        &f.peaks,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((m.nrows(), m.ncols()), (500, 600));
    assert!(m.nnz() > 40_000, "{}", m.nnz());
    assert_eq!(triplets(&m), triplets(&f.expected));

    // the same through read_atac
    let atac = fragments::read_atac(
        &fixture("fragments.tsv.gz"),
        &fixture("barcodes.tsv"),
        &fixture("peaks.bed"),
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(triplets(&atac.matrix), triplets(&f.expected));
    assert_eq!(atac.cells.barcodes(), f.barcodes.as_slice());
    assert_eq!(atac.features, f.peaks);
}

#[test]
fn index_absent_plain_gzip_and_uncompressed_count_the_same() {
    let f = load_fixture();
    let text = fixture_text();
    let tmp = tempfile::tempdir().unwrap();
    let want = triplets(&f.expected);
    for (name, bytes) in [
        (
            "no_index.tsv.gz",
            std::fs::read(fixture("fragments.tsv.gz")).unwrap(),
        ),
        ("rebgzf.tsv.gz", bgzf(&text)),
        ("gzip.tsv.gz", gzip(&text)),
        ("plain.tsv", text.clone()),
    ] {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let m = count(&path, &f.barcodes, &f.peaks, &Limits::default()).unwrap();
        assert_eq!(triplets(&m), want, "{name}");
    }
    // the file unsorted (no index): the same counts
    let mut lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    lines.reverse();
    let path = tmp.path().join("reversed.tsv");
    std::fs::write(&path, lines.concat()).unwrap();
    let m = count(&path, &f.barcodes, &f.peaks, &Limits::default()).unwrap();
    assert_eq!(triplets(&m), want);
}

#[test]
fn barcode_order_is_the_row_order_and_other_barcodes_are_skipped() {
    let f = load_fixture();
    // reversed, every other cell, and two barcodes the file does not have
    let mut chosen: Vec<String> = f.barcodes.iter().rev().step_by(2).cloned().collect();
    chosen.insert(3, "NOTACELL-1".into());
    chosen.push("GGGGGGGGGGGGGGGG-1-s1d1".into());
    let m = count(
        &fixture("fragments.tsv.gz"),
        &chosen,
        &f.peaks,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(m.nrows(), chosen.len());
    for (row, barcode) in chosen.iter().enumerate() {
        let got: Vec<(usize, f32)> = m
            .row(row)
            .col_indices()
            .iter()
            .copied()
            .zip(m.row(row).values().iter().copied())
            .collect();
        let want: Vec<(usize, f32)> = match f.barcodes.iter().position(|b| b == barcode) {
            Some(i) => f
                .expected
                .row(i)
                .col_indices()
                .iter()
                .copied()
                .zip(f.expected.row(i).values().iter().copied())
                .collect(),
            None => Vec::new(),
        };
        assert_eq!(got, want, "{barcode}");
    }
    // peaks in another order: the columns follow
    let mut reordered = f.peaks.clone();
    reordered.reverse();
    let m = count(
        &fixture("fragments.tsv.gz"),
        &f.barcodes,
        &reordered,
        &Limits::default(),
    )
    .unwrap();
    let n = f.peaks.len();
    let mut got: Vec<(usize, usize, f32)> = triplets(&m)
        .into_iter()
        .map(|(r, c, v)| (r, n - 1 - c, v))
        .collect();
    got.sort_by_key(|&(r, c, _)| (r, c));
    assert_eq!(got, triplets(&f.expected));
}

#[test]
fn the_convention_two_cut_sites_end_exclusive_overlaps_and_spellings() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("f.tsv");
    // peaks: A [100,200) on chr1 (spelled `1` in the fragments), B [150,300) overlapping A,
    // C [150,300) a duplicate of B, D [10,20) on chrX (fragments: `X`), E [0,50) on chrM
    // (fragments: `MT`), F on a contig
    let ps = peaks(&[
        "chr1-100-200",
        "chr1:150-300",
        "1_150_300",
        "x-10-20",
        "chrM-0-50",
        "GL000205.2-5-9",
    ]);
    let text = "\
# comment\n\
#\n\
1\t110\t130\tAAAC-1\t3\n\
1\t90\t101\tAAAC-1\t1\n\
1\t200\t260\tTTTG-1\n\
1\t60\t100\tTTTG-1\t1\n\
chr1\t199\t300\tTTTG-1\t1\n\
X\t5\t11\tAAAC-1\t2\n\
MT\t49\t60\tAAAC-1\t1\n\
GL000205.2\t4\t6\tTTTG-1\t1\n\
chr2\t100\t200\tAAAC-1\t1\n\
1\t110\t130\tNOPE-1\t1\n";
    std::fs::write(&path, text).unwrap();
    let m = count(
        &path,
        &strings(&["TTTG-1", "AAAC-1"]),
        &ps,
        &Limits::default(),
    )
    .unwrap();
    let dense = |r: usize| -> Vec<f32> {
        let mut v = vec![0.0; ps.len()];
        for (c, x) in m.row(r).col_indices().iter().zip(m.row(r).values()) {
            v[*c] = *x;
        }
        v
    };
    // AAAC-1: [110,130) both cut sites in A -> A += 2; [90,101) cut 100 in A (90 outside);
    // X [5,11) cut 10 in D; MT [49,60) cut 49 in E; chr2 has no peaks; the 5th column is
    // ignored
    assert_eq!(dense(1), [3.0, 0.0, 0.0, 1.0, 1.0, 0.0]);
    // TTTG-1: [200,260): 200 in B, C (A ends at 200), 259 in B, C; [60,100): 99 nowhere;
    // [199,300): 199 in A, B, C, 299 in B, C; contig [4,6): 5 in F (4 is not)
    assert_eq!(dense(0), [1.0, 4.0, 4.0, 0.0, 0.0, 1.0]);
}

#[test]
fn bed_and_barcode_files() {
    let tmp = tempfile::tempdir().unwrap();
    let bed = tmp.path().join("peaks.bed.gz");
    std::fs::write(
        &bed,
        gzip(b"browser position chr1:1-1000\ntrack name=peaks\n# x\n\n1\t10\t20\tname\t0\t+\nchrX 5 8\n"),
    )
    .unwrap();
    assert_eq!(
        read_bed(&bed, &Limits::default()).unwrap(),
        peaks(&["chr1-10-20", "chrX-5-8"])
    );
    let barcodes = tmp.path().join("barcodes.tsv.gz");
    std::fs::write(&barcodes, gzip(b"AAAC-1\tx\nTTTG-1\n")).unwrap();
    assert_eq!(
        read_barcodes(&barcodes, &Limits::default()).unwrap(),
        ["AAAC-1", "TTTG-1"]
    );

    let bad_beds: [(&str, &str); 6] = [
        ("chr1\t10\n", "line 1"),
        ("# h\nchr1\tten\t20\n", "line 2"),
        ("chr1\t30\t20\n", "not after start"),
        ("chr1\t20\t20\n", "not after start"),
        ("chr1\t-1\t20\n", "line 1"),
        ("# only a comment\n", "no peaks"),
    ];
    for (text, needle) in bad_beds {
        let path = tmp.path().join("bad.bed");
        std::fs::write(&path, text).unwrap();
        let e = read_bed(&path, &Limits::default()).unwrap_err().to_string();
        assert!(e.contains("bad.bed") && e.contains(needle), "{text:?}: {e}");
    }
    let few = Limits {
        max_features: 1,
        ..Limits::default()
    };
    let path = tmp.path().join("two.bed");
    std::fs::write(&path, "chr1\t1\t2\nchr1\t3\t4\n").unwrap();
    let e = read_bed(&path, &few).unwrap_err();
    assert!(
        matches!(&e, DataError::Limit(l) if l.limit == Limit::Features),
        "{e}"
    );

    let path = tmp.path().join("dup_barcodes.tsv");
    std::fs::write(&path, "AAAC-1\nTTTG-1\nAAAC-1\n").unwrap();
    let e = read_barcodes(&path, &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("dup_barcodes.tsv") && e.contains("AAAC-1") && e.contains("line 3"),
        "{e}"
    );
}

#[test]
fn malformed_lines_are_errors_naming_the_file_the_line_and_an_excerpt() {
    let limits = Limits::default();
    let head = "# header\nchr1\t100\t150\tAAAC-1\t1\n";
    let cases: [(&str, &str); 9] = [
        ("chr1\t100\t150\n", "3 tab-separated fields"),
        (
            "chr1\t100\t150\tAAAC-1\t1\textra\n",
            "6 tab-separated fields",
        ),
        ("chr1 100 150 AAAC-1 1\n", "1 tab-separated fields"),
        ("chr1\t100.5\t150\tAAAC-1\t1\n", "start `100.5`"),
        ("chr1\t100\t-150\tAAAC-1\t1\n", "end `-150`"),
        (
            "chr1\t200\t150\tAAAC-1\t1\n",
            "end 150 is not after start 200",
        ),
        ("chr1\t150\t150\tAAAC-1\t1\n", "not after start"),
        ("chr1\t100\t150\tAAAC-1\tmany\n", "duplicate count `many`"),
        ("chr1\t100\t150\t\t1\n", "barcode is empty"),
    ];
    for (line, needle) in cases {
        let e = count_error(format!("{head}{line}").as_bytes(), "frags.tsv", &limits);
        assert!(e.contains("line 3") && e.contains(needle), "{line:?}: {e}");
        assert!(e.contains("`chr1"), "an excerpt of the line: {e}");
    }
    // not text
    let e = count_error(b"chr1\t100\t150\tAA\xffC\t1\n", "binary.tsv", &limits);
    assert!(e.contains("line 1"), "{e}");
    // an excerpt is short, however long the line
    let long = format!("chr1\t1\t{}\tAAAC-1\n", "9".repeat(5000));
    let e = count_error(long.as_bytes(), "long_field.tsv", &limits);
    assert!(e.len() < 600, "{}", e.len());
}

#[test]
fn hostile_files_are_errors_not_panics() {
    let text = fixture_text();
    let original = std::fs::read(fixture("fragments.tsv.gz")).unwrap();
    let f = load_fixture();
    let tmp = tempfile::tempdir().unwrap();
    let limits = Limits::default();
    let run = |name: &str, bytes: &[u8], limits: &Limits| -> String {
        let path = tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let e = count(&path, &f.barcodes, &f.peaks, limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains(name), "{name}: {e}");
        e
    };
    // truncated BGZF: mid-block, and exactly without its end-of-file block
    let e = run("half.tsv.gz", &original[..original.len() / 2], &limits);
    assert!(e.contains("truncated"), "{e}");
    let e = run("no_eof.tsv.gz", &original[..original.len() - 28], &limits);
    assert!(e.contains("truncated"), "{e}");
    // a corrupt block (the end-of-file block kept): the block checksum fails
    let mut flipped = original.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let e = run("flipped.tsv.gz", &flipped, &limits);
    assert!(e.contains("corrupt"), "{e}");
    // truncated plain gzip
    let gz = gzip(&text);
    let e = run("cut.tsv.gz", &gz[..gz.len() / 2], &limits);
    assert!(e.contains("corrupt or truncated"), "{e}");
    // empty, comments only
    let e = run("empty.tsv.gz", b"", &limits);
    assert!(e.contains("empty"), "{e}");
    let e = run("comments.tsv", b"# id=x\n#\n", &limits);
    assert!(e.contains("no fragment lines"), "{e}");
    // barcodes that do not match any in the file
    let path = tmp.path().join("other_cells.tsv");
    std::fs::write(&path, &text).unwrap();
    let e = count(&path, &strings(&["AAAC"]), &f.peaks, &limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("other_cells.tsv") && e.contains("look like"),
        "{e}"
    );

    // the limits: one line over the cap, inflated bytes, non-zeros
    let small_lines = Limits {
        max_line_bytes: 200,
        ..Limits::default()
    };
    let long = format!("chr1\t1\t2\t{}\t1\n", "A".repeat(300));
    let e = run("long_line.tsv", long.as_bytes(), &small_lines);
    assert!(e.contains("max_line_bytes"), "{e}");
    let small_inflate = Limits {
        max_inflated_bytes: 100_000,
        ..Limits::default()
    };
    let e = run("inflates.tsv.gz", &original, &small_inflate);
    assert!(e.contains("max_inflated_bytes"), "{e}");
    let few_nonzeros = Limits {
        max_nonzeros: 1000,
        ..Limits::default()
    };
    let e = run("nonzeros.tsv.gz", &original, &few_nonzeros);
    assert!(e.contains("max_nonzeros"), "{e}");
    // at exactly the fixture's non-zeros it passes, one fewer it fails
    let nnz = f.expected.nnz() as u64;
    let path = tmp.path().join("exact.tsv");
    std::fs::write(&path, &text).unwrap();
    let exact = Limits {
        max_nonzeros: nnz,
        ..Limits::default()
    };
    assert!(count(&path, &f.barcodes, &f.peaks, &exact).is_ok());
    let under = Limits {
        max_nonzeros: nnz - 1,
        ..Limits::default()
    };
    let e = count(&path, &f.barcodes, &f.peaks, &under).unwrap_err();
    assert!(
        matches!(&e, DataError::Limit(l) if l.limit == Limit::Nonzeros),
        "{e}"
    );
    // missing file, folder
    let e = count(
        &tmp.path().join("absent.tsv.gz"),
        &f.barcodes,
        &f.peaks,
        &limits,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("absent.tsv.gz"), "{e}");
    let e = count(tmp.path(), &f.barcodes, &f.peaks, &limits).unwrap_err();
    assert!(e.to_string().contains("folder"), "{e}");
}

/// `bytes` as `<dir>/fragments.tsv.gz` with the fixture's data and `tbi` as its index.
fn with_index(dir: &Path, data: &[u8], tbi: &[u8]) -> PathBuf {
    let path = dir.join("fragments.tsv.gz");
    std::fs::write(&path, data).unwrap();
    std::fs::write(dir.join("fragments.tsv.gz.tbi"), tbi).unwrap();
    path
}

fn tbi_bytes(body: &[u8]) -> Vec<u8> {
    bgzf(body)
}

/// A tabix index body: one chromosome, its name, and what follows the names as given.
fn tbi_body(n_ref: i32, rest: &[u8]) -> Vec<u8> {
    let mut b = b"TBI\x01".to_vec();
    b.extend(n_ref.to_le_bytes());
    for v in [0x10000i32, 1, 2, 3, b'#' as i32, 0, 5] {
        b.extend(v.to_le_bytes());
    }
    b.extend(b"chr1\0");
    b.extend(rest);
    b
}

#[test]
fn the_tabix_index_is_checked_and_a_corrupt_or_stale_one_is_an_error() {
    let f = load_fixture();
    let data = std::fs::read(fixture("fragments.tsv.gz")).unwrap();
    let tbi = std::fs::read(fixture("fragments.tsv.gz.tbi")).unwrap();
    let limits = Limits::default();
    let tmp = tempfile::tempdir().unwrap();
    let err = |data: &[u8], tbi: &[u8]| -> String {
        let path = with_index(tmp.path(), data, tbi);
        let e = count(&path, &f.barcodes, &f.peaks, &limits)
            .unwrap_err()
            .to_string();
        assert!(e.contains("fragments.tsv.gz"), "{e}");
        e
    };

    // the real index passes (the first test), garbage and truncation do not
    for (name, bad) in [
        ("garbage", b"not an index at all, just text".to_vec()),
        ("half", tbi[..tbi.len() / 2].to_vec()),
        ("empty", Vec::new()),
        ("gzip, not bgzf", gzip(b"TBI\x01")),
    ] {
        let e = err(&data, &bad);
        assert!(e.contains(".tbi"), "{name}: {e}");
    }
    // its inflated content cut short, or claiming more than it holds
    let mut inflated = Vec::new();
    noodles_bgzf::io::Reader::new(tbi.as_slice())
        .read_to_end(&mut inflated)
        .unwrap();
    let e = err(&data, &tbi_bytes(&inflated[..inflated.len() * 2 / 3]));
    assert!(e.contains("not a valid tabix index"), "{e}");
    let e = err(&data, &tbi_bytes(&tbi_body(1, &i32::MAX.to_le_bytes())));
    assert!(e.contains("bins"), "{e}");
    let e = err(&data, &tbi_bytes(&tbi_body(1_000_000, &[0; 8])));
    assert!(e.contains("truncated"), "{e}");
    let e = err(&data, &tbi_bytes(&tbi_body(i32::MAX, &[])));
    assert!(e.contains("max_features"), "{e}");
    let mut many_chunks = 1i32.to_le_bytes().to_vec(); // one bin
    many_chunks.extend(4681u32.to_le_bytes());
    many_chunks.extend(i32::MAX.to_le_bytes()); // 2^31 chunks claimed
    let e = err(&data, &tbi_bytes(&tbi_body(1, &many_chunks)));
    assert!(e.contains("truncated"), "{e}");
    // a valid index of another file: one chromosome, no bins
    let mut empty_ref = 0i32.to_le_bytes().to_vec();
    empty_ref.extend(0i32.to_le_bytes());
    let e = err(&data, &tbi_bytes(&tbi_body(1, &empty_ref)));
    assert!(
        e.contains("does not match") || e.contains("not in the tabix index"),
        "{e}"
    );

    // stale: the data changed after indexing
    let text = fixture_text();
    let lines: Vec<&[u8]> = text.split_inclusive(|&b| b == b'\n').collect();
    let mut fewer: Vec<u8> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        if i != 5000 {
            fewer.extend_from_slice(l);
        }
    }
    let e = err(&bgzf(&fewer), &tbi);
    assert!(e.contains("does not match") && e.contains("records"), "{e}");
    // a chromosome the index does not know
    let mut extra = text.clone();
    extra.extend(b"chrUn_XYZ\t1\t100\tAAAC-1\t1\n");
    let e = err(&bgzf(&extra), &tbi);
    assert!(e.contains("not in the tabix index"), "{e}");
    // an index beside a file that is not BGZF
    let e = err(&gzip(&text), &tbi);
    assert!(e.contains("not BGZF"), "{e}");
    // the index of a longer file points past this one's end
    let e = err(&bgzf(&text[..text.len() / 3]), &tbi);
    assert!(e.contains("does not match"), "{e}");
}

/// The counting convention, the slow way.
fn brute_force(
    frags: &[(String, u64, u64, String)],
    barcodes: &[String],
    peaks: &[Peak],
) -> Vec<(usize, usize, f32)> {
    let mut dense = vec![vec![0u32; peaks.len()]; barcodes.len()];
    for (chrom, start, end, barcode) in frags {
        let Some(row) = barcodes.iter().position(|b| b == barcode) else {
            continue;
        };
        let chrom = crossomics_data::genome::unify_chrom(chrom);
        for cut in [*start, end - 1] {
            for (col, p) in peaks.iter().enumerate() {
                if p.chrom == chrom && p.start <= cut && cut < p.end {
                    dense[row][col] += 1;
                }
            }
        }
    }
    let mut out = Vec::new();
    for (r, row) in dense.iter().enumerate() {
        for (c, &v) in row.iter().enumerate() {
            if v > 0 {
                out.push((r, c, v as f32));
            }
        }
    }
    out
}

fn chrom_name() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["chr1", "1", "chr2", "2", "chrX", "X", "chr3"]).prop_map(String::from)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn count_matches_a_brute_force_loop(
        raw_peaks in prop::collection::vec((chrom_name(), 0u64..400, 1u64..120), 1..12),
        frags in prop::collection::vec(
            (chrom_name(), 0u64..500, 1u64..150, 0usize..5, prop::option::of(1u32..9)),
            1..60,
        ),
        compression in 0u8..3,
    ) {
        let peaks: Vec<Peak> = raw_peaks
            .iter()
            .map(|(c, s, len)| Peak {
                chrom: crossomics_data::genome::unify_chrom(c),
                start: *s,
                end: s + len,
            })
            .collect();
        // barcodes 0..3 are cells (listed in another order), 3 and 4 are not
        let names = ["AAAC-1", "CCCT-1", "GGGA-1", "TTTG-1", "ACGT-1"];
        let barcodes = strings(&["GGGA-1", "AAAC-1", "CCCT-1"]);
        let frags: Vec<(String, u64, u64, String, Option<u32>)> = frags
            .into_iter()
            .map(|(c, s, len, b, d)| (c, s, s + len, names[b].to_string(), d))
            .collect();
        let mut text = String::from("# a header\n");
        for (c, s, e, b, d) in &frags {
            match d {
                Some(d) => text.push_str(&format!("{c}\t{s}\t{e}\t{b}\t{d}\n")),
                None => text.push_str(&format!("{c}\t{s}\t{e}\t{b}\n")),
            }
        }
        let bytes = match compression {
            0 => text.clone().into_bytes(),
            1 => gzip(text.as_bytes()),
            _ => bgzf(text.as_bytes()),
        };
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f.tsv.gz");
        std::fs::write(&path, bytes).unwrap();
        let got = count(&path, &barcodes, &peaks, &Limits::default());
        let plain: Vec<(String, u64, u64, String)> =
            frags.iter().map(|(c, s, e, b, _)| (c.clone(), *s, *e, b.clone())).collect();
        if frags.iter().any(|f| barcodes.contains(&f.3)) {
            let m = got.unwrap();
            prop_assert_eq!((m.nrows(), m.ncols()), (barcodes.len(), peaks.len()));
            prop_assert_eq!(triplets(&m), brute_force(&plain, &barcodes, &peaks));
        } else {
            let e = got.unwrap_err().to_string();
            prop_assert!(e.contains("f.tsv.gz") && e.contains("look like"), "{}", e);
        }
    }
}

/// A small valid fragments file (BGZF) to damage.
const SMALL: &str =
    "# x\nchr1\t100\t150\tAAAC-1\t1\nchr1\t120\t400\tTTTG-1\t2\nchr2\t5\t90\tAAAC-1\t1\n";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Damaged files and indexes are errors (or, where the damage leaves valid data,
    /// counts), never panics, and errors name the file.
    #[test]
    fn damaged_files_and_indexes_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
        cut in any::<prop::sample::Index>(),
        tbi_tail in prop::collection::vec(any::<u8>(), 0..120),
        which in 0u8..4,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("damaged.tsv.gz");
        let mut bytes = match which {
            0 => bgzf(SMALL.as_bytes()),
            1 => gzip(SMALL.as_bytes()),
            _ => SMALL.as_bytes().to_vec(),
        };
        for (at, value) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= value;
        }
        if which == 3 {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        std::fs::write(&path, &bytes).unwrap();
        if which == 0 && !tbi_tail.is_empty() {
            // an index that starts right and goes wrong
            let mut tbi = tbi_body(1, &[]);
            tbi.truncate(12);
            tbi.extend(&tbi_tail);
            std::fs::write(tmp.path().join("damaged.tsv.gz.tbi"), bgzf(&tbi)).unwrap();
        }
        let result = count(
            &path,
            &strings(&["AAAC-1", "TTTG-1"]),
            &peaks(&["chr1-100-200", "chr2-0-50"]),
            &Limits::default(),
        );
        if let Err(e) = result {
            prop_assert!(e.to_string().contains("damaged.tsv.gz"), "{}", e);
        }
    }
}

const FEATURES: &str = "ENSG01\tCD3E\tGene Expression\tGRCh38\n\
ENSG02\tMS4A1\tGene Expression\tGRCh38\n\
chr1:100-600\tchr1:100-600\tPeaks\tGRCh38\n\
chr2:50-90\tchr2:50-90\tPeaks\tGRCh38\n";

/// features x barcodes (4 x 3)
const MATRIX: &str = "%%MatrixMarket matrix coordinate integer general\n\
4 3 5\n\
1 1 4\n\
2 2 2\n\
1 3 7\n\
3 1 9\n\
4 2 9\n";

const FRAGMENTS: &str = "#\n\
chr1\t150\t200\tTTTG-1\t1\n\
chr1\t590\t700\tAAAC-1\t1\n\
chr2\t40\t60\tGGGA-1\t2\n\
chr2\t60\t89\tGGGA-1\t2\n\
chr3\t1\t2\tAAAC-1\t1\n\
chr1\t150\t200\tNOTACELL-1\t1\n";

#[test]
fn the_fragments_dataset_config_pairs_rna_with_recounted_peaks() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pbmc/outs/filtered_feature_bc_matrix");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("matrix.mtx.gz"), gzip(MATRIX.as_bytes())).unwrap();
    std::fs::write(dir.join("features.tsv.gz"), gzip(FEATURES.as_bytes())).unwrap();
    std::fs::write(
        dir.join("barcodes.tsv.gz"),
        gzip(b"AAAC-1\nTTTG-1\nGGGA-1\n"),
    )
    .unwrap();
    std::fs::write(
        tmp.path().join("pbmc/outs/atac_fragments.tsv.gz"),
        bgzf(FRAGMENTS.as_bytes()),
    )
    .unwrap();
    let limits = Limits::default();

    // peaks from the 10x matrix itself
    let cfg: DatasetConfig = toml::from_str(
        "format = \"fragments\"\n\
         rna = \"pbmc/outs/filtered_feature_bc_matrix\"\n\
         fragments = \"pbmc/outs/atac_fragments.tsv.gz\"\n",
    )
    .unwrap();
    let d = cfg.load(tmp.path(), &limits).unwrap();
    assert_eq!(d.name, "pbmc");
    assert_eq!(d.cells.barcodes(), ["AAAC-1", "TTTG-1", "GGGA-1"]);
    assert_eq!(d.genes, ["CD3E", "MS4A1"]);
    assert_eq!(d.peaks, peaks(&["chr1-100-600", "chr2-50-90"]));
    assert_eq!(triplets(&d.rna), [(0, 0, 4.0), (1, 1, 2.0), (2, 0, 7.0)]);
    // the recount, not the matrix's own peak counts (9, 9): AAAC-1 [590,700) cuts 590 in
    // chr1 peak; TTTG-1 [150,200) both cuts in it; GGGA-1 [40,60) 59 in chr2 peak,
    // [60,89) both in it
    assert_eq!(triplets(&d.atac), [(0, 0, 1.0), (1, 0, 2.0), (2, 1, 3.0)]);

    // an explicit BED file replaces them
    std::fs::write(tmp.path().join("mine.bed"), "chr1\t0\t160\nchr3\t0\t10\n").unwrap();
    let cfg: DatasetConfig = toml::from_str(
        "format = \"fragments\"\n\
         rna = \"pbmc/outs/filtered_feature_bc_matrix\"\n\
         fragments = \"pbmc/outs/atac_fragments.tsv.gz\"\n\
         peaks = \"mine.bed\"\n",
    )
    .unwrap();
    let d = cfg.load(tmp.path(), &limits).unwrap();
    assert_eq!(d.peaks, peaks(&["chr1-0-160", "chr3-0-10"]));
    // AAAC-1's chr3 [1,2) has both cut sites on base 1: 2
    assert_eq!(triplets(&d.atac), [(0, 1, 2.0), (1, 0, 1.0)]);

    // an .h5ad RNA source: cells from its obs_names, peaks required
    let rna =
        CsrMatrix::try_from_csr_data(2, 2, vec![0, 1, 2], vec![0, 1], vec![3.0f32, 5.0]).unwrap();
    let h5ad_path = tmp.path().join("rna.h5ad");
    h5ad::write(
        &h5ad_path,
        Some((&rna).into()),
        &CellTable::new(strings(&["GGGA-1", "TTTG-1"])),
        &strings(&["CD3E", "LYZ"]),
        &[],
    )
    .unwrap();
    let no_peaks = DatasetConfig::Fragments {
        rna: "rna.h5ad".into(),
        fragments: "pbmc/outs/atac_fragments.tsv.gz".into(),
        peaks: None,
    };
    let e = no_peaks.load(tmp.path(), &limits).unwrap_err().to_string();
    assert!(e.contains("rna.h5ad") && e.contains("`peaks`"), "{e}");
    let with_peaks = DatasetConfig::Fragments {
        rna: "rna.h5ad".into(),
        fragments: "pbmc/outs/atac_fragments.tsv.gz".into(),
        peaks: Some("mine.bed".into()),
    };
    let d = with_peaks.load(tmp.path(), &limits).unwrap();
    assert_eq!(d.name, "rna");
    assert_eq!(d.cells.barcodes(), ["GGGA-1", "TTTG-1"]);
    assert_eq!(triplets(&d.atac), [(1, 0, 1.0)]);

    // typos are errors naming the key
    let e = toml::from_str::<DatasetConfig>(
        "format = \"fragments\"\nrna = \"x\"\nfragments = \"y\"\npeak = \"z\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("peak"), "{e}");
}
