//! Gene annotations and CrossMP's gene-activity input: the regulatory potential of the
//! peaks near each gene's transcription start site.
//!
//! Annotation files are TSV, plain or gzip, 0-based half-open coordinates (BED style),
//! chromosomes `chr1`.. (other spellings are unified), strand `+` or `-`, with one of two
//! headers:
//! - [`HEADER`] `gene_id  gene  chrom  start  end  strand  biotype` (what the bundled tables
//!   use; `gene_id` an Ensembl id, `biotype` a GENCODE gene type);
//! - [`LEGACY_HEADER`] `gene  chrom  start  end  strand` (older and hand-made files).
//!
//! [`bundled_table`] holds the whole-genome tables compiled into the crate for each
//! [`GenomeBuild`] (`annotations/<build>_genes.tsv.gz`, GENCODE 48 / 19 / M11 / M37 gene
//! records, see `annotations/PROVENANCE.md`) with their aliases (`<build>_aliases.tsv.gz`:
//! older symbols, NCBI/MGI synonyms, dataset spellings, each naming one gene id); they are
//! decoded once per process. [`bundled`] flattens a table into [`GeneLocus`] rows, one per
//! symbol and one per alias, so a dataset's symbol finds its gene by name.
//!
//! Regulatory potential follows MAESTRO's simple model, which CrossMP uses for its gene
//! activity branch (`docs/models.md`, "BABEL and CrossMP"): a peak whose centre lies `d` bp from a gene's TSS
//! contributes `2^(-d / half_distance)` to the gene (10 kb half-distance: a peak 10 kb
//! away counts half), peaks farther than `max_distance` nothing (MAESTRO: 15 half-distances,
//! 150 kb). Gene activity of a cell is its accessibility times these weights.

use std::cmp::Reverse;
use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::OnceLock;

use nalgebra_sparse::CsrMatrix;
use serde::{Deserialize, Serialize};

use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};
use crate::transfer::GenomeBuild;

/// The header of the annotation tables this crate ships (and writes): seven columns.
pub const HEADER: &str = "gene_id\tgene\tchrom\tstart\tend\tstrand\tbiotype";

/// The older five-column header, still read (users' own files).
pub const LEGACY_HEADER: &str = "gene\tchrom\tstart\tend\tstrand";

/// The header of the bundled alias tables.
pub const ALIAS_HEADER: &str = "alias\tgene_id";

/// CrossMP / MAESTRO half-distance of the regulatory potential: 10 kb.
pub const DEFAULT_HALF_DISTANCE: f64 = 10_000.0;

/// MAESTRO's window: 15 half-distances (150 kb), where the weight is 2^-15 ~ 3e-5.
pub const DEFAULT_MAX_DISTANCE: u64 = 150_000;

/// The strand a gene is transcribed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Strand {
    #[serde(rename = "+")]
    Plus,
    #[serde(rename = "-")]
    Minus,
}

impl fmt::Display for Strand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Strand::Plus => "+",
            Strand::Minus => "-",
        })
    }
}

/// A gene's extent, `[start, end)` on `chrom` (unified: `chr1`, `chrX`, `chrM`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeneLocus {
    pub gene: String,
    pub chrom: String,
    pub start: u64,
    pub end: u64,
    pub strand: Strand,
}

impl GeneLocus {
    /// The transcription start site: `start` on the `+` strand, `end` on the `-` strand.
    /// Both are the interval boundary on the upstream side of the first transcribed base
    /// (as MAESTRO takes UCSC's `txStart` / `txEnd`); the base itself would be `end - 1`
    /// on `-`, which `annotations/PROVENANCE.md` calls the TSS. The 1 bp is immaterial at
    /// a 10 kb half-distance.
    pub fn tss(&self) -> u64 {
        match self.strand {
            Strand::Plus => self.start,
            Strand::Minus => self.end,
        }
    }
}

/// One row of a seven-column annotation table: a gene record with its id and type.
/// From a five-column file `gene_id` and `biotype` are empty.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GeneRecord {
    /// Stable Ensembl id without version (`ENSG00000111640`), unique in a bundled table.
    pub gene_id: String,
    /// The locus; `locus.gene` is the symbol (GENCODE names unnamed genes by their id).
    pub locus: GeneLocus,
    /// GENCODE gene type (`protein_coding`, `lncRNA`, ...; `unknown` where the source had
    /// none).
    pub biotype: String,
}

