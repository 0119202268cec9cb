//! Putting a researcher's new single-modality data into a trained model's input features
//! (what the web portal runs on an upload before a translator predicts the other modality).
//!
//! An upload rarely shares the model's feature table to the letter:
//! - genes differ in case (`Cd4` / `CD4`), or are named by Ensembl id, with or without
//!   version (`ENSG00000141510.16`); [`match_genes`] tries names, then alternative ids;
//! - peak calls almost never share coordinates with the training peaks; [`match_peaks`]
//!   matches by genomic overlap, and [`to_model_features`] aggregates every input peak that
//!   overlaps a model peak into that peak's column;
//! - the coordinates may be on another genome build (hg19 instead of GRCh38), which makes
//!   overlaps silently wrong; [`check_build`] refuses a declared mismatch and catches most
//!   undeclared ones by peaks that run past the end of their chromosome.
//!
//! [`FeatureCoverage`] says how many of the model's features the upload has, and
//! [`require_coverage`] refuses uploads with too few. Nothing here panics on bad input:
//! every failure is a [`DataError`] naming the upload and what is wrong with it.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};
use crate::pair::SingleModality;

/// The two modalities a translator reads or predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    Rna,
    Atac,
}

impl Modality {
    /// What the modality's features are called: `genes` or `peaks`.
    pub fn features(self) -> &'static str {
        match self {
            Modality::Rna => "genes",
            Modality::Atac => "peaks",
        }
    }
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Modality::Rna => "RNA",
            Modality::Atac => "ATAC",
        })
    }
}

// ---------------------------------------------------------------------------------------
// Genes
// ---------------------------------------------------------------------------------------

/// The stable id of an Ensembl identifier without its version: `ENSG00000141510.16` ->
/// `ENSG00000141510` (any species prefix, any feature letter: `ENSMUSG...`, `ENST...`).
/// `None` for anything else, including a versioned id with a suffix after the version
/// (GENCODE's `ENSG00000182378.14_PAR_Y` stays distinct from its chrX copy) and gene
/// symbols with a dot (`RP11-34P13.7`).
pub fn ensembl_stable_id(id: &str) -> Option<&str> {
    let (base, version) = id.rsplit_once('.')?;
    let is_ensembl = base.len() >= 15
        && base.is_char_boundary(3)
        && base[..3].eq_ignore_ascii_case("ENS")
        && base.bytes().all(|b| b.is_ascii_alphanumeric())
        && base.bytes().rev().take(11).all(|b| b.is_ascii_digit());
    let is_version = !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit());
    (is_ensembl && is_version).then_some(base)
}

/// The loosest key genes are matched by: ASCII upper case, Ensembl version stripped.
fn gene_key(name: &str) -> String {
    ensembl_stable_id(name).unwrap_or(name).to_ascii_uppercase()
}

/// Index from key to the first column that has it (first occurrence wins: files with
/// duplicated symbols keep the first column, as scanpy's `var_names_make_unique` would).
fn first_index<K: std::hash::Hash + Eq>(keys: impl Iterator<Item = K>) -> HashMap<K, usize> {
    let mut map = HashMap::new();
    for (i, k) in keys.enumerate() {
        map.entry(k).or_insert(i);
    }
    map
}

