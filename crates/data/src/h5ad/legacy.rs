//! The `obs` and `var` tables of anndata 0.5 / 0.6: compound datasets read raw, one record
//! a row, with categorical codes named by `uns/<column>_categories`.

use anndata::backend::GroupOp;
use anndata_hdf5::H5Group;
use crossomics_limits::{Limit, Limits, excerpt_str};

use super::frame::{Frame, dataset_strings, py_float, rows_limit};
use super::open::{Loc, dataset_len};
use crate::error::{DataError, Result};

/// `obs` / `var` as anndata < 0.7 wrote them (`df_to_records_fixed_width`): one compound
/// dataset, a record a row, its first member the index (`index`); a categorical column
/// holds integer codes, its categories are `uns/<column>_categories` and apply, as in
/// anndata's `_clean_uns`, where every code is below their number (-1: missing). Members
/// of other types (arrays, nested records) are skipped like unknown column encodings.
pub(super) fn read_legacy_frame(
    root: &H5Group,
    ds: &hdf5::Dataset,
    loc: &Loc<'_>,
    name: &str,
    limits: &Limits,
) -> Result<Frame> {
    use hdf5::datatype::ByteOrder;
    use hdf5::types::TypeDescriptor;
    let err = |r: String| loc.err(name, r);
    let shape = ds.shape();
    if shape.len() != 1 {
        return Err(err(format!(
            "a dataset of {} dimensions, not a table of records",
            shape.len()
        )));
    }
    let rows = shape[0];
    loc.check(limits, rows_limit(name), rows, name, "its records")?;
    let dtype = ds
        .dtype()
        .map_err(|e| err(format!("cannot be inspected: {e}")))?;
    let Ok(TypeDescriptor::Compound(compound)) = dtype.to_descriptor() else {
        return Err(err(
            "is a dataset, not a data frame: anndata < 0.7 wrote a table of records (a compound dataset), anndata >= 0.7 a group".into(),
        ));
    };
    if !matches!(
        dtype.byte_order(),
        ByteOrder::LittleEndian | ByteOrder::None
    ) {
        return Err(err(
            "holds big-endian (or mixed-order) records, which this reader does not read".into(),
        ));
    }
    if compound.fields.is_empty() {
        return Err(err("its records have no members (no index)".into()));
    }
    loc.check(
        limits,
        Limit::ObsColumns,
        compound.fields.len() - 1,
        name,
        "its columns",
    )?;
    // member offsets in the file: the library reports them as in memory, where a
    // variable-length string takes 8 bytes less (see `extra_disk_bytes`)
    let mut by_offset: Vec<&hdf5::types::CompoundField> = compound.fields.iter().collect();
    by_offset.sort_by_key(|f| f.offset);
    let mut shift = 0usize;
    let mut placed = Vec::with_capacity(by_offset.len());
    for f in by_offset {
        let extra = crate::hdf5_vet::extra_disk_bytes(&Some(f.ty.clone()));
        placed.push((f.index, f, f.offset + shift, f.ty.size() + extra));
        shift += extra;
    }
    placed.sort_by_key(|p| p.0);
    let item = compound.size + shift;
    if placed.iter().any(|&(_, _, at, size)| at + size > item) || item == 0 {
        return Err(err("its records' members do not fit in a record".into()));
    }
    loc.check_dense(limits, rows, item, name, "the bytes of its records")?;
    let bytes = crate::hdf5_vet::read_raw_1d(loc.path, ds, rows, item).map_err(err)?;
    let mut heaps = crate::hdf5_vet::GlobalHeaps::new(loc.path, limits)
        .map_err(|e| DataError::io(loc.path, e))?;
    let mut columns = Vec::new();
    let mut index = None;
    for (k, &(_, field, at, size)) in placed.iter().enumerate() {
        let elem = format!("{name} (member `{}`)", excerpt_str(&field.name, 60));
        let column = legacy_column(&bytes, item, rows, at, size, &field.ty, &mut heaps)
            .map_err(|r| loc.err(&elem, r))?;
        if k == 0 {
            let Some((names, _)) = column else {
                return Err(loc.err(
                    &elem,
                    "the index (the first member) is of a type this reader does not read",
                ));
            };
            index = Some(names);
            continue;
        }
        let Some((mut values, codes)) = column else {
            continue;
        };
        if let Some(codes) = codes
            && let Some(categories) = legacy_categories(root, loc, &field.name, limits)?
            && codes.iter().all(|&c| c < categories.len() as i128)
        {
            values = codes
                .iter()
                .map(|&c| {
                    usize::try_from(c).map_or_else(|_| String::new(), |c| categories[c].clone())
                })
                .collect();
        }
        columns.push((field.name.clone(), values));
    }
    Ok(Frame {
        index: index.unwrap_or_default(),
        columns,
    })
}