impl GeneRecord {
    /// The symbol.
    pub fn gene(&self) -> &str {
        &self.locus.gene
    }
}

/// Reads an annotation TSV, plain or gzip, with either header (see the module docs);
/// errors name the file and line.
pub fn read_annotation(path: impl AsRef<Path>) -> Result<Vec<GeneLocus>> {
    Ok(read_gene_records(path)?
        .into_iter()
        .map(|r| r.locus)
        .collect())
}

/// Reads an annotation TSV, plain or gzip, as [`GeneRecord`]s (see [`read_annotation`]).
pub fn read_gene_records(path: impl AsRef<Path>) -> Result<Vec<GeneRecord>> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    let text = decode_text(&bytes, path)?;
    parse_gene_records(&text, path)
}

/// The text of plain or gzip bytes (gzip recognised by its magic number).
fn decode_text(bytes: &[u8], source: &Path) -> Result<String> {
    let raw = if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(|e| {
                DataError::invalid(
                    source.display().to_string(),
                    format!("unreadable gzip: {e}"),
                )
            })?;
        out
    } else {
        bytes.to_vec()
    };
    String::from_utf8(raw)
        .map_err(|_| DataError::invalid(source.display().to_string(), "is not text (UTF-8)"))
}

/// Parses annotation TSV text (either header) into loci; `source` is the file name errors
/// give. Blank lines and lines starting with `#` are skipped; every other line needs as
/// many tab-separated fields as the header.
pub fn parse_annotation(text: &str, source: &Path) -> Result<Vec<GeneLocus>> {
    Ok(parse_gene_records(text, source)?
        .into_iter()
        .map(|r| r.locus)
        .collect())
}

/// Parses annotation TSV text (either header) into [`GeneRecord`]s; see
/// [`parse_annotation`].
pub fn parse_gene_records(text: &str, source: &Path) -> Result<Vec<GeneRecord>> {
    let err = |line: usize, reason: String| DataError::Parse {
        path: source.to_path_buf(),
        line,
        reason,
    };
    let mut lines = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.strip_suffix('\r').unwrap_or(l)))
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'));
    let full = match lines.next() {
        Some((_, HEADER)) => true,
        Some((_, LEGACY_HEADER)) => false,
        Some((n, other)) => {
            return Err(err(
                n,
                format!(
                    "expected the header `{}` (or `{}`), found `{other}`",
                    HEADER.escape_default(),
                    LEGACY_HEADER.escape_default()
                ),
            ));
        }
        None => {
            return Err(DataError::Empty {
                what: source.display().to_string(),
                reason: "no header and no genes".into(),
            });
        }
    };
    let mut genes = Vec::new();
    for (n, line) in lines {
        let fields: Vec<&str> = line.split('\t').collect();
        let (gene_id, gene, chrom, start, end, strand, biotype) = match (full, &fields[..]) {
            (true, &[id, gene, chrom, start, end, strand, biotype]) => {
                (id.trim(), gene, chrom, start, end, strand, biotype.trim())
            }
            (false, &[gene, chrom, start, end, strand]) => {
                ("", gene, chrom, start, end, strand, "")
            }
            _ => {
                let want = if full {
                    "7 (gene_id, gene, chrom, start, end, strand, biotype)"
                } else {
                    "5 (gene, chrom, start, end, strand)"
                };
                return Err(err(
                    n,
                    format!("{} tab-separated fields, expected {want}", fields.len()),
                ));
            }
        };
        let gene = gene.trim();
        let chrom = chrom.trim();
        if gene.is_empty() || chrom.is_empty() {
            return Err(err(n, "empty gene or chromosome name".into()));
        }
        if full && gene_id.is_empty() {
            return Err(err(n, "empty gene_id".into()));
        }
        let coord = |what: &str, v: &str| {
            v.trim()
                .parse::<u64>()
                .map_err(|_| err(n, format!("{what} `{v}` is not a non-negative integer")))
        };
        let (start, end) = (coord("start", start)?, coord("end", end)?);
        if end <= start {
            return Err(err(
                n,
                format!(
                    "end {end} is not after start {start} (coordinates are 0-based, half-open)"
                ),
            ));
        }
        let strand = match strand.trim() {
            "+" => Strand::Plus,
            "-" => Strand::Minus,
            other => return Err(err(n, format!("strand `{other}` is neither `+` nor `-`"))),
        };
        genes.push(GeneRecord {
            gene_id: gene_id.to_string(),
            locus: GeneLocus {
                gene: gene.to_string(),
                chrom: unify_chrom(chrom),
                start,
                end,
                strand,
            },
            biotype: biotype.to_string(),
        });
    }
    if genes.is_empty() {
        return Err(DataError::Empty {
            what: source.display().to_string(),
            reason: "a header but no genes".into(),
        });
    }
    Ok(genes)
}