/// For each model gene, the column of the input that holds it.
///
/// Tried in this order, and the first rule that matches decides (within a rule, the first
/// input column with the key wins, so duplicated input names resolve to their first column):
/// 1. the same name, exactly;
/// 2. the same name ignoring ASCII case (`Cd4` = `CD4`);
/// 3. the same alternative id, exactly (`ids`, e.g. the `gene_ids` var column holding
///    Ensembl ids, when the model was trained on ids);
/// 4. the same alternative id ignoring ASCII case and an Ensembl version on either side
///    (`ENSG00000141510.16` = `ensg00000141510`);
/// 5. the same name ignoring ASCII case and an Ensembl version on either side (for inputs
///    whose names are versioned Ensembl ids).
///
/// `ids`, when given, must have one entry per input column; extra or missing entries are
/// ignored (`to_model_features` checks the length and reports a mismatch).
pub fn match_genes(
    model_genes: &[String],
    names: &[String],
    ids: Option<&[String]>,
) -> Vec<Option<usize>> {
    let ids = ids.map(|ids| &ids[..ids.len().min(names.len())]);
    let exact = first_index(names.iter().map(String::as_str));
    let folded = first_index(names.iter().map(|n| n.to_ascii_uppercase()));
    let name_keys = first_index(names.iter().map(|n| gene_key(n)));
    let id_exact = ids.map(|ids| first_index(ids.iter().map(String::as_str)));
    let id_keys = ids.map(|ids| first_index(ids.iter().map(|n| gene_key(n))));
    model_genes
        .iter()
        .map(|g| {
            let key = gene_key(g);
            exact
                .get(g.as_str())
                .or_else(|| folded.get(&g.to_ascii_uppercase()))
                .or_else(|| id_exact.as_ref().and_then(|m| m.get(g.as_str())))
                .or_else(|| id_keys.as_ref().and_then(|m| m.get(&key)))
                .or_else(|| name_keys.get(&key))
                .copied()
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Peaks
// ---------------------------------------------------------------------------------------

/// Whether two half-open intervals share at least one base: the same (unified)
/// chromosome, `a.start < b.end` and `b.start < a.end`. An empty interval
/// (`end <= start`) overlaps nothing.
pub fn overlaps(a: &Peak, b: &Peak) -> bool {
    a.start < a.end
        && b.start < b.end
        && a.start < b.end
        && b.start < a.end
        && (a.chrom == b.chrom || unify_chrom(&a.chrom) == unify_chrom(&b.chrom))
}

/// Sweep events at one coordinate are handled ends first (half-open intervals that only
/// touch do not overlap), then input starts, then model starts.
const MODEL_END: u8 = 0;
const INPUT_END: u8 = 1;
const INPUT_START: u8 = 2;
const MODEL_START: u8 = 3;

/// For every model peak, the input peaks that overlap it (see [`overlaps`]), ascending.
///
/// One sweep over the sorted start and end coordinates of both sets, per chromosome
/// (chromosome names unified, so `1` meets `chr1`): an overlapping pair is reported once,
/// when the later-starting of the two starts while the other is open. Cost
/// O((m + n) log(m + n) + k log k) for k overlapping pairs, never O(m n) unless every
/// pair overlaps.
pub fn match_peaks(model_peaks: &[Peak], input: &[Peak]) -> Vec<Vec<usize>> {
    let mut chrom_ids: HashMap<String, usize> = HashMap::new();
    let mut chrom_id = |c: &str| {
        let next = chrom_ids.len();
        *chrom_ids.entry(unify_chrom(c)).or_insert(next)
    };
    let mut events: Vec<(usize, u64, u8, usize)> =
        Vec::with_capacity(2 * (model_peaks.len() + input.len()));
    for (i, p) in model_peaks.iter().enumerate() {
        if p.start < p.end {
            let c = chrom_id(&p.chrom);
            events.push((c, p.start, MODEL_START, i));
            events.push((c, p.end, MODEL_END, i));
        }
    }
    for (i, p) in input.iter().enumerate() {
        if p.start < p.end {
            let c = chrom_id(&p.chrom);
            events.push((c, p.start, INPUT_START, i));
            events.push((c, p.end, INPUT_END, i));
        }
    }
    events.sort_unstable();

    let mut out: Vec<Vec<usize>> = vec![Vec::new(); model_peaks.len()];
    // open intervals, with each one's slot for O(1) removal
    let mut open_model: Vec<usize> = Vec::new();
    let mut open_input: Vec<usize> = Vec::new();
    let mut model_slot = vec![usize::MAX; model_peaks.len()];
    let mut input_slot = vec![usize::MAX; input.len()];
    fn close(open: &mut Vec<usize>, slot: &mut [usize], i: usize) {
        let s = slot[i];
        open.swap_remove(s);
        if let Some(&moved) = open.get(s) {
            slot[moved] = s;
        }
    }
    // events are grouped by chromosome and every interval closes on its own chromosome,
    // so the open sets are empty whenever the chromosome changes
    for (_, _, kind, i) in events {
        match kind {
            MODEL_END => close(&mut open_model, &mut model_slot, i),
            INPUT_END => close(&mut open_input, &mut input_slot, i),
            INPUT_START => {
                for &m in &open_model {
                    out[m].push(i);
                }
                input_slot[i] = open_input.len();
                open_input.push(i);
            }
            _ => {
                out[i].extend_from_slice(&open_input);
                model_slot[i] = open_model.len();
                open_model.push(i);
            }
        }
    }
    for v in &mut out {
        v.sort_unstable();
    }
    out
}

/// Parses peak names (`chr1-100-200`, `chr1:100-200`, ...), e.g. a fitted model's
/// `input_peaks` or an upload's feature names; the error names the source, the position
/// and the text.
pub fn parse_peaks(names: &[String], source: &str) -> Result<Vec<Peak>> {
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            Peak::parse(n)
                .map_err(|reason| DataError::invalid(format!("{source}: peak {}", i + 1), reason))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Genome builds
// ---------------------------------------------------------------------------------------

/// A reference genome build: human GRCh38 / hg19, mouse mm10 (GRCm38) / GRCm39.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum GenomeBuild {
    /// GRCh38 = UCSC hg38
    Grch38,
    /// UCSC hg19 = GRCh37 (hg19's chrM is the older 16,571 bp sequence, not rCRS)
    Hg19,
    /// UCSC mm10 = GRCm38 (mouse)
    Mm10,
    /// GRCm39 = UCSC mm39 (mouse)
    Grcm39,
}

/// The species of a [`GenomeBuild`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Species {
    Human,
    Mouse,
}

/// Lengths of chr1-22, X, Y and M in bp, from UCSC's chromInfo tables
/// (`hgdownload.soe.ucsc.edu/goldenPath/{hg38,hg19}/database/chromInfo.txt.gz`, the same
/// numbers as `{hg38,hg19}.chrom.sizes`).
const GRCH38_LENGTHS: [(&str, u64); 25] = [
    ("chr1", 248_956_422),
    ("chr2", 242_193_529),
    ("chr3", 198_295_559),
    ("chr4", 190_214_555),
    ("chr5", 181_538_259),
    ("chr6", 170_805_979),
    ("chr7", 159_345_973),
    ("chr8", 145_138_636),
    ("chr9", 138_394_717),
    ("chr10", 133_797_422),
    ("chr11", 135_086_622),
    ("chr12", 133_275_309),
    ("chr13", 114_364_328),
    ("chr14", 107_043_718),
    ("chr15", 101_991_189),
    ("chr16", 90_338_345),
    ("chr17", 83_257_441),
    ("chr18", 80_373_285),
    ("chr19", 58_617_616),
    ("chr20", 64_444_167),
    ("chr21", 46_709_983),
    ("chr22", 50_818_468),
    ("chrX", 156_040_895),
    ("chrY", 57_227_415),
    ("chrM", 16_569),
];

/// See [`GRCH38_LENGTHS`].
const HG19_LENGTHS: [(&str, u64); 25] = [
    ("chr1", 249_250_621),
    ("chr2", 243_199_373),
    ("chr3", 198_022_430),
    ("chr4", 191_154_276),
    ("chr5", 180_915_260),
    ("chr6", 171_115_067),
    ("chr7", 159_138_663),
    ("chr8", 146_364_022),
    ("chr9", 141_213_431),
    ("chr10", 135_534_747),
    ("chr11", 135_006_516),
    ("chr12", 133_851_895),
    ("chr13", 115_169_878),
    ("chr14", 107_349_540),
    ("chr15", 102_531_392),
    ("chr16", 90_354_753),
    ("chr17", 81_195_210),
    ("chr18", 78_077_248),
    ("chr19", 59_128_983),
    ("chr20", 63_025_520),
    ("chr21", 48_129_895),
    ("chr22", 51_304_566),
    ("chrX", 155_270_560),
    ("chrY", 59_373_566),
    ("chrM", 16_571),
];

/// Lengths of chr1-19, X, Y and M in bp: UCSC mm10 (`mm10.chrom.sizes`), as shipped in the
/// PyPI package RGT 1.0.2, file `data/mm10/chrom.sizes.mm10`.
const MM10_LENGTHS: [(&str, u64); 22] = [
    ("chr1", 195_471_971),
    ("chr2", 182_113_224),
    ("chr3", 160_039_680),
    ("chr4", 156_508_116),
    ("chr5", 151_834_684),
    ("chr6", 149_736_546),
    ("chr7", 145_441_459),
    ("chr8", 129_401_213),
    ("chr9", 124_595_110),
    ("chr10", 130_694_993),
    ("chr11", 122_082_543),
    ("chr12", 120_129_022),
    ("chr13", 120_421_639),
    ("chr14", 124_902_244),
    ("chr15", 104_043_685),
    ("chr16", 98_207_768),
    ("chr17", 94_987_271),
    ("chr18", 90_702_639),
    ("chr19", 61_431_566),
    ("chrX", 171_031_299),
    ("chrY", 91_744_698),
    ("chrM", 16_299),
];

/// Lengths of chr1-19, X, Y and M in bp: UCSC mm39 = GRCm39 (`mm39.chrom.sizes`), as
/// shipped in the PyPI package RGT 1.0.2, file `data/mm39/chrom.sizes.mm39`.
const GRCM39_LENGTHS: [(&str, u64); 22] = [
    ("chr1", 195_154_279),
    ("chr2", 181_755_017),
    ("chr3", 159_745_316),
    ("chr4", 156_860_686),
    ("chr5", 151_758_149),
    ("chr6", 149_588_044),
    ("chr7", 144_995_196),
    ("chr8", 130_127_694),
    ("chr9", 124_359_700),
    ("chr10", 130_530_862),
    ("chr11", 121_973_369),
    ("chr12", 120_092_757),
    ("chr13", 120_883_175),
    ("chr14", 125_139_656),
    ("chr15", 104_073_951),
    ("chr16", 98_008_968),
    ("chr17", 95_294_699),
    ("chr18", 90_720_763),
    ("chr19", 61_420_004),
    ("chrX", 169_476_592),
    ("chrY", 91_455_967),
    ("chrM", 16_299),
];

impl GenomeBuild {
    pub const ALL: [GenomeBuild; 4] = [
        GenomeBuild::Grch38,
        GenomeBuild::Hg19,
        GenomeBuild::Mm10,
        GenomeBuild::Grcm39,
    ];

    /// The canonical name: `GRCh38`, `hg19`, `mm10` or `GRCm39`.
    pub fn name(self) -> &'static str {
        match self {
            GenomeBuild::Grch38 => "GRCh38",
            GenomeBuild::Hg19 => "hg19",
            GenomeBuild::Mm10 => "mm10",
            GenomeBuild::Grcm39 => "GRCm39",
        }
    }

    /// Human or mouse.
    pub fn species(self) -> Species {
        match self {
            GenomeBuild::Grch38 | GenomeBuild::Hg19 => Species::Human,
            GenomeBuild::Mm10 | GenomeBuild::Grcm39 => Species::Mouse,
        }
    }

    /// The other build of the same species (GRCh38 <-> hg19, mm10 <-> GRCm39), the one
    /// data of this species is most often on instead; `None` for a build without one.
    pub fn same_species_other(self) -> Option<Self> {
        match self {
            GenomeBuild::Grch38 => Some(GenomeBuild::Hg19),
            GenomeBuild::Hg19 => Some(GenomeBuild::Grch38),
            GenomeBuild::Mm10 => Some(GenomeBuild::Grcm39),
            GenomeBuild::Grcm39 => Some(GenomeBuild::Mm10),
        }
    }

    /// `(chromosome, length)` of chr1-22 (human) or chr1-19 (mouse), X, Y, M.
    pub fn chrom_lengths(self) -> impl Iterator<Item = (&'static str, u64)> {
        let table: &'static [(&'static str, u64)] = match self {
            GenomeBuild::Grch38 => &GRCH38_LENGTHS,
            GenomeBuild::Hg19 => &HG19_LENGTHS,
            GenomeBuild::Mm10 => &MM10_LENGTHS,
            GenomeBuild::Grcm39 => &GRCM39_LENGTHS,
        };
        table.iter().copied()
    }

    /// The length of a chromosome (any spelling: `1`, `chr1`, `MT`); `None` for contigs
    /// and anything else outside the build's numbered chromosomes, X, Y, M.
    pub fn chrom_length(self, chrom: &str) -> Option<u64> {
        let unified = unify_chrom(chrom);
        self.chrom_lengths()
            .find(|(c, _)| *c == unified)
            .map(|(_, l)| l)
    }
}