/// `uns/<column>_categories` (anndata < 0.7), at most `max_cells` of them; `None` when
/// the file has none.
fn legacy_categories(
    root: &H5Group,
    loc: &Loc<'_>,
    column: &str,
    limits: &Limits,
) -> Result<Option<Vec<String>>> {
    let key = format!("{column}_categories");
    let Ok(uns) = root.open_group("uns") else {
        return Ok(None);
    };
    if !uns.exists(&key).unwrap_or(false) {
        return Ok(None);
    }
    let elem = format!("uns/{}", excerpt_str(&key, 60));
    let Ok(ds) = uns.open_dataset(&key) else {
        return Ok(None);
    };
    let len = dataset_len(&ds);
    if len as u64 > limits.max_cells {
        return Err(loc.err(
            &elem,
            format!(
                "{len} categories, over the limit of {} (max_cells)",
                limits.max_cells
            ),
        ));
    }
    dataset_strings(&ds)
        .map(Some)
        .map_err(|r| loc.err(&elem, r))
}

/// A column of anndata < 0.7 as text, and as integers where it holds integers
/// (categorical codes).
type LegacyColumn = (Vec<String>, Option<Vec<i128>>);

/// The values of one member (at byte `at`, `size` bytes in the file) of `rows` records of
/// `item` bytes, as text; integers also as numbers (categorical codes). `None` for a
/// type this reader does not read.
fn legacy_column(
    bytes: &[u8],
    item: usize,
    rows: usize,
    at: usize,
    size: usize,
    ty: &hdf5::types::TypeDescriptor,
    heaps: &mut crate::hdf5_vet::GlobalHeaps<'_>,
) -> std::result::Result<Option<LegacyColumn>, String> {
    use hdf5::types::TypeDescriptor as T;
    let values = (0..rows).map(|r| &bytes[r * item + at..r * item + at + size]);
    let int = |v: &[u8], signed: bool| -> i128 {
        let mut b = [0u8; 16];
        b[..v.len()].copy_from_slice(v);
        if signed && v.last().is_some_and(|&x| x & 0x80 != 0) {
            b[v.len()..].fill(0xff);
        }
        i128::from_le_bytes(b)
    };
    Ok(Some(match ty {
        T::Integer(_) | T::Unsigned(_) if size <= 8 => {
            let signed = matches!(ty, T::Integer(_));
            let codes: Vec<i128> = values.map(|v| int(v, signed)).collect();
            (codes.iter().map(|c| c.to_string()).collect(), Some(codes))
        }
        T::Float(_) if size == 4 => (
            values
                .map(|v| {
                    let x = f32::from_le_bytes([v[0], v[1], v[2], v[3]]);
                    py_float(f64::from(x), x.to_string())
                })
                .collect(),
            None,
        ),
        T::Float(_) if size == 8 => (
            values
                .map(|v| {
                    let x = f64::from_le_bytes(v.try_into().unwrap_or_default());
                    py_float(x, x.to_string())
                })
                .collect(),
            None,
        ),
        T::Boolean => (
            values
                .map(|v| if v[0] != 0 { "True" } else { "False" }.to_string())
                .collect(),
            None,
        ),
        T::Enum(e) if size <= 8 => (
            values
                .map(|v| {
                    let x = int(v, e.signed);
                    e.members
                        .iter()
                        .find(|m| {
                            i128::from(m.value) == x || (e.signed && m.value as i64 as i128 == x)
                        })
                        .map_or_else(|| x.to_string(), |m| m.name.clone())
                })
                .collect(),
            None,
        ),
        T::FixedAscii(_) | T::FixedUnicode(_) => (
            values
                .map(|v| {
                    let end = v.iter().position(|&b| b == 0).unwrap_or(v.len());
                    String::from_utf8_lossy(&v[..end]).into_owned()
                })
                .collect(),
            None,
        ),
        T::VarLenUnicode | T::VarLenAscii => (
            values
                .map(|v| heaps.string(v))
                .collect::<std::result::Result<_, _>>()?,
            None,
        ),
        _ => return Ok(None),
    }))
}
