//! AnnData data frames (`obs`, `var`): an index and columns in every encoding anndata
//! has used (categorical, old `__categories`, nullable), each part maybe wrong.

use hdf5::Group;
use rand::Rng;

use super::values::names;
use super::write::{Num, str_array_attr, str_attr, write_nums, write_strings};
use crate::mutate::{CaseRng, pick};

/// A data frame group (`obs` / `var`) with an index of `n` names and a few columns.
pub(super) fn write_frame(rng: &mut CaseRng, root: &Group, name: &str, n: usize, prefix: &str) {
    let Ok(g) = root.create_group(name) else {
        return;
    };
    if rng.gen_bool(0.9) {
        str_attr(rng, &g, "encoding-type", "dataframe");
        str_attr(rng, &g, "encoding-version", "0.2.0");
    }
    let index_name = if rng.gen_bool(0.8) {
        "_index"
    } else {
        pick(rng, &["index", "barcode", "gene_ids", "missing"])
    };
    if rng.gen_bool(0.95) {
        str_attr(rng, &g, "_index", index_name);
    }
    let len = if rng.gen_bool(0.1) {
        n + rng.gen_range(0..3)
    } else {
        n
    }
    .saturating_sub(usize::from(rng.gen_bool(0.05)));
    let idx = names(prefix, len, rng);
    if rng.gen_bool(0.9) {
        write_strings(rng, &g, index_name, &idx);
    } else {
        let v: Vec<f64> = (0..len).map(|i| i as f64).collect();
        write_nums(rng, &g, index_name, &v, None, None);
    }
    let mut cols = Vec::new();
    for c in 0..rng.gen_range(0..4) {
        let col = pick(
            rng,
            &[
                "cell_type",
                "batch",
                "gene_ids",
                "n_counts",
                "flag",
                "feature_types",
            ],
        )
        .to_string();
        if cols.contains(&col) {
            continue;
        }
        let rows = if rng.gen_bool(0.1) { len + 1 } else { len };
        match rng.gen_range(0..6) {
            // categorical (anndata >= 0.8)
            0 | 1 => {
                if let Ok(cg) = g.create_group(&col) {
                    let enc = if rng.gen_bool(0.9) {
                        "categorical"
                    } else {
                        "categoricall"
                    };
                    str_attr(rng, &cg, "encoding-type", enc);
                    let ncat = rng.gen_range(0..5usize);
                    let cats: Vec<String> = (0..ncat).map(|k| format!("type{k}")).collect();
                    let codes: Vec<f64> = (0..rows)
                        .map(|_| {
                            if rng.gen_bool(0.05) {
                                pick(rng, &[-1.0, 99.0, 127.0, -128.0, 300.0])
                            } else {
                                rng.gen_range(0..ncat.max(1)) as f64
                            }
                        })
                        .collect();
                    let ty = pick(
                        rng,
                        &[
                            Num::I8,
                            Num::I16,
                            Num::I32,
                            Num::I64,
                            Num::U8,
                            Num::F32,
                            Num::U64,
                        ],
                    );
                    write_nums(rng, &cg, "codes", &codes, None, Some(ty));
                    if rng.gen_bool(0.95) {
                        write_strings(rng, &cg, "categories", &cats);
                    }
                }
            }
            // numbers
            2 => {
                let v: Vec<f64> = (0..rows).map(|_| rng.gen_range(-5.0..100.0)).collect();
                write_nums(rng, &g, &col, &v, None, None);
            }
            // strings
            3 => {
                let v: Vec<String> = (0..rows).map(|_| crate::mutate::word(rng, 12)).collect();
                write_strings(rng, &g, &col, &v);
            }
            // old anndata: codes here, categories in __categories
            4 => {
                let codes: Vec<f64> = (0..rows).map(|_| rng.gen_range(-1..4) as f64).collect();
                write_nums(rng, &g, &col, &codes, None, Some(Num::I8));
                let cats = root_categories(&g);
                if let Some(cats) = cats {
                    let v: Vec<String> = (0..rng.gen_range(0..4))
                        .map(|k| format!("old{k}"))
                        .collect();
                    write_strings(rng, &cats, &col, &v);
                }
            }
            // nullable
            _ => {
                if let Ok(cg) = g.create_group(&col) {
                    let enc = pick(
                        rng,
                        &[
                            "nullable-integer",
                            "nullable-boolean",
                            "nullable-string-array",
                        ],
                    );
                    str_attr(rng, &cg, "encoding-type", enc);
                    let v: Vec<f64> = (0..rows).map(|_| rng.gen_range(0..3) as f64).collect();
                    write_nums(rng, &cg, "values", &v, None, None);
                    let m: Vec<f64> = (0..rows + usize::from(rng.gen_bool(0.05)))
                        .map(|_| f64::from(u8::from(rng.gen_bool(0.2))))
                        .collect();
                    let ty = if rng.gen_bool(0.9) {
                        Num::Bool
                    } else {
                        Num::U8
                    };
                    write_nums(rng, &cg, "mask", &m, None, Some(ty));
                }
            }
        }
        let _ = c;
        cols.push(col);
    }
    if rng.gen_bool(0.9) {
        let mut order = cols.clone();
        if rng.gen_bool(0.05) {
            order.push("not_there".into());
        }
        str_array_attr(&g, "column-order", &order);
    }
}

fn root_categories(g: &Group) -> Option<Group> {
    g.group("__categories")
        .or_else(|_| g.create_group("__categories"))
        .ok()
}
