//! Reference genome builds (GRCh38, hg19, mm10, GRCm39): names, species, chromosome
//! lengths, and the check that refuses peaks on another build than the model's.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