// ---------------------------------------------------------------------------------------
// Bundled tables
// ---------------------------------------------------------------------------------------

/// A whole-genome gene table of one build with its aliases, indexed by symbol, alias and
/// gene id (all symbol and alias look-ups ignore ASCII case).
#[derive(Debug, Clone)]
pub struct GeneTable {
    build: GenomeBuild,
    records: Vec<GeneRecord>,
    /// (alias, record index), sorted by alias
    aliases: Vec<(String, usize)>,
    /// upper-case symbol -> primary record
    by_symbol: HashMap<String, usize>,
    /// upper-case alias -> record
    by_alias: HashMap<String, usize>,
    by_id: HashMap<String, usize>,
}

/// Which record of a symbol with several (PAR genes on chrX and chrY, a few duplicated
/// names) its symbol finds: not chrY before chrY, then `protein_coding`, then the longest,
/// then the first by chromosome, start and gene id. `scripts/gene_annotation.py` uses the
/// same order for the coverage fixture.
fn primary_key(r: &GeneRecord) -> (bool, bool, Reverse<u64>, u32, u64, &str) {
    let l = &r.locus;
    (
        l.chrom == "chrY",
        r.biotype != "protein_coding",
        Reverse(l.end - l.start),
        chrom_rank(&l.chrom),
        l.start,
        r.gene_id.as_str(),
    )
}

/// chr1.. numerically, then chrX, chrY, chrM, then anything else.
fn chrom_rank(chrom: &str) -> u32 {
    let s = chrom.strip_prefix("chr").unwrap_or(chrom);
    match s {
        "X" => 100,
        "Y" => 101,
        "M" => 102,
        _ => s.parse().unwrap_or(200),
    }
}

impl GeneTable {
    /// A table from records and `(alias, gene_id)` pairs. Errors on a duplicated gene id, an
    /// alias naming an id the table lacks, or an alias that is (ignoring case) a symbol or
    /// another alias of the table.
    pub fn new(
        build: GenomeBuild,
        records: Vec<GeneRecord>,
        aliases: Vec<(String, String)>,
        source: &str,
    ) -> Result<Self> {
        let mut by_id = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            if by_id.insert(r.gene_id.clone(), i).is_some() {
                return Err(DataError::invalid(
                    source,
                    format!("gene id `{}` twice", r.gene_id),
                ));
            }
        }
        let mut by_symbol: HashMap<String, usize> = HashMap::with_capacity(records.len());
        for (i, r) in records.iter().enumerate() {
            by_symbol
                .entry(r.gene().to_ascii_uppercase())
                .and_modify(|j| {
                    if primary_key(r) < primary_key(&records[*j]) {
                        *j = i;
                    }
                })
                .or_insert(i);
        }
        let mut by_alias = HashMap::with_capacity(aliases.len());
        let mut listed = Vec::with_capacity(aliases.len());
        for (alias, id) in aliases {
            let Some(&i) = by_id.get(&id) else {
                return Err(DataError::invalid(
                    source,
                    format!("alias `{alias}` names gene id `{id}`, which the table lacks"),
                ));
            };
            let key = alias.to_ascii_uppercase();
            if by_symbol.contains_key(&key) || by_alias.insert(key, i).is_some() {
                return Err(DataError::invalid(
                    source,
                    format!("alias `{alias}` is a symbol or another alias of the table"),
                ));
            }
            listed.push((alias, i));
        }
        listed.sort_unstable();
        Ok(Self {
            build,
            records,
            aliases: listed,
            by_symbol,
            by_alias,
            by_id,
        })
    }

    /// The build the table is on.
    pub fn build(&self) -> GenomeBuild {
        self.build
    }

    /// Every gene record, sorted by chromosome and start.
    pub fn records(&self) -> &[GeneRecord] {
        &self.records
    }

    /// `(alias, gene)` pairs, sorted by alias.
    pub fn aliases(&self) -> impl Iterator<Item = (&str, &GeneRecord)> {
        self.aliases
            .iter()
            .map(|(a, i)| (a.as_str(), &self.records[*i]))
    }

    /// The record of an Ensembl gene id (without version).
    pub fn by_id(&self, gene_id: &str) -> Option<&GeneRecord> {
        self.by_id.get(gene_id).map(|&i| &self.records[i])
    }

    /// The record a symbol names (ignoring ASCII case; the primary one, see
    /// [`GeneTable::new`], when several records share it), aliases not consulted.
    pub fn by_symbol(&self, symbol: &str) -> Option<&GeneRecord> {
        self.by_symbol
            .get(&symbol.to_ascii_uppercase())
            .map(|&i| &self.records[i])
    }

    /// The record a name finds: a symbol first, then an alias (both ignoring ASCII case).
    pub fn lookup(&self, name: &str) -> Option<&GeneRecord> {
        let key = name.to_ascii_uppercase();
        self.by_symbol
            .get(&key)
            .or_else(|| self.by_alias.get(&key))
            .map(|&i| &self.records[i])
    }

    /// One locus per symbol (its primary record, in table order) followed by one per alias
    /// (named by the alias, at its gene), so no two share a name ignoring case.
    pub fn loci(&self) -> Vec<GeneLocus> {
        let mut out = Vec::with_capacity(self.by_symbol.len() + self.aliases.len());
        out.extend(
            self.records
                .iter()
                .enumerate()
                .filter(|&(i, r)| self.by_symbol[&r.gene().to_ascii_uppercase()] == i)
                .map(|(_, r)| r.locus.clone()),
        );
        out.extend(self.aliases.iter().map(|(alias, i)| GeneLocus {
            gene: alias.clone(),
            ..self.records[*i].locus.clone()
        }));
        out
    }
}

