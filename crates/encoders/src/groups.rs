//! Peaks grouped by chromosome, for the chromosome-split encoder and decoder.

use crate::EncoderError;

/// The name given to the group that collects the small groups (see [`ChromGroups::new`]).
pub const OTHER_GROUP: &str = "other";

/// One group of input columns: a chromosome's name and the peak columns on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeakGroup {
    pub name: String,
    pub columns: Vec<usize>,
}

/// A partition of the peak columns `0..n_peaks` into groups (chromosomes), each of
/// which gets its own block of layers in the chromosome-split modules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChromGroups {
    groups: Vec<PeakGroup>,
    group_of: Vec<i64>,
}

impl ChromGroups {
    /// Groups from `(chromosome name, peak columns)` pairs that together cover every
    /// column of `0..n_peaks` exactly once.
    ///
    /// **Merge rule.** Every group with fewer than `min_peaks_per_group` peaks (in real
    /// peak sets: chrY, chrM and the unplaced/unlocalized contigs such as `GL000220.1`,
    /// `chrUn_*`, `*_random`) is merged into one group named [`OTHER_GROUP`] (its
    /// columns in ascending order), placed after the kept groups. The merged group is kept whatever
    /// its size, so every group has at least `min_peaks_per_group` peaks except possibly
    /// `other`, and no peak is dropped. Groups of at least `min_peaks_per_group` peaks
    /// keep their name and their input order. `min_peaks_per_group = 0` or `1` merges
    /// nothing. When every group is small, the result is the single group `other`.
    /// Columns of the kept groups keep their input order.
    pub fn new(
        groups: Vec<PeakGroup>,
        n_peaks: usize,
        min_peaks_per_group: usize,
    ) -> Result<Self, EncoderError> {
        let mut group_of = vec![-1i64; n_peaks];
        for g in &groups {
            if g.columns.is_empty() {
                return Err(EncoderError::Groups(format!("group {:?} is empty", g.name)));
            }
            for &c in &g.columns {
                if c >= n_peaks {
                    return Err(EncoderError::Groups(format!(
                        "group {:?} has column {c}, outside 0..{n_peaks}",
                        g.name
                    )));
                }
                if group_of[c] >= 0 {
                    return Err(EncoderError::Groups(format!(
                        "column {c} is in more than one group (or twice in {:?})",
                        g.name
                    )));
                }
                group_of[c] = 0;
            }
        }
        if let Some(c) = group_of.iter().position(|&g| g < 0) {
            return Err(EncoderError::Groups(format!(
                "column {c} of 0..{n_peaks} is in no group"
            )));
        }
        let (kept, small): (Vec<_>, Vec<_>) = groups
            .into_iter()
            .partition(|g| g.columns.len() >= min_peaks_per_group);
        let mut groups = kept;
        if !small.is_empty() {
            let mut columns: Vec<usize> = small.into_iter().flat_map(|g| g.columns).collect();
            columns.sort_unstable();
            groups.push(PeakGroup {
                name: OTHER_GROUP.to_string(),
                columns,
            });
        }
        for (i, g) in groups.iter().enumerate() {
            for &c in &g.columns {
                group_of[c] = i as i64;
            }
        }
        Ok(Self { groups, group_of })
    }

    /// Groups from the chromosome of every peak (`chromosomes[j]` for column `j`), in
    /// order of first appearance, then merged by the rule of [`ChromGroups::new`].
    pub fn from_chromosomes<S: AsRef<str>>(
        chromosomes: &[S],
        min_peaks_per_group: usize,
    ) -> Result<Self, EncoderError> {
        let mut groups: Vec<PeakGroup> = Vec::new();
        let mut index = std::collections::HashMap::new();
        for (j, c) in chromosomes.iter().enumerate() {
            let c = c.as_ref();
            let g = *index.entry(c.to_string()).or_insert_with(|| {
                groups.push(PeakGroup {
                    name: c.to_string(),
                    columns: Vec::new(),
                });
                groups.len() - 1
            });
            groups[g].columns.push(j);
        }
        Self::new(groups, chromosomes.len(), min_peaks_per_group)
    }

