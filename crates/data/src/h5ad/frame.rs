//! The `obs` and `var` data frames of anndata >= 0.7: the index and every column as text
//! (categoricals as their names, nullable arrays with missing values empty, numbers as
//! Python prints them).

use anndata::backend::{AttributeOp, DatasetOp, GroupOp, Value};
use anndata::data::DynArray;
use anndata_hdf5::H5Group;
use crossomics_limits::{Limit, Limits, excerpt_str};

use super::arrays::dyn_type_name;
use super::legacy::read_legacy_frame;
use super::open::{Loc, dataset_len, string_attr};
use crate::error::Result;

/// An index and text columns of an `obs` or `var` data frame.
pub(super) struct Frame {
    pub(super) index: Vec<String>,
    pub(super) columns: Vec<(String, Vec<String>)>,
}

/// What the rows of data frame `name` are: features for `var`, cells for `obs`.
pub(super) fn rows_limit(name: &str) -> Limit {
    if name == "var" {
        Limit::Features
    } else {
        Limit::Cells
    }
}

pub(super) fn read_frame(g: &H5Group, loc: &Loc<'_>, name: &str, limits: &Limits) -> Result<Frame> {
    if !g.exists(name).unwrap_or(false) {
        return Err(loc.err(name, format!("missing: the file has no `{name}` group")));
    }
    // anndata < 0.7: a compound dataset
    if let Ok(ds) = hdf5::Group::dataset(g, name) {
        return read_legacy_frame(g, &ds, loc, name, limits);
    }
    let group = g.open_group(name).map_err(|_| {
        loc.err(
            name,
            "is neither a data frame group nor a table of records (anndata < 0.7)",
        )
    })?;
    let index_name = string_attr(&group, "_index").unwrap_or_else(|| "_index".into());
    let index_ds = group.open_dataset(&index_name).map_err(|_| {
        loc.err(
            name,
            format!("has no index dataset `{index_name}` (names of its rows)"),
        )
    })?;
    let index_elem = format!("{name}/{index_name}");
    loc.check(
        limits,
        rows_limit(name),
        dataset_len(&index_ds),
        &index_elem,
        "its length",
    )?;
    let index = dataset_strings(&index_ds).map_err(|r| loc.err(&index_elem, r))?;
    let order: Vec<String> = match group.get_json_attr("column-order") {
        Ok(Value::Array(items)) => items
            .into_iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        _ => group
            .list()
            .unwrap_or_default()
            .into_iter()
            .filter(|n| *n != index_name && n != "__categories")
            .collect(),
    };
    loc.check(limits, Limit::ObsColumns, order.len(), name, "its columns")?;
    let mut columns = Vec::new();
    for col in order {
        let elem = format!("{name}/{}", excerpt_str(&col, 60));
        let Some(values) =
            read_column(&group, &col, index.len(), limits).map_err(|r| loc.err(&elem, r))?
        else {
            continue;
        };
        if values.len() != index.len() {
            return Err(loc.err(
                &elem,
                format!("{} values for {} rows", values.len(), index.len()),
            ));
        }
        columns.push((col, values));
    }
    Ok(Frame { index, columns })
}