impl fmt::Display for GenomeBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for GenomeBuild {
    type Err = String;

    /// `GRCh38` / `hg38`, `GRCh37` / `hg19`, `mm10` / `GRCm38` and `GRCm39` / `mm39`, in
    /// any case.
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "grch38" | "hg38" => Ok(GenomeBuild::Grch38),
            "grch37" | "hg19" => Ok(GenomeBuild::Hg19),
            "mm10" | "grcm38" => Ok(GenomeBuild::Mm10),
            "grcm39" | "mm39" => Ok(GenomeBuild::Grcm39),
            _ => Err(format!(
                "`{s}` is not a genome build (expected GRCh38 / hg38, GRCh37 / hg19, \
                 mm10 / GRCm38 or GRCm39 / mm39)"
            )),
        }
    }
}

impl TryFrom<String> for GenomeBuild {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        s.parse()
    }
}

impl From<GenomeBuild> for String {
    fn from(b: GenomeBuild) -> Self {
        b.name().to_string()
    }
}

/// `248956422` -> `248,956,422`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Refuses input whose genome build is not the model's.
///
/// - `declared` (what the uploader says) differing from `model` is an error.
/// - Any input peak on chr1-22, X, Y or M that ends past the end of its chromosome in the
///   reference build (the model's, else the declared one) is an error that names the peak
///   and says whether it fits the other build. Contigs are not checked. This catches most,
///   not all, undeclared hg19 uploads to a GRCh38 model (hg19 chr1 is longer, so peaks near
///   its end give it away; coordinates inside both builds cannot tell them apart).
///
/// With neither build known there is nothing to check. Errors start with
/// "genome build mismatch" and name `source`.
pub fn check_build(
    model: Option<GenomeBuild>,
    declared: Option<GenomeBuild>,
    input_peaks: &[Peak],
    source: &str,
) -> Result<()> {
    let mismatch =
        |reason: String| DataError::invalid(source, format!("genome build mismatch: {reason}"));
    if let (Some(m), Some(d)) = (model, declared)
        && m != d
    {
        return Err(mismatch(format!(
            "the data is declared as {d}, but the model was trained on {m}; lift the peaks \
             over to {m} (UCSC liftOver, CrossMap) or use a model trained on {d}"
        )));
    }
    let Some(reference) = model.or(declared) else {
        return Ok(());
    };
    let whose = if model.is_some() {
        "the model's build"
    } else {
        "the declared build"
    };
    let mut beyond = input_peaks.iter().filter(|p| {
        reference
            .chrom_length(&p.chrom)
            .is_some_and(|len| p.end > len)
    });
    let Some(first) = beyond.next() else {
        return Ok(());
    };
    let others = beyond.count();
    let len = reference.chrom_length(&first.chrom).unwrap_or(0);
    let fits = match reference.same_species_other() {
        Some(other) => match other.chrom_length(&first.chrom) {
            Some(other_len) if first.end <= other_len => format!(
                "it fits {other} ({} is {} bp there): the data is probably {other}; lift it \
                 over to {reference} (UCSC liftOver, CrossMap)",
                first.chrom,
                thousands(other_len)
            ),
            Some(other_len) => format!(
                "it fits neither {reference} nor {other} ({} bp there)",
                thousands(other_len)
            ),
            None => format!(
                "it fits neither {reference} nor {other} (no {} there)",
                first.chrom
            ),
        },
        None => format!("it does not fit {reference}"),
    };
    let more = if others > 0 {
        format!(" ({others} more peaks end past their chromosome)")
    } else {
        String::new()
    };
    Err(mismatch(format!(
        "peak {first} ends beyond {} of {reference}, {whose} ({} bp){more}; {fits}",
        first.chrom,
        thousands(len)
    )))
}