/// Parses an alias table (`alias\tgene_id` header, then one pair a line).
fn parse_aliases(text: &str, source: &Path) -> Result<Vec<(String, String)>> {
    let mut lines = text.lines().enumerate();
    match lines.next() {
        Some((_, ALIAS_HEADER)) => {}
        other => {
            return Err(DataError::Parse {
                path: source.to_path_buf(),
                line: 1,
                reason: format!(
                    "expected the header `{}`, found `{}`",
                    ALIAS_HEADER.escape_default(),
                    other.map_or("", |(_, l)| l)
                ),
            });
        }
    }
    lines
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| match l.split_once('\t') {
            Some((a, id)) if !a.is_empty() && !id.is_empty() && !id.contains('\t') => {
                Ok((a.to_string(), id.to_string()))
            }
            _ => Err(DataError::Parse {
                path: source.to_path_buf(),
                line: i + 1,
                reason: "expected `alias<TAB>gene_id`".into(),
            }),
        })
        .collect()
}

/// The compressed tables compiled into the crate: (genes, aliases, file stem).
fn bundled_bytes(build: GenomeBuild) -> (&'static [u8], &'static [u8], &'static str) {
    match build {
        GenomeBuild::Grch38 => (
            include_bytes!("../annotations/grch38_genes.tsv.gz"),
            include_bytes!("../annotations/grch38_aliases.tsv.gz"),
            "grch38",
        ),
        GenomeBuild::Hg19 => (
            include_bytes!("../annotations/hg19_genes.tsv.gz"),
            include_bytes!("../annotations/hg19_aliases.tsv.gz"),
            "hg19",
        ),
        GenomeBuild::Mm10 => (
            include_bytes!("../annotations/mm10_genes.tsv.gz"),
            include_bytes!("../annotations/mm10_aliases.tsv.gz"),
            "mm10",
        ),
        GenomeBuild::Grcm39 => (
            include_bytes!("../annotations/grcm39_genes.tsv.gz"),
            include_bytes!("../annotations/grcm39_aliases.tsv.gz"),
            "grcm39",
        ),
    }
}

fn decode_bundled(build: GenomeBuild) -> Result<GeneTable> {
    let (genes, aliases, stem) = bundled_bytes(build);
    let dir = Path::new("crates/data/annotations");
    let genes_path = dir.join(format!("{stem}_genes.tsv.gz"));
    let aliases_path = dir.join(format!("{stem}_aliases.tsv.gz"));
    let records = parse_gene_records(&decode_text(genes, &genes_path)?, &genes_path)?;
    let aliases = parse_aliases(&decode_text(aliases, &aliases_path)?, &aliases_path)?;
    GeneTable::new(build, records, aliases, &aliases_path.display().to_string())
}