    /// Groups from peak names such as `chr1:9963-10665`, `chr1-9963-10665`,
    /// `1_9963_10665` or `GL000220.1-100-600` (see [`chromosome_of_peak`]).
    pub fn from_peak_names<S: AsRef<str>>(
        names: &[S],
        min_peaks_per_group: usize,
    ) -> Result<Self, EncoderError> {
        let chromosomes = names
            .iter()
            .map(|n| chromosome_of_peak(n.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_chromosomes(&chromosomes, min_peaks_per_group)
    }

    /// One group holding every column: the chromosome-split modules then reduce to a
    /// plain MLP (with the sparse first layer).
    pub fn single(n_peaks: usize) -> Self {
        Self {
            groups: vec![PeakGroup {
                name: "all".to_string(),
                columns: (0..n_peaks).collect(),
            }],
            group_of: vec![0; n_peaks],
        }
    }

    pub fn groups(&self) -> &[PeakGroup] {
        &self.groups
    }

    /// Number of groups.
    pub fn len(&self) -> usize {
        self.groups.len()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Number of peaks (input columns).
    pub fn n_peaks(&self) -> usize {
        self.group_of.len()
    }

    /// The group of every column.
    pub fn group_of(&self) -> &[i64] {
        &self.group_of
    }

    /// Number of peaks of every group.
    pub fn widths(&self) -> Vec<usize> {
        self.groups.iter().map(|g| g.columns.len()).collect()
    }
}

/// The chromosome part of a peak name `<chrom><sep><start><sep><end>`, where each `sep`
/// is one of `:`, `-`, `_` and start and end are integers: the name without its last
/// two numeric fields. Contig names that contain separators or dots
/// (`chrUn_KI270742v1`, `GL000220.1`) come out whole.
pub fn chromosome_of_peak(name: &str) -> Result<&str, EncoderError> {
    let is_sep = |c: char| matches!(c, ':' | '-' | '_');
    let mut rest = name.trim();
    for _ in 0..2 {
        let cut = rest.rfind(is_sep).ok_or_else(|| bad_peak(name))?;
        let field = &rest[cut + 1..];
        if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad_peak(name));
        }
        rest = &rest[..cut];
    }
    if rest.is_empty() {
        return Err(bad_peak(name));
    }
    Ok(rest)
}

fn bad_peak(name: &str) -> EncoderError {
    EncoderError::Groups(format!(
        "peak name {name:?} is not <chromosome>:<start>-<end> (separators ':', '-' or '_')"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chromosome_names_are_parsed() {
        assert_eq!(chromosome_of_peak("chr1:9963-10665").unwrap(), "chr1");
        assert_eq!(chromosome_of_peak("1-9963-10665").unwrap(), "1");
        assert_eq!(chromosome_of_peak("X_5_9").unwrap(), "X");
        assert_eq!(
            chromosome_of_peak("GL000220.1-100-600").unwrap(),
            "GL000220.1"
        );
        assert_eq!(
            chromosome_of_peak("chrUn_KI270742v1:10-20").unwrap(),
            "chrUn_KI270742v1"
        );
        for bad in ["chr1", "chr1:10", "chr1:a-b", ":1-2", ""] {
            assert!(chromosome_of_peak(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn small_contigs_merge_into_other() {
        // scicar-like: two big chromosomes interleaved with small contigs
        let chroms = [
            "1", "1", "GL1", "2", "1", "Y", "2", "2", "GL2", "1", "2", "GL1",
        ];
        let g = ChromGroups::from_chromosomes(&chroms, 3).unwrap();
        let names: Vec<_> = g.groups().iter().map(|g| g.name.as_str()).collect();
        assert_eq!(names, ["1", "2", OTHER_GROUP]);
        assert_eq!(g.groups()[0].columns, vec![0, 1, 4, 9]);
        assert_eq!(g.groups()[1].columns, vec![3, 6, 7, 10]);
        // GL1, Y and GL2 merged, columns ascending
        assert_eq!(g.groups()[2].columns, vec![2, 5, 8, 11]);
        assert_eq!(g.group_of(), &[0, 0, 2, 1, 0, 2, 1, 1, 2, 0, 1, 2]);
        assert_eq!(g.widths(), vec![4, 4, 4]);
        // nothing merged at 1, everything at 100
        assert_eq!(ChromGroups::from_chromosomes(&chroms, 1).unwrap().len(), 5);
        let all = ChromGroups::from_chromosomes(&chroms, 100).unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all.groups()[0].name, OTHER_GROUP);
        assert_eq!(all.n_peaks(), 12);
    }

    #[test]
    fn groups_must_partition_the_columns() {
        let g = |name: &str, columns: Vec<usize>| PeakGroup {
            name: name.into(),
            columns,
        };
        let err = |gs, n| ChromGroups::new(gs, n, 0).unwrap_err().to_string();
        assert!(err(vec![g("a", vec![0, 1]), g("b", vec![1])], 2).contains("more than one"));
        assert!(err(vec![g("a", vec![0])], 2).contains("in no group"));
        assert!(err(vec![g("a", vec![0, 2])], 2).contains("outside"));
        assert!(err(vec![g("a", vec![])], 0).contains("empty"));
        let names = ["chr1:1-2", "chr1:5-9", "chr2:1-2"];
        let ok = ChromGroups::from_peak_names(&names, 0).unwrap();
        assert_eq!(ok.widths(), vec![2, 1]);
        assert!(ChromGroups::from_peak_names(&["chr1:1"], 0).is_err());
    }
}