// ---------------------------------------------------------------------------------------
// Coverage
// ---------------------------------------------------------------------------------------

/// How many of the model's input features an upload has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureCoverage {
    pub modality: Modality,
    /// model features present in the input (for peaks: overlapped by at least one input peak)
    pub found: usize,
    /// the model's input features
    pub total: usize,
    /// the first [`FeatureCoverage::MISSING_SHOWN`] missing model features, in model order
    pub missing: Vec<String>,
}

impl FeatureCoverage {
    /// How many missing features [`FeatureCoverage::missing`] lists at most.
    pub const MISSING_SHOWN: usize = 20;

    /// `found / total`; 0 when the model has no features.
    pub fn fraction(&self) -> f64 {
        if self.total == 0 {
            0.0
        } else {
            self.found as f64 / self.total as f64
        }
    }

    /// From whether each of `total` model features (with its name, in model order) was
    /// found.
    pub fn new(
        modality: Modality,
        found: impl Iterator<Item = (bool, String)>,
        total: usize,
    ) -> Self {
        let mut n = 0;
        let mut missing = Vec::new();
        for (present, name) in found {
            if present {
                n += 1;
            } else if missing.len() < Self::MISSING_SHOWN {
                missing.push(name);
            }
        }
        Self {
            modality,
            found: n,
            total,
            missing,
        }
    }
}

