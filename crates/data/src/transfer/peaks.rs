//! Matching an upload's peaks to a model's by genomic overlap (one sweep per chromosome),
//! and parsing peak names.

use std::collections::HashMap;

use crate::error::{DataError, Result};
use crate::genome::{Peak, unify_chrom};

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

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Peak {
        Peak::parse(text).unwrap()
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
}