/// One data-frame column as text; `None` for an encoding this reader does not know.
///
/// Every array is checked against its claimed length before it is read: `rows` values
/// (codes, values, mask), at most `limits.max_cells` categories.
fn read_column(
    frame: &H5Group,
    col: &str,
    rows: usize,
    limits: &Limits,
) -> std::result::Result<Option<Vec<String>>, String> {
    if !frame.exists(col).unwrap_or(false) {
        return Err("listed in column-order but missing".into());
    }
    let rows_of = |ds: &anndata_hdf5::H5Dataset, what: &str| {
        let len = dataset_len(ds);
        if len == rows {
            Ok(())
        } else {
            Err(format!("{what}{len} values for {rows} rows"))
        }
    };
    let categories_of = |ds: &anndata_hdf5::H5Dataset| {
        let len = dataset_len(ds);
        if len as u64 <= limits.max_cells {
            Ok(())
        } else {
            Err(format!(
                "{len} categories, over the limit of {} (max_cells)",
                limits.max_cells
            ))
        }
    };
    if let Ok(ds) = frame.open_dataset(col) {
        rows_of(&ds, "")?;
        // anndata < 0.8: codes here, categories in `__categories/<col>`
        if let Ok(cats) = frame
            .open_group("__categories")
            .and_then(|c| c.open_dataset(col))
        {
            categories_of(&cats)?;
            let codes = ds.read_dyn_array().map_err(|e| format!("{e:#}"))?;
            return categorical(codes, dataset_strings(&cats)?).map(Some);
        }
        return dataset_strings(&ds).map(Some);
    }
    let group = frame.open_group(col).map_err(|e| format!("{e:#}"))?;
    match string_attr(&group, "encoding-type").as_deref() {
        Some("categorical") => {
            let codes = group
                .open_dataset("codes")
                .map_err(|e| format!("codes: {e:#}"))?;
            rows_of(&codes, "codes: ")?;
            let codes = codes
                .read_dyn_array()
                .map_err(|e| format!("codes: {e:#}"))?;
            let cats = group
                .open_dataset("categories")
                .map_err(|e| format!("categories: {e:#}"))?;
            categories_of(&cats)?;
            categorical(codes, dataset_strings(&cats)?).map(Some)
        }
        Some("nullable-integer" | "nullable-boolean" | "nullable-string-array") => {
            let values = group
                .open_dataset("values")
                .map_err(|e| format!("values: {e:#}"))?;
            rows_of(&values, "values: ")?;
            let values = dataset_strings(&values)?;
            let mask = group
                .open_dataset("mask")
                .map_err(|e| format!("mask: {e:#}"))?;
            rows_of(&mask, "mask: ")?;
            let mask = mask.read_dyn_array().map_err(|e| format!("mask: {e:#}"))?;
            let DynArray::Bool(mask) = mask else {
                return Err("mask is not boolean".into());
            };
            if mask.len() != values.len() {
                return Err("mask and values differ in length".into());
            }
            Ok(Some(
                values
                    .into_iter()
                    .zip(mask.iter())
                    .map(|(v, &m)| if m { String::new() } else { v })
                    .collect(),
            ))
        }
        _ => Ok(None),
    }
}

/// Codes (-1 = missing, shown as an empty string) to category names.
fn categorical(
    codes: DynArray,
    categories: Vec<String>,
) -> std::result::Result<Vec<String>, String> {
    let codes: Vec<i64> = match codes {
        DynArray::I8(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I16(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I32(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::I64(a) => a.iter().copied().collect(),
        DynArray::U8(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::U16(a) => a.iter().map(|&v| v.into()).collect(),
        DynArray::U32(a) => a.iter().map(|&v| v.into()).collect(),
        other => return Err(format!("categorical codes are {}", dyn_type_name(&other))),
    };
    codes
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            if c < 0 {
                Ok(String::new())
            } else {
                categories.get(c as usize).cloned().ok_or_else(|| {
                    format!(
                        "code {c} of row {i} is outside the {} categories",
                        categories.len()
                    )
                })
            }
        })
        .collect()
}

/// Any 1-D dataset as text: strings (variable or fixed length) as they are, numbers as
/// Python prints them (`1.0`, `nan`), booleans as `True` / `False`.
pub(super) fn dataset_strings(
    ds: &anndata_hdf5::H5Dataset,
) -> std::result::Result<Vec<String>, String> {
    if let Some(strings) = crate::tenx::read_strings(ds).map_err(|e| e.to_string())? {
        return Ok(strings);
    }
    let arr = ds.read_dyn_array().map_err(|e| format!("{e:#}"))?;
    Ok(match arr {
        DynArray::String(a) => a.iter().cloned().collect(),
        DynArray::Bool(a) => a
            .iter()
            .map(|&b| if b { "True" } else { "False" }.to_string())
            .collect(),
        DynArray::F32(a) => a
            .iter()
            .map(|&v| py_float(v as f64, v.to_string()))
            .collect(),
        DynArray::F64(a) => a.iter().map(|&v| py_float(v, v.to_string())).collect(),
        DynArray::I8(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I16(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I32(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::I64(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U8(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U16(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U32(a) => a.iter().map(|v| v.to_string()).collect(),
        DynArray::U64(a) => a.iter().map(|v| v.to_string()).collect(),
    })
}

/// `shortest` (the shortest text that reads back the same value) in Python's spelling.
pub(super) fn py_float(v: f64, shortest: String) -> String {
    if v.is_nan() {
        "nan".into()
    } else if v.is_infinite() {
        if v > 0.0 { "inf" } else { "-inf" }.into()
    } else if !shortest.contains(['.', 'e', 'E']) && v.abs() < 1e16 {
        format!("{shortest}.0")
    } else {
        shortest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_python_prints_them() {
        assert_eq!(py_float(1.0, 1.0f64.to_string()), "1.0");
        assert_eq!(py_float(2.5, 2.5f64.to_string()), "2.5");
        assert_eq!(py_float(f64::NAN, String::new()), "nan");
        assert_eq!(py_float(f64::NEG_INFINITY, String::new()), "-inf");
        assert_eq!(py_float(0.1f32 as f64, 0.1f32.to_string()), "0.1");
    }
}