/// Refuses an upload that has less than `min_fraction` of the model's features (and always
/// one that has none): the message names the source, found / total and the threshold, and
/// lists the first missing features.
pub fn require_coverage(cov: &FeatureCoverage, min_fraction: f64, source: &str) -> Result<()> {
    if !(0.0..=1.0).contains(&min_fraction) {
        return Err(DataError::invalid(
            source,
            format!("the coverage threshold {min_fraction} is not a fraction in [0, 1]"),
        ));
    }
    let fraction = cov.fraction();
    if cov.found > 0 && fraction >= min_fraction {
        return Ok(());
    }
    let n_missing = cov.total - cov.found.min(cov.total);
    let listed = if cov.missing.is_empty() {
        String::new()
    } else {
        format!(
            "; missing{}: {}",
            if n_missing > cov.missing.len() {
                format!(" (first {} of {n_missing})", cov.missing.len())
            } else {
                String::new()
            },
            cov.missing.join(", ")
        )
    };
    Err(DataError::invalid(
        source,
        format!(
            "only {} of the model's {} {} {} ({:.1}%) are in the data, below the required \
             {:.1}%{listed}",
            cov.found,
            cov.total,
            cov.modality,
            cov.modality.features(),
            100.0 * fraction,
            100.0 * min_fraction,
        ),
    ))
}

// ---------------------------------------------------------------------------------------
// Projection
// ---------------------------------------------------------------------------------------