/// The whole-genome table compiled into the crate for a build, decoded on first use and
/// kept for the life of the process (later calls cost nothing).
pub fn bundled_table(build: GenomeBuild) -> Result<&'static GeneTable> {
    static TABLES: [OnceLock<std::result::Result<GeneTable, String>>; GenomeBuild::ALL.len()] =
        [const { OnceLock::new() }; GenomeBuild::ALL.len()];
    let slot = GenomeBuild::ALL
        .iter()
        .position(|b| *b == build)
        .expect("GenomeBuild::ALL lists every build");
    TABLES[slot]
        .get_or_init(|| decode_bundled(build).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| DataError::invalid(format!("the bundled {build} annotation"), e.clone()))
}

/// The annotation shipped for a build as loci: one per symbol and one per alias (see
/// [`GeneTable::loci`]), so a caller that keeps the loci its dataset's genes name (ignoring
/// case) also finds renamed genes. Whole genomes (e.g. about 78,700 GRCh38 genes and 75,700
/// aliases); the table is decoded once ([`bundled_table`]), each call clones the loci.
pub fn bundled(build: GenomeBuild) -> Result<Vec<GeneLocus>> {
    Ok(bundled_table(build)?.loci())
}

/// Peaks x genes weights `2^(-d / half_distance)`, `d` the distance in bp from the peak's
/// centre (`(start + end) / 2`, may end in .5) to the gene's [`GeneLocus::tss`]; only pairs
/// on the same (unified) chromosome with `d <= max_distance` are stored (and none whose
/// weight underflows to 0 in f32). Each peak looks up its window in the chromosome's sorted
/// TSSs: O((m + n) log n + stored pairs), not all pairs.
///
/// An error when `half_distance` is not a positive finite number.
pub fn regulatory_potential(
    peaks: &[Peak],
    genes: &[GeneLocus],
    half_distance: f64,
    max_distance: u64,
) -> Result<CsrMatrix<f32>> {
    if !(half_distance.is_finite() && half_distance > 0.0) {
        return Err(DataError::invalid(
            "regulatory potential",
            format!("the half-distance {half_distance} is not a positive number of bp"),
        ));
    }
    // per chromosome: (2 * TSS, gene), sorted; doubled coordinates keep peak centres exact
    let mut by_chrom: HashMap<String, Vec<(u64, usize)>> = HashMap::new();
    for (g, locus) in genes.iter().enumerate() {
        by_chrom
            .entry(unify_chrom(&locus.chrom))
            .or_default()
            .push((locus.tss().saturating_mul(2), g));
    }
    for v in by_chrom.values_mut() {
        v.sort_unstable();
    }
    let window = max_distance.saturating_mul(2);
    let mut offsets = Vec::with_capacity(peaks.len() + 1);
    offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    let mut row: Vec<(usize, f32)> = Vec::new();
    for peak in peaks {
        row.clear();
        let chrom = if peak.chrom.starts_with("chr") {
            std::borrow::Cow::Borrowed(peak.chrom.as_str())
        } else {
            std::borrow::Cow::Owned(unify_chrom(&peak.chrom))
        };
        if let Some(tss) = by_chrom.get(chrom.as_ref()) {
            let centre2 = peak.start.saturating_add(peak.end);
            let lo = tss.partition_point(|&(t, _)| t < centre2.saturating_sub(window));
            let hi = tss.partition_point(|&(t, _)| t <= centre2.saturating_add(window));
            for &(t2, g) in &tss[lo..hi] {
                let d = t2.abs_diff(centre2) as f64 / 2.0;
                let w = (-d / half_distance).exp2() as f32;
                if w > 0.0 {
                    row.push((g, w));
                }
            }
        }
        row.sort_unstable_by_key(|e| e.0);
        for &(g, w) in &row {
            indices.push(g);
            values.push(w);
        }
        offsets.push(indices.len());
    }
    Ok(
        CsrMatrix::try_from_csr_data(peaks.len(), genes.len(), offsets, indices, values)
            .expect("sorted, distinct gene columns form a valid CSR matrix"),
    )
}

