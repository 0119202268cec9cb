//! Typed writers: datasets and attributes of `hdf5` values in a random numeric or string
//! type and a random storage layout.

use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, DatasetBuilder, Group, Location};
use ndarray::Array2;
use rand::Rng;

use crate::mutate::{CaseRng, pick};

/// The numeric HDF5 types a dataset is written as.
#[derive(Debug, Clone, Copy)]
pub(super) enum Num {
    I8,
    U8,
    I16,
    U16,
    I32,
    U32,
    I64,
    U64,
    F32,
    F64,
    Bool,
}

pub(super) const NUMS: [Num; 11] = [
    Num::I8,
    Num::U8,
    Num::I16,
    Num::U16,
    Num::I32,
    Num::U32,
    Num::I64,
    Num::U64,
    Num::F32,
    Num::F64,
    Num::Bool,
];

/// Chunk shape for a dataset of `shape`, or `None` for contiguous storage.
fn storage(rng: &mut CaseRng, b: DatasetBuilder, shape: &[usize]) -> DatasetBuilder {
    let chunk: Vec<usize> = shape.iter().map(|&d| rng.gen_range(1..=d.max(1))).collect();
    if shape.is_empty() || shape.contains(&0) {
        return b;
    }
    match rng.gen_range(0..10) {
        0..=4 => b,
        5 | 6 => b.chunk(chunk),
        7 => b.chunk(chunk).deflate(rng.gen_range(1..9)),
        8 => b.chunk(chunk).shuffle().deflate(1),
        _ => b.chunk(chunk).fletcher32(),
    }
}

macro_rules! write_as {
    ($b:expr, $name:expr, $vals:expr, $shape:expr, $t:ty, $conv:expr) => {{
        let v: Vec<$t> = $vals.iter().map($conv).collect();
        match $shape {
            Some([r, c]) => match Array2::from_shape_vec((r, c), v.clone()) {
                Ok(a) => $b.with_data(&a).create($name),
                Err(_) => $b.with_data(&v[..]).create($name),
            },
            None => $b.with_data(&v[..]).create($name),
        }
    }};
}

/// Writes `vals` as a dataset of a random numeric type (or `ty`), 1-D or with `shape`.
pub(super) fn write_nums(
    rng: &mut CaseRng,
    g: &Group,
    name: &str,
    vals: &[f64],
    shape: Option<[usize; 2]>,
    ty: Option<Num>,
) -> Option<Dataset> {
    let ty = ty.unwrap_or_else(|| pick(rng, &NUMS));
    let dims: Vec<usize> = match shape {
        Some(s) if s[0] * s[1] == vals.len() => s.to_vec(),
        _ => vec![vals.len()],
    };
    let shape2: Option<[usize; 2]> = (dims.len() == 2).then(|| [dims[0], dims[1]]);
    let b = storage(rng, g.new_dataset_builder(), &dims);
    let r = match ty {
        Num::I8 => write_as!(b, name, vals, shape2, i8, |&x| x as i8),
        Num::U8 => write_as!(b, name, vals, shape2, u8, |&x| x as u8),
        Num::I16 => write_as!(b, name, vals, shape2, i16, |&x| x as i16),
        Num::U16 => write_as!(b, name, vals, shape2, u16, |&x| x as u16),
        Num::I32 => write_as!(b, name, vals, shape2, i32, |&x| x as i32),
        Num::U32 => write_as!(b, name, vals, shape2, u32, |&x| x as u32),
        Num::I64 => write_as!(b, name, vals, shape2, i64, |&x| x as i64),
        Num::U64 => write_as!(b, name, vals, shape2, u64, |&x| x as u64),
        Num::F32 => write_as!(b, name, vals, shape2, f32, |&x| x as f32),
        Num::F64 => write_as!(b, name, vals, shape2, f64, |&x| x),
        Num::Bool => write_as!(b, name, vals, shape2, bool, |&x| x != 0.0),
    };
    match r {
        Ok(ds) => Some(ds),
        // a storage choice HDF5 refused: plainly
        Err(_) => {
            let v: Vec<f64> = vals.to_vec();
            g.new_dataset_builder().with_data(&v[..]).create(name).ok()
        }
    }
}