/// A model's input features, in the model's column order.
#[derive(Debug, Clone, Copy)]
pub enum ModelFeatures<'a> {
    Genes(&'a [String]),
    Peaks(&'a [Peak]),
}

impl ModelFeatures<'_> {
    pub fn modality(&self) -> Modality {
        match self {
            ModelFeatures::Genes(_) => Modality::Rna,
            ModelFeatures::Peaks(_) => Modality::Atac,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            ModelFeatures::Genes(g) => g.len(),
            ModelFeatures::Peaks(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// An uploaded single-modality file.
#[derive(Debug, Clone, Copy)]
pub enum Upload<'a> {
    /// genes named by `data.features`; `ids` are alternative names per column (e.g. the
    /// Ensembl `gene_ids` var column), used when a name does not match
    Rna {
        data: &'a SingleModality<String>,
        ids: Option<&'a [String]>,
    },
    /// peaks already parsed (see [`parse_peaks`], `h5ad::parse_peaks`)
    Atac(&'a SingleModality<Peak>),
}

impl Upload<'_> {
    pub fn modality(&self) -> Modality {
        match self {
            Upload::Rna { .. } => Modality::Rna,
            Upload::Atac(_) => Modality::Atac,
        }
    }

    pub fn source(&self) -> &Path {
        match self {
            Upload::Rna { data, .. } => &data.source,
            Upload::Atac(data) => &data.source,
        }
    }

    fn matrix(&self) -> &CsrMatrix<f32> {
        match self {
            Upload::Rna { data, .. } => &data.matrix,
            Upload::Atac(data) => &data.matrix,
        }
    }

    fn n_features(&self) -> usize {
        match self {
            Upload::Rna { data, .. } => data.features.len(),
            Upload::Atac(data) => data.features.len(),
        }
    }
}

/// How the values of several input peaks overlapping one model peak are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeakAggregation {
    /// [`PeakAggregation::Max`] when every stored value of the input is 1 (binarized
    /// accessibility), else [`PeakAggregation::Sum`] (counts).
    #[default]
    Auto,
    /// Element-wise maximum: binary input stays binary (a model peak is open when any
    /// overlapping input peak is), which is what models trained on binarized peaks expect.
    Max,
    /// Sum: the model peak's count is the fragments of every input peak overlapping it. A
    /// peak that one caller split in two (or called narrower) has its reads spread over the
    /// pieces; the sum recovers the count the model peak would have had, where the maximum
    /// would drop the reads of all but one piece. (After the model's own binarization, the
    /// sum of counts gives the same 0/1 as the maximum.) An input peak overlapping two model
    /// peaks counts for both.
    Sum,
}

/// An upload in the model's input features.
#[derive(Debug, Clone)]
pub struct ModelInput {
    /// cells x model features, in the model's order; missing features are zero columns
    pub matrix: CsrMatrix<f32>,
    pub coverage: FeatureCoverage,
    /// how peaks were combined (`Max` or `Sum`, `Auto` resolved); `None` for genes
    pub aggregation: Option<PeakAggregation>,
    /// for each model feature, in model order, whether the upload has it
    pub found: Vec<bool>,
}

/// Puts an upload into the model's input features: genes by [`match_genes`] (each model
/// gene takes its matched column), peaks by [`match_peaks`] (each model peak combines the
/// input peaks that overlap it, see [`PeakAggregation`]). The matrix keeps the upload's
/// cells, in order.
///
/// Errors (each naming the upload): the modality is not the model's; the matrix has no
/// cells or no features; the feature table or `ids` do not match the columns; a value is
/// NaN or infinite; an input peak is empty (`end <= start`); no model feature is found at
/// all. Too low coverage is for the caller to judge with [`require_coverage`].
pub fn to_model_features(
    upload: Upload<'_>,
    model: ModelFeatures<'_>,
    aggregation: PeakAggregation,
) -> Result<ModelInput> {
    let source = upload.source();
    let name = source.display().to_string();
    let wrong_modality = || {
        DataError::invalid(
            &name,
            format!(
                "the data is {} ({}), but the model's inputs are {} {}",
                upload.modality(),
                upload.modality().features(),
                model.modality(),
                model.modality().features()
            ),
        )
    };
    if upload.modality() != model.modality() {
        return Err(wrong_modality());
    }
    if model.is_empty() {
        return Err(DataError::Empty {
            what: "the model's input features".into(),
            reason: format!("the model lists no {}", model.modality().features()),
        });
    }
    let m = upload.matrix();
    if m.nrows() == 0 || m.ncols() == 0 {
        return Err(DataError::Empty {
            what: name.clone(),
            reason: format!("{} cells x {} features", m.nrows(), m.ncols()),
        });
    }
    let shape = |what: &str, got: usize| {
        if got == m.ncols() {
            Ok(())
        } else {
            Err(DataError::ShapeMismatch {
                path: source.to_path_buf(),
                what: what.into(),
                got,
                expected: m.ncols(),
                expected_by: "the matrix columns".into(),
            })
        }
    };
    shape(
        &format!("the {} table", upload.modality().features()),
        upload.n_features(),
    )?;
    if let Upload::Rna { ids: Some(ids), .. } = upload {
        shape("the gene ids", ids.len())?;
    }
    if let Some((row, col, value)) = m.triplet_iter().find(|(_, _, v)| !v.is_finite()) {
        return Err(DataError::NonFinite {
            path: source.to_path_buf(),
            what: "the matrix".into(),
            row,
            col,
            value: *value,
        });
    }

    match (upload, model) {
        (Upload::Rna { data, ids }, ModelFeatures::Genes(genes)) => {
            let matched = match_genes(genes, &data.features, ids);
            let coverage = FeatureCoverage::new(
                Modality::Rna,
                genes
                    .iter()
                    .zip(&matched)
                    .map(|(g, c)| (c.is_some(), g.clone())),
                genes.len(),
            );
            if coverage.found == 0 {
                return Err(nothing_matched(
                    &name,
                    "genes",
                    genes.iter().cloned(),
                    data.features.iter().cloned(),
                    if ids.is_some() {
                        "neither by name nor by gene id (case and Ensembl versions ignored)"
                    } else {
                        "by name (case ignored); if the model or the file names genes by \
                         Ensembl id, pass the file's gene ids (var `gene_ids`)"
                    },
                ));
            }
            let sources: Vec<Vec<usize>> = matched
                .iter()
                .map(|c| c.map(|c| vec![c]).unwrap_or_default())
                .collect();
            Ok(ModelInput {
                matrix: gather(m, &sources, PeakAggregation::Sum),
                coverage,
                aggregation: None,
                found: matched.iter().map(Option::is_some).collect(),
            })
        }
        (Upload::Atac(data), ModelFeatures::Peaks(peaks)) => {
            if let Some((i, p)) = data
                .features
                .iter()
                .enumerate()
                .find(|(_, p)| p.end <= p.start)
            {
                return Err(DataError::invalid(
                    format!("{name}: peak {}", i + 1),
                    format!("`{p}`: end {} is not after start {}", p.end, p.start),
                ));
            }
            let matched = match_peaks(peaks, &data.features);
            let coverage = FeatureCoverage::new(
                Modality::Atac,
                peaks
                    .iter()
                    .zip(&matched)
                    .map(|(p, c)| (!c.is_empty(), p.to_string())),
                peaks.len(),
            );
            if coverage.found == 0 {
                let chroms = |ps: &[Peak]| {
                    let mut seen: Vec<&str> = Vec::new();
                    for p in ps {
                        if !seen.contains(&p.chrom.as_str()) && seen.len() < 5 {
                            seen.push(&p.chrom);
                        }
                    }
                    seen.join(", ")
                };
                return Err(nothing_matched(
                    &name,
                    "peaks",
                    peaks.iter().map(Peak::to_string),
                    data.features.iter().map(Peak::to_string),
                    &format!(
                        "by overlap (model chromosomes {}; the data's {}): check the genome build \
                         and the chromosome names",
                        chroms(peaks),
                        chroms(&data.features)
                    ),
                ));
            }
            let aggregation = match aggregation {
                PeakAggregation::Auto if m.values().iter().all(|&v| v == 1.0) => {
                    PeakAggregation::Max
                }
                PeakAggregation::Auto => PeakAggregation::Sum,
                other => other,
            };
            Ok(ModelInput {
                matrix: gather(m, &matched, aggregation),
                coverage,
                aggregation: Some(aggregation),
                found: matched.iter().map(|c| !c.is_empty()).collect(),
            })
        }
        _ => Err(wrong_modality()),
    }
}

/// "none matched", with the first three features of each side (often the tell: `CD4`
/// against `ENSG...`, or peaks on contigs named differently).
fn nothing_matched(
    source: &str,
    what: &str,
    model: impl Iterator<Item = String>,
    have: impl Iterator<Item = String>,
    how: &str,
) -> DataError {
    let model: Vec<String> = model.take(3).collect();
    let have: Vec<String> = have.take(3).collect();
    DataError::invalid(
        source,
        format!(
            "none of the model's {what} is in the data, {how} (model: {} ...; data: {} ...)",
            model.join(", "),
            have.join(", ")
        ),
    )
}

/// Builds `cells x sources.len()`: column `j` combines the input columns `sources[j]`
/// (absent entries count as 0, so the maximum of negative values and a missing entry is 0);
/// exact zeros are not stored.
fn gather(m: &CsrMatrix<f32>, sources: &[Vec<usize>], agg: PeakAggregation) -> CsrMatrix<f32> {
    // input column -> model columns (CSR-style adjacency)
    let mut offsets = vec![0usize; m.ncols() + 1];
    for s in sources {
        for &c in s {
            offsets[c + 1] += 1;
        }
    }
    for c in 0..m.ncols() {
        offsets[c + 1] += offsets[c];
    }
    let mut fill = offsets.clone();
    let mut targets = vec![0usize; offsets[m.ncols()]];
    for (j, s) in sources.iter().enumerate() {
        for &c in s {
            targets[fill[c]] = j;
            fill[c] += 1;
        }
    }

    let mut row_offsets = Vec::with_capacity(m.nrows() + 1);
    row_offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut entries: Vec<(usize, f32)> = Vec::new();
    for row in m.row_iter() {
        entries.clear();
        for (&c, &v) in row.col_indices().iter().zip(row.values()) {
            for &j in &targets[offsets[c]..offsets[c + 1]] {
                entries.push((j, v));
            }
        }
        entries.sort_unstable_by_key(|e| e.0);
        let mut k = 0;
        while k < entries.len() {
            let j = entries[k].0;
            let run = entries[k..].iter().take_while(|e| e.0 == j).count();
            let vals = entries[k..k + run].iter().map(|e| e.1);
            let v = match agg {
                PeakAggregation::Max => {
                    let max = vals.fold(f32::NEG_INFINITY, f32::max);
                    if run < sources[j].len() {
                        max.max(0.0)
                    } else {
                        max
                    }
                }
                _ => vals.map(f64::from).sum::<f64>() as f32,
            };
            if v != 0.0 {
                indices.push(j);
                values.push(v);
            }
            k += run;
        }
        row_offsets.push(indices.len());
    }
    CsrMatrix::try_from_csr_data(m.nrows(), sources.len(), row_offsets, indices, values)
        .expect("sorted, distinct columns in range form a valid CSR matrix")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn p(text: &str) -> Peak {
        Peak::parse(text).unwrap()
    }

    #[test]
    fn ensembl_stable_ids() {
        assert_eq!(
            ensembl_stable_id("ENSG00000141510.16"),
            Some("ENSG00000141510")
        );
        assert_eq!(
            ensembl_stable_id("ENSMUSG00000059552.3"),
            Some("ENSMUSG00000059552")
        );
        assert_eq!(ensembl_stable_id("ENSG00000141510"), None);
        assert_eq!(ensembl_stable_id("ENSG00000182378.14_PAR_Y"), None);
        assert_eq!(ensembl_stable_id("RP11-34P13.7"), None);
        assert_eq!(ensembl_stable_id("ENSG.1"), None);
        assert_eq!(ensembl_stable_id("ENSG0000014151é.1"), None);
    }

    #[test]
    fn gene_rules_apply_in_order() {
        let model = s(&["CD4", "cd8a", "TP53", "ENSG00000010610", "MT-CO1", "ABSENT"]);
        // exact beats case-insensitive even when the folded match comes first
        let names = s(&["cd4", "CD4", "CD8A", "p53", "X", "mt-co1"]);
        let ids = s(&[
            "ENSG00000010610.10",
            "ENSG00000010610.10",
            "ENSG00000153563",
            "ENSG00000141510",
            "TP53",
            "ENSG00000198804.2",
        ]);
        assert_eq!(
            match_genes(&model, &names, Some(&ids)),
            vec![Some(1), Some(2), Some(4), Some(0), Some(5), None]
        );
        // without ids, TP53 and the Ensembl id are missing
        assert_eq!(
            match_genes(&model, &names, None),
            vec![Some(1), Some(2), None, None, Some(5), None]
        );
    }

    #[test]
    fn duplicate_names_take_the_first_column() {
        let names = s(&["a", "A", "A"]);
        assert_eq!(match_genes(&s(&["A"]), &names, None), vec![Some(1)]);
        assert_eq!(match_genes(&s(&["a"]), &names, None), vec![Some(0)]);
        assert_eq!(
            match_genes(&s(&["a"]), &s(&["B", "A", "a2", "A"]), None),
            vec![Some(1)]
        );
    }

    #[test]
    fn touching_intervals_do_not_overlap() {
        let model = [p("chr1-100-200")];
        let input = [
            p("chr1-200-300"),
            p("chr1-50-100"),
            p("1-199-201"),
            p("chr2-100-200"),
        ];
        assert_eq!(match_peaks(&model, &input), vec![vec![2]]);
        assert!(!overlaps(&model[0], &input[0]));
        assert!(overlaps(&model[0], &input[2]));
    }

    #[test]
    fn builds_parse_and_know_their_chromosomes() {
        for (text, build) in [
            ("GRCh38", GenomeBuild::Grch38),
            ("hg38", GenomeBuild::Grch38),
            ("HG38", GenomeBuild::Grch38),
            ("grch37", GenomeBuild::Hg19),
            ("hg19", GenomeBuild::Hg19),
            (" GRCh37 ", GenomeBuild::Hg19),
            ("mm10", GenomeBuild::Mm10),
            ("GRCm38", GenomeBuild::Mm10),
            ("grcm39", GenomeBuild::Grcm39),
            ("MM39", GenomeBuild::Grcm39),
        ] {
            assert_eq!(text.parse::<GenomeBuild>().unwrap(), build, "{text}");
        }
        let e = "mm9".parse::<GenomeBuild>().unwrap_err();
        assert!(e.contains("mm9") && e.contains("GRCm39"), "{e}");
        for b in GenomeBuild::ALL {
            assert_eq!(b.name().parse::<GenomeBuild>().unwrap(), b);
            let other = b.same_species_other().unwrap();
            assert_eq!(other.species(), b.species());
            assert_eq!(other.same_species_other(), Some(b));
        }
        assert_eq!(GenomeBuild::Mm10.species(), Species::Mouse);
        assert_eq!(GenomeBuild::Mm10.chrom_length("1"), Some(195_471_971));
        assert_eq!(GenomeBuild::Grcm39.chrom_length("chr1"), Some(195_154_279));
        assert_eq!(GenomeBuild::Grcm39.chrom_length("MT"), Some(16_299));
        assert_eq!(GenomeBuild::Mm10.chrom_length("chr20"), None);
        assert_eq!(GenomeBuild::Grcm39.chrom_lengths().count(), 22);
        assert_eq!(GenomeBuild::Grch38.chrom_length("1"), Some(248_956_422));
        assert_eq!(GenomeBuild::Hg19.chrom_length("chrX"), Some(155_270_560));
        assert_eq!(GenomeBuild::Hg19.chrom_length("MT"), Some(16_571));
        assert_eq!(GenomeBuild::Grch38.chrom_length("chrUn_KI270742v1"), None);
        assert_eq!(GenomeBuild::Hg19.chrom_lengths().count(), 25);
        let json = serde_json::to_string(&GenomeBuild::Hg19).unwrap();
        assert_eq!(json, "\"hg19\"");
        let back: GenomeBuild = serde_json::from_str("\"GRCh37\"").unwrap();
        assert_eq!(back, GenomeBuild::Hg19);
        assert_eq!(thousands(248_956_422), "248,956,422");
        assert_eq!(thousands(16_569), "16,569");
        assert_eq!(thousands(100), "100");
    }

    #[test]
    fn modality_names() {
        assert_eq!(Modality::Rna.to_string(), "RNA");
        assert_eq!(Modality::Atac.to_string(), "ATAC");
        assert_eq!(serde_json::to_string(&Modality::Atac).unwrap(), "\"atac\"");
    }

    #[test]
    fn gather_max_counts_absent_entries_as_zero() {
        let mut coo = nalgebra_sparse::CooMatrix::new(2, 3);
        coo.push(0, 0, -2.0f32);
        coo.push(0, 1, -1.0);
        coo.push(1, 0, -2.0);
        coo.push(1, 2, 3.0);
        let m = CsrMatrix::from(&coo);
        let sources = vec![vec![0, 1], vec![0, 2], vec![]];
        let max = gather(&m, &sources, PeakAggregation::Max);
        // row 0: max(-2, -1) = -1; max(-2, absent 0) = 0 (not stored)
        assert_eq!(max.get_entry(0, 0).unwrap().into_value(), -1.0);
        assert_eq!(max.row(0).nnz(), 1);
        assert_eq!(max.get_entry(1, 1).unwrap().into_value(), 3.0);
        let sum = gather(&m, &sources, PeakAggregation::Sum);
        assert_eq!(sum.get_entry(0, 0).unwrap().into_value(), -3.0);
        assert_eq!(sum.get_entry(1, 1).unwrap().into_value(), 1.0);
        assert_eq!(sum.ncols(), 3);
    }
}
