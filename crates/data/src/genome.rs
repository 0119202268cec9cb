//! Genomic intervals of ATAC peaks, parsed from the spellings real files use.

use std::fmt;

/// A peak: `[start, end)` on a chromosome whose name is unified to the UCSC style
/// (`chr1`, `chrX`, `chrM`), so that `1-100-200` and `chr1:100-200` are the same peak.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Peak {
    pub chrom: String,
    pub start: u64,
    pub end: u64,
}

impl Peak {
    /// Parses `chr1-100-200`, `chr1:100-200`, `chr1_100_200` and `1-100-200`.
    /// The two coordinates are the last two separator-delimited fields, so contig
    /// names with `_` or `-` in them (`chrUn_KI270742v1`, `GL000194.1`) parse too.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let shown = || crossomics_limits::excerpt_str(text, 80);
        let bad = || {
            format!(
                "`{}` is not a peak (expected chr-start-end, chr:start-end or chr_start_end)",
                shown()
            )
        };
        let (rest, end) = text.rsplit_once(['-', '_']).ok_or_else(bad)?;
        let (chrom, start) = rest.rsplit_once(['-', '_', ':']).ok_or_else(bad)?;
        let start: u64 = start.parse().map_err(|_| bad())?;
        let end: u64 = end.parse().map_err(|_| bad())?;
        if chrom.is_empty() {
            return Err(bad());
        }
        if end <= start {
            return Err(format!(
                "`{}`: end {end} is not after start {start}",
                shown()
            ));
        }
        Ok(Self {
            chrom: unify_chrom(chrom),
            start,
            end,
        })
    }

    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    pub fn is_empty(&self) -> bool {
        self.end == self.start
    }
}

impl fmt::Display for Peak {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}-{}", self.chrom, self.start, self.end)
    }
}

/// `1` -> `chr1`, `MT` -> `chrM`, `chrx` -> `chrX`; contigs (`GL000194.1`) are kept.
pub fn unify_chrom(name: &str) -> String {
    let bare = name
        .strip_prefix("chr")
        .or_else(|| name.strip_prefix("Chr"))
        .or_else(|| name.strip_prefix("CHR"))
        .unwrap_or(name);
    let upper = bare.to_ascii_uppercase();
    let is_numbered = !bare.is_empty() && bare.chars().all(|c| c.is_ascii_digit());
    match upper.as_str() {
        "X" | "Y" => format!("chr{upper}"),
        "M" | "MT" => "chrM".to_string(),
        _ if is_numbered => format!("chr{bare}"),
        _ if name.len() != bare.len() => format!("chr{bare}"),
        _ => name.to_string(),
    }
}

/// True for chr1..chr22 (the autosomes of human; other genomes with more are accepted).
pub fn is_autosome(chrom: &str) -> bool {
    chrom
        .strip_prefix("chr")
        .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_spelling_to_the_same_peak() {
        let want = Peak {
            chrom: "chr1".into(),
            start: 100,
            end: 200,
        };
        for s in [
            "chr1-100-200",
            "chr1:100-200",
            "chr1_100_200",
            "1-100-200",
            " chr1-100-200\n",
        ] {
            assert_eq!(Peak::parse(s).unwrap(), want, "{s}");
        }
    }

    #[test]
    fn contigs_and_sex_chromosomes() {
        assert_eq!(
            Peak::parse("chrUn_KI270742v1-10-20").unwrap().chrom,
            "chrUn_KI270742v1"
        );
        assert_eq!(Peak::parse("GL000194.1-10-20").unwrap().chrom, "GL000194.1");
        assert_eq!(Peak::parse("x-10-20").unwrap().chrom, "chrX");
        assert_eq!(Peak::parse("MT-10-20").unwrap().chrom, "chrM");
        assert!(is_autosome("chr22"));
        assert!(!is_autosome("chrX"));
        assert!(!is_autosome("GL000194.1"));
    }

    #[test]
    fn rejects_malformed_peaks() {
        for s in [
            "",
            "chr1",
            "chr1-100",
            "chr1-a-200",
            "chr1-200-100",
            "-100-200",
        ] {
            assert!(Peak::parse(s).is_err(), "{s:?} should not parse");
        }
    }
}
