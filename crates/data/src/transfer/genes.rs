//! Matching an upload's genes to a model's: exact names, then case, then alternative ids,
//! then Ensembl versions ignored.

use std::collections::HashMap;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
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
}