/// Writes strings as a dataset of a random HDF5 string type.
pub(super) fn write_strings(
    rng: &mut CaseRng,
    g: &Group,
    name: &str,
    vals: &[String],
) -> Option<Dataset> {
    let b = storage(rng, g.new_dataset_builder(), &[vals.len()]);
    let r = match rng.gen_range(0..7) {
        0 | 1 => {
            let v: Vec<VarLenUnicode> = vals
                .iter()
                .map(|s| s.replace('\0', "").parse().unwrap_or_default())
                .collect();
            b.with_data(&v[..]).create(name)
        }
        2 => {
            let v: Vec<VarLenAscii> = vals
                .iter()
                .map(|s| {
                    VarLenAscii::from_ascii(&s.replace(|c: char| !c.is_ascii() || c == '\0', ""))
                        .unwrap_or_default()
                })
                .collect();
            b.with_data(&v[..]).create(name)
        }
        3 => b.with_data(&fixed_ascii::<32>(vals)[..]).create(name),
        4 => b.with_data(&fixed_ascii::<300>(vals)[..]).create(name),
        5 => {
            let v: Vec<FixedUnicode<64>> = vals
                .iter()
                .map(|s| {
                    let mut t = String::new();
                    for c in s.chars() {
                        if t.len() + c.len_utf8() > 64 {
                            break;
                        }
                        t.push(c);
                    }
                    t.parse().unwrap_or_default()
                })
                .collect();
            b.with_data(&v[..]).create(name)
        }
        // longer than the 4096 bytes the reader takes
        _ => b.with_data(&fixed_ascii::<5000>(vals)[..]).create(name),
    };
    r.ok()
}

/// The ASCII characters of each string, at most `N` of them, as fixed-length strings.
fn fixed_ascii<const N: usize>(vals: &[String]) -> Vec<FixedAscii<N>> {
    vals.iter()
        .map(|s| {
            let s: String = s.chars().filter(char::is_ascii).take(N).collect();
            FixedAscii::from_ascii(&s).unwrap_or_default()
        })
        .collect()
}

/// A scalar string attribute (variable-length UTF-8, ASCII or fixed).
pub(super) fn str_attr(rng: &mut CaseRng, loc: &Location, name: &str, value: &str) {
    let _ = match rng.gen_range(0..4) {
        0 => loc
            .new_attr::<VarLenAscii>()
            .create(name)
            .and_then(|a| a.write_scalar(&VarLenAscii::from_ascii(value).unwrap_or_default())),
        1 => loc
            .new_attr::<FixedAscii<32>>()
            .create(name)
            .and_then(|a| a.write_scalar(&FixedAscii::<32>::from_ascii(value).unwrap_or_default())),
        _ => loc
            .new_attr::<VarLenUnicode>()
            .create(name)
            .and_then(|a| a.write_scalar(&value.parse::<VarLenUnicode>().unwrap_or_default())),
    };
}

/// A string array attribute (`column-order`).
pub(super) fn str_array_attr(loc: &Location, name: &str, values: &[String]) {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| s.parse().unwrap_or_default())
        .collect();
    let _ = loc.new_attr_builder().with_data(&v[..]).create(name);
}

/// An integer array attribute of a random type (`shape`).
pub(super) fn int_array_attr(rng: &mut CaseRng, loc: &Location, name: &str, values: &[i64]) {
    let _ = match rng.gen_range(0..6) {
        0 => {
            let v: Vec<u64> = values.iter().map(|&x| x as u64).collect();
            loc.new_attr_builder().with_data(&v[..]).create(name)
        }
        1 => {
            let v: Vec<i32> = values.iter().map(|&x| x as i32).collect();
            loc.new_attr_builder().with_data(&v[..]).create(name)
        }
        2 => {
            let v: Vec<f64> = values.iter().map(|&x| x as f64).collect();
            loc.new_attr_builder().with_data(&v[..]).create(name)
        }
        3 => {
            let v: Vec<VarLenUnicode> = values
                .iter()
                .map(|x| x.to_string().parse().unwrap_or_default())
                .collect();
            loc.new_attr_builder().with_data(&v[..]).create(name)
        }
        _ => loc.new_attr_builder().with_data(values).create(name),
    };
}