/// Cells x genes gene activity: `atac` (cells x peaks) times `rp` (peaks x genes, from
/// [`regulatory_potential`] on the same peaks), accumulated in f64 row by row (Gustavson),
/// exact zeros not stored. An error when the shapes do not chain.
pub fn gene_activity(atac: &CsrMatrix<f32>, rp: &CsrMatrix<f32>) -> Result<CsrMatrix<f32>> {
    if atac.ncols() != rp.nrows() {
        return Err(DataError::invalid(
            "gene activity",
            format!(
                "the ATAC matrix has {} peaks but the regulatory potential {} (compute it on the \
                 model's peaks and project the data onto them first)",
                atac.ncols(),
                rp.nrows()
            ),
        ));
    }
    let n_genes = rp.ncols();
    let mut acc = vec![0.0f64; n_genes];
    let mut touched = vec![false; n_genes];
    let mut cols: Vec<usize> = Vec::new();
    let mut offsets = Vec::with_capacity(atac.nrows() + 1);
    offsets.push(0);
    let mut indices = Vec::new();
    let mut values = Vec::new();
    for cell in atac.row_iter() {
        for (&p, &x) in cell.col_indices().iter().zip(cell.values()) {
            let weights = rp.row(p);
            for (&g, &w) in weights.col_indices().iter().zip(weights.values()) {
                if !touched[g] {
                    touched[g] = true;
                    cols.push(g);
                }
                acc[g] += f64::from(x) * f64::from(w);
            }
        }
        cols.sort_unstable();
        for &g in &cols {
            let v = acc[g] as f32;
            if v != 0.0 {
                indices.push(g);
                values.push(v);
            }
            acc[g] = 0.0;
            touched[g] = false;
        }
        cols.clear();
        offsets.push(indices.len());
    }
    Ok(
        CsrMatrix::try_from_csr_data(atac.nrows(), n_genes, offsets, indices, values)
            .expect("sorted, distinct gene columns form a valid CSR matrix"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn locus(gene: &str, start: u64, end: u64, strand: Strand) -> GeneLocus {
        GeneLocus {
            gene: gene.into(),
            chrom: "chr1".into(),
            start,
            end,
            strand,
        }
    }

    #[test]
    fn tss_is_strand_aware() {
        assert_eq!(locus("A", 100, 200, Strand::Plus).tss(), 100);
        assert_eq!(locus("B", 100, 200, Strand::Minus).tss(), 200);
    }

    #[test]
    fn parses_comments_blank_lines_crlf_and_other_chromosome_spellings() {
        let text = "# made by hand\r\ngene\tchrom\tstart\tend\tstrand\r\n\nA\t1\t10\t20\t+\r\nB\tchrX\t5\t9\t-\n";
        let genes = parse_annotation(text, Path::new("a.tsv")).unwrap();
        assert_eq!(
            genes,
            vec![
                locus("A", 10, 20, Strand::Plus),
                GeneLocus {
                    chrom: "chrX".into(),
                    ..locus("B", 5, 9, Strand::Minus)
                }
            ]
        );
    }

    #[test]
    fn weights_are_stored_only_inside_the_window() {
        let genes = [locus("A", 100_000, 200_000, Strand::Plus)];
        // centres at 0.5 kb, 150 kb, 250 kb (outside 150 kb), and on chr2
        let peaks = [
            Peak::parse("chr1-100250-100750").unwrap(),
            Peak::parse("chr1-249900-250100").unwrap(),
            Peak::parse("chr1-349900-350100").unwrap(),
            Peak::parse("chr2-100250-100750").unwrap(),
        ];
        let rp = regulatory_potential(&peaks, &genes, 10_000.0, 150_000).unwrap();
        assert_eq!(rp.nrows(), 4);
        assert_eq!(rp.nnz(), 2);
        let w0 = rp.get_entry(0, 0).unwrap().into_value();
        assert!((w0 - 2f32.powf(-0.05)).abs() < 1e-6, "{w0}");
        let w1 = rp.get_entry(1, 0).unwrap().into_value();
        assert!((w1 - 2f32.powi(-15)).abs() < 1e-9, "{w1}");
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(regulatory_potential(&peaks, &genes, bad, 10).is_err());
        }
    }

    #[test]
    fn gene_activity_needs_matching_shapes() {
        let atac = CsrMatrix::<f32>::zeros(2, 3);
        let rp = CsrMatrix::<f32>::zeros(4, 5);
        let err = gene_activity(&atac, &rp).unwrap_err().to_string();
        assert!(err.contains("3 peaks") && err.contains('4'), "{err}");
    }
}
