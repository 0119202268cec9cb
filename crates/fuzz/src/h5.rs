//! HDF5 inputs (h5ad and 10x `.h5`): seeds written with `crossomics_data::h5ad::write`
//! and with the `hdf5` crate in the Cell Ranger layout, and a structure-aware generator
//! that builds whole files with randomized shapes, dtypes, storage (chunked, compressed,
//! compact, huge claimed dataspaces with nothing written), attributes, string types,
//! soft and external links, external storage and unknown filters.
//!
//! Every `hdf5` call in a generator is allowed to fail (a combination HDF5 itself
//! refuses to write is simply left out): the generator's job is to produce files, and
//! the oracle judges what the readers make of them.

use std::path::Path;

use hdf5::types::{FixedAscii, FixedUnicode, TypeDescriptor, VarLenAscii, VarLenUnicode};
use hdf5::{Dataset, DatasetBuilder, Group, Location};
use nalgebra_sparse::{CooMatrix, CsrMatrix};
use ndarray::Array2;
use rand::Rng;

use crossomics_data::CellTable;
use crossomics_data::h5ad::{self, Matrix};

use crate::mutate::{CaseRng, pick};

/// What the generator put into a file that a reader must refuse: an `Ok` from a reader
/// on such a file is a failure (the vetting was bypassed).
#[derive(Debug, Default, Clone)]
pub struct Planted {
    /// (path in the file, what)
    pub items: Vec<(String, &'static str)>,
}

impl Planted {
    /// What is planted and still in the file.
    pub fn forbidden(&self) -> Vec<&'static str> {
        self.items.iter().map(|(_, what)| *what).collect()
    }

    /// `path` was unlinked: what was planted at or under it is gone.
    fn unlinked(&mut self, path: &str) {
        let under = format!("{path}/");
        self.items
            .retain(|(p, _)| p != path && !p.starts_with(&under));
    }
}

/// The numeric HDF5 types a dataset is written as.
#[derive(Debug, Clone, Copy)]
enum Num {
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

const NUMS: [Num; 11] = [
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
fn write_nums(
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
fn write_strings(rng: &mut CaseRng, g: &Group, name: &str, vals: &[String]) -> Option<Dataset> {
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
        3 => {
            let v: Vec<FixedAscii<32>> = vals
                .iter()
                .map(|s| {
                    let s: String = s.chars().filter(char::is_ascii).take(32).collect();
                    FixedAscii::from_ascii(&s).unwrap_or_default()
                })
                .collect();
            b.with_data(&v[..]).create(name)
        }
        4 => {
            let v: Vec<FixedAscii<300>> = vals
                .iter()
                .map(|s| {
                    let s: String = s.chars().filter(char::is_ascii).take(300).collect();
                    FixedAscii::from_ascii(&s).unwrap_or_default()
                })
                .collect();
            b.with_data(&v[..]).create(name)
        }
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
        _ => {
            // longer than the 4096 bytes the reader takes
            let v: Vec<FixedAscii<5000>> = vals
                .iter()
                .map(|s| {
                    let s: String = s.chars().filter(char::is_ascii).take(5000).collect();
                    FixedAscii::from_ascii(&s).unwrap_or_default()
                })
                .collect();
            b.with_data(&v[..]).create(name)
        }
    };
    r.ok()
}

/// A scalar string attribute (variable-length UTF-8, ASCII or fixed).
fn str_attr(rng: &mut CaseRng, loc: &Location, name: &str, value: &str) {
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
fn str_array_attr(loc: &Location, name: &str, values: &[String]) {
    let v: Vec<VarLenUnicode> = values
        .iter()
        .map(|s| s.parse().unwrap_or_default())
        .collect();
    let _ = loc.new_attr_builder().with_data(&v[..]).create(name);
}

/// An integer array attribute of a random type (`shape`).
fn int_array_attr(rng: &mut CaseRng, loc: &Location, name: &str, values: &[i64]) {
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

/// A random sparse matrix `rows x cols` with values that are mostly small counts.
fn random_csr(
    rng: &mut CaseRng,
    rows: usize,
    cols: usize,
    weird: bool,
) -> (Vec<i64>, Vec<i64>, Vec<f64>) {
    let mut indptr = vec![0i64];
    let mut indices = Vec::new();
    let mut data = Vec::new();
    for _ in 0..rows {
        for c in 0..cols {
            if rng.gen_bool(0.3) {
                indices.push(c as i64);
                data.push(if weird && rng.gen_bool(0.1) {
                    pick(rng, &[f64::NAN, f64::INFINITY, -1.0, 0.5, 1e39, 0.0, -0.0])
                } else {
                    f64::from(rng.gen_range(1u8..20))
                });
            }
        }
        indptr.push(indices.len() as i64);
    }
    (indptr, indices, data)
}

/// Corrupts an index array now and then: out of range, negative, unsorted, wrong length.
fn corrupt_ints(rng: &mut CaseRng, v: &mut Vec<i64>) {
    if !rng.gen_bool(0.3) {
        return;
    }
    match rng.gen_range(0..6) {
        0 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] = pick(rng, &[-1, i64::MIN, i64::MAX, 1 << 32, 100_000, 1_000_001]);
        }
        1 => {
            v.pop();
        }
        2 => v.push(rng.gen_range(0..50)),
        3 => v.reverse(),
        4 if !v.is_empty() => {
            let i = rng.gen_range(0..v.len());
            v[i] += rng.gen_range(1..5);
        }
        _ => v.clear(),
    }
}

fn names(prefix: &str, n: usize, rng: &mut CaseRng) -> Vec<String> {
    let mut v: Vec<String> = (0..n).map(|i| format!("{prefix}{i}")).collect();
    if n > 1 && rng.gen_bool(0.05) {
        v[n - 1] = v[0].clone();
    }
    if n > 0 && rng.gen_bool(0.05) {
        v[0] = pick(rng, &["", "é", "a\u{0}b", "x".repeat(5000).as_str()]).to_string();
    }
    v
}

/// Things that vetting must refuse or bound, planted with small probability anywhere.
fn plant_adversarial(rng: &mut CaseRng, file: &hdf5::File, planted: &mut Planted) {
    let root: &Group = file;
    let target = pick(
        rng,
        &["", "obs", "var", "X", "matrix", "matrix/features", "layers"],
    );
    let g = if target.is_empty() {
        Some(root.clone())
    } else {
        root.group(target).ok()
    };
    let Some(g) = g else { return };
    let name = pick(
        rng,
        &[
            "X",
            "data",
            "indices",
            "indptr",
            "shape",
            "barcodes",
            "_index",
            "id",
            "cell_type",
            "extra",
            "counts",
        ],
    );
    let exists = g.link_exists(name);
    let full = format!("{}/{name}", g.name().trim_end_matches('/'));
    if exists {
        planted.unlinked(&full);
    }
    match rng.gen_range(0..12) {
        0 => {
            if exists {
                let _ = g.unlink(name);
            }
            let to = pick(
                rng,
                &["/X", "/obs/_index", "/matrix/data", "/nowhere", "/var"],
            );
            if g.link_soft(to, name).is_ok() {
                planted.items.push((full.clone(), "soft link"));
            }
        }
        1 => {
            if exists {
                let _ = g.unlink(name);
            }
            // relative names resolve beside the file (the file itself); no absolute path
            // of the scratch folder, so that the bytes do not depend on the process
            let file_name = pick(
                rng,
                &["/nonexistent/crossomics-fuzz.h5", "input.h5ad", "input.h5"],
            )
            .to_string();
            let obj = pick(rng, &["/", "/X", "/matrix/data", "/obs"]);
            if g.link_external(&file_name, obj, name).is_ok() {
                planted.items.push((full.clone(), "external link"));
            }
        }
        2 => {
            if exists {
                let _ = g.unlink(name);
            }
            let n = rng.gen_range(1..64usize);
            let path = pick(
                rng,
                &["/dev/zero", "crossomics-fuzz-missing.bin", "/dev/null"],
            );
            if g.new_dataset_builder()
                .external(path, 0, n * 8)
                .empty::<f64>()
                .shape([n])
                .create(name)
                .is_ok()
            {
                planted.items.push((full.clone(), "external storage"));
            }
        }
        3 => {
            if exists {
                let _ = g.unlink(name);
            }
            // filters the reader refuses (LZF, 32000, is read since the anndata 0.7
            // archives: planting it would write a valid file)
            let id = pick(rng, &[32008, 307, 32001, 32015, 12345, 4]);
            let v: Vec<f32> = (0..16).map(|i| i as f32).collect();
            if g.new_dataset_builder()
                .chunk(4)
                .add_filter(id, &[])
                .with_data(&v[..])
                .create(name)
                .is_ok()
            {
                planted.items.push((full.clone(), "unknown filter"));
            }
        }
        // a huge dataspace on a chunked dataset with nothing written
        4 | 5 => {
            if exists {
                let _ = g.unlink(name);
            }
            let dims = pick(
                rng,
                &[
                    vec![1usize << 40],
                    vec![1 << 20, 1 << 20],
                    vec![100_001, 100_001],
                    vec![usize::MAX / 4],
                ],
            );
            let chunk: Vec<usize> = dims.iter().map(|_| rng.gen_range(1..64)).collect();
            let _ = g
                .new_dataset_builder()
                .chunk(chunk)
                .empty::<f32>()
                .shape(dims)
                .create(name);
        }
        // a chunk over the block limit
        6 => {
            if exists {
                let _ = g.unlink(name);
            }
            let _ = g
                .new_dataset_builder()
                .chunk([1usize << 23])
                .empty::<f64>()
                .shape([1usize << 23])
                .create(name);
        }
        // a hard link cycle
        7 => {
            let _ = g.link_hard("/", "loop");
        }
        // deep nesting
        8 => {
            let mut cur = g.clone();
            for i in 0..rng.gen_range(60..72) {
                match cur.create_group(&format!("d{i}")) {
                    Ok(next) => cur = next,
                    Err(_) => break,
                }
            }
        }
        // many objects
        9 => {
            if rng.gen_bool(0.3)
                && let Ok(many) = g.create_group("many")
            {
                for i in 0..rng.gen_range(200..520) {
                    let _ = many.create_group(&format!("g{i}"));
                }
            }
        }
        // exotic types: compound, enum, array, vlen sequences, references-ish
        10 => {
            if exists {
                let _ = g.unlink(name);
            }
            let td = pick(
                rng,
                &[
                    TypeDescriptor::VarLenArray(Box::new(TypeDescriptor::Integer(
                        hdf5::types::IntSize::U4,
                    ))),
                    TypeDescriptor::FixedArray(
                        Box::new(TypeDescriptor::Float(hdf5::types::FloatSize::U8)),
                        3,
                    ),
                    TypeDescriptor::Compound(hdf5::types::CompoundType {
                        fields: vec![
                            hdf5::types::CompoundField::typed::<i32>("a", 0, 0),
                            hdf5::types::CompoundField::typed::<f64>("b", 8, 1),
                        ],
                        size: 16,
                    }),
                    TypeDescriptor::FixedAscii(0),
                    TypeDescriptor::Float(hdf5::types::FloatSize::U4),
                ],
            );
            let n = rng.gen_range(0..10usize);
            let _ = g
                .new_dataset_builder()
                .empty_as(&td)
                .shape([n])
                .create(name);
        }
        // scalar or null dataspace
        _ => {
            if exists {
                let _ = g.unlink(name);
            }
            if rng.r#gen() {
                let _ = g
                    .new_dataset_builder()
                    .with_data(ndarray::arr0(7i64).view())
                    .create(name);
            } else {
                let _ = g
                    .new_dataset::<i64>()
                    .shape(hdf5::Extents::Null)
                    .create(name);
            }
        }
    }
}

/// A data frame group (`obs` / `var`) with an index of `n` names and a few columns.
fn write_frame(rng: &mut CaseRng, root: &Group, name: &str, n: usize, prefix: &str) {
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

/// Builds an h5ad-like file from scratch at `path`.
pub fn generate_h5ad(rng: &mut CaseRng, path: &Path) -> Planted {
    let mut planted = Planted::default();
    let Ok(file) = hdf5::File::create(path) else {
        return planted;
    };
    let root: &Group = &file;
    if rng.gen_bool(0.8) {
        str_attr(rng, root, "encoding-type", "anndata");
        str_attr(rng, root, "encoding-version", "0.1.0");
    }
    let n_obs = if rng.gen_bool(0.05) {
        0
    } else {
        rng.gen_range(1..12)
    };
    let n_vars = if rng.gen_bool(0.05) {
        0
    } else {
        rng.gen_range(1..12)
    };
    let weird = rng.gen_bool(0.3);
    match rng.gen_range(0..10) {
        // dense X
        0..=2 => {
            let vals: Vec<f64> = (0..n_obs * n_vars)
                .map(|_| {
                    if weird && rng.gen_bool(0.05) {
                        pick(rng, &[f64::NAN, -3.0, 0.25, f64::INFINITY])
                    } else if rng.gen_bool(0.6) {
                        0.0
                    } else {
                        rng.gen_range(1..9) as f64
                    }
                })
                .collect();
            let shape = if rng.gen_bool(0.9) {
                Some([n_obs, n_vars])
            } else {
                None
            };
            write_nums(rng, root, "X", &vals, shape, None);
        }
        // sparse X
        3..=8 => {
            let is_csr = rng.gen_bool(0.7);
            let (major, minor) = if is_csr {
                (n_obs, n_vars)
            } else {
                (n_vars, n_obs)
            };
            let (mut indptr, mut indices, mut data) = random_csr(rng, major, minor, weird);
            corrupt_ints(rng, &mut indptr);
            corrupt_ints(rng, &mut indices);
            if rng.gen_bool(0.05) {
                data.pop();
            }
            if let Ok(x) = root.create_group("X") {
                let enc = if rng.gen_bool(0.9) {
                    if is_csr { "csr_matrix" } else { "csc_matrix" }
                } else {
                    pick(rng, &["coo_matrix", "dataframe", "", "csr"])
                };
                if rng.gen_bool(0.9) {
                    str_attr(rng, &x, "encoding-type", enc);
                } else {
                    str_attr(
                        rng,
                        &x,
                        "h5sparse_format",
                        if is_csr { "csr" } else { "csc" },
                    );
                }
                str_attr(rng, &x, "encoding-version", "0.1.0");
                let mut shape = vec![n_obs as i64, n_vars as i64];
                if rng.gen_bool(0.15) {
                    match rng.gen_range(0..5) {
                        0 => {
                            shape[rng.gen_range(0..2)] =
                                pick(rng, &[-1, i64::MAX, 1 << 40, 100_001, 0])
                        }
                        1 => shape.push(3),
                        2 => {
                            shape.pop();
                        }
                        3 => shape[0] += 1,
                        _ => shape[1] += 1,
                    }
                }
                if rng.gen_bool(0.97) {
                    let attr = if rng.gen_bool(0.95) {
                        "shape"
                    } else {
                        "h5sparse_shape"
                    };
                    int_array_attr(rng, &x, attr, &shape);
                }
                let idx_ty = pick(
                    rng,
                    &[
                        Num::I32,
                        Num::I64,
                        Num::U32,
                        Num::U64,
                        Num::I16,
                        Num::F32,
                        Num::U8,
                    ],
                );
                write_nums(rng, &x, "data", &data, None, None);
                let ind: Vec<f64> = indices.iter().map(|&v| v as f64).collect();
                write_nums(rng, &x, "indices", &ind, None, Some(idx_ty));
                let ptr: Vec<f64> = indptr.iter().map(|&v| v as f64).collect();
                write_nums(rng, &x, "indptr", &ptr, None, Some(idx_ty));
            }
        }
        // no X at all
        _ => {}
    }
    if rng.gen_bool(0.1)
        && let Ok(layers) = root.create_group("layers")
    {
        let vals: Vec<f64> = (0..n_obs * n_vars)
            .map(|_| rng.gen_range(0..3) as f64)
            .collect();
        write_nums(rng, &layers, "counts", &vals, Some([n_obs, n_vars]), None);
    }
    if rng.gen_bool(0.97) {
        write_frame(rng, root, "obs", n_obs, "cell");
    }
    if rng.gen_bool(0.97) {
        write_frame(rng, root, "var", n_vars, "gene");
    }
    for _ in 0..rng.gen_range(0..3) {
        if rng.gen_bool(0.35) {
            plant_adversarial(rng, &file, &mut planted);
        }
    }
    planted
}

/// Builds a 10x feature-barcode `.h5` from scratch at `path` (the Cell Ranger layout,
/// `/matrix/{data,indices,indptr,shape,barcodes,features/*}`), each part maybe wrong.
pub fn generate_tenx_h5(rng: &mut CaseRng, path: &Path) -> Planted {
    let mut planted = Planted::default();
    let Ok(file) = hdf5::File::create(path) else {
        return planted;
    };
    let root: &Group = &file;
    let Ok(m) = root.create_group(if rng.gen_bool(0.97) {
        "matrix"
    } else {
        "matrices"
    }) else {
        return planted;
    };
    let genes = rng.gen_range(0..6);
    let peaks = rng.gen_range(0..6);
    let other = usize::from(rng.gen_bool(0.1));
    let n_features = genes + peaks + other;
    let n_barcodes = if rng.gen_bool(0.05) {
        0
    } else {
        rng.gen_range(1..10)
    };
    let weird = rng.gen_bool(0.3);
    let (mut indptr, mut indices, mut data) = random_csr(rng, n_barcodes, n_features, weird);
    corrupt_ints(rng, &mut indptr);
    corrupt_ints(rng, &mut indices);
    if rng.gen_bool(0.05) {
        data.push(1.0);
    }
    let ty = pick(
        rng,
        &[
            Num::I32,
            Num::U32,
            Num::F32,
            Num::I64,
            Num::F64,
            Num::U16,
            Num::I8,
        ],
    );
    write_nums(rng, &m, "data", &data, None, Some(ty));
    let ind: Vec<f64> = indices.iter().map(|&v| v as f64).collect();
    let idx_ty = pick(rng, &[Num::I64, Num::I32, Num::U64, Num::U32, Num::F64]);
    write_nums(rng, &m, "indices", &ind, None, Some(idx_ty));
    let ptr: Vec<f64> = indptr.iter().map(|&v| v as f64).collect();
    write_nums(rng, &m, "indptr", &ptr, None, Some(idx_ty));
    let mut shape = vec![n_features as f64, n_barcodes as f64];
    if rng.gen_bool(0.15) {
        match rng.gen_range(0..4) {
            0 => shape[rng.gen_range(0..2)] = pick(rng, &[-1.0, 9.3e18, 1e12, 100_001.0, 0.0]),
            1 => shape.push(1.0),
            2 => {
                shape.pop();
            }
            _ => shape[0] += 1.0,
        }
    }
    let ty = pick(rng, &[Num::I64, Num::I32, Num::U64, Num::F64, Num::I64]);
    write_nums(rng, &m, "shape", &shape, None, Some(ty));
    let barcodes = names("AAACGT-", n_barcodes + usize::from(rng.gen_bool(0.05)), rng);
    write_strings(rng, &m, "barcodes", &barcodes);
    if let Ok(f) = m.create_group("features") {
        let mut ids = Vec::new();
        let mut fnames = Vec::new();
        let mut types = Vec::new();
        for g in 0..genes {
            ids.push(format!("ENSG{g:05}"));
            fnames.push(format!("GENE{g}"));
            types.push("Gene Expression".to_string());
        }
        for p in 0..peaks {
            let start = 100 + 1000 * p;
            let id = if weird && rng.gen_bool(0.2) {
                pick(
                    rng,
                    &[
                        "chr1:100-50",
                        "chr1:5",
                        "chr1:1-18446744073709551616",
                        ":1-2",
                        "",
                    ],
                )
                .to_string()
            } else {
                format!("chr{}:{start}-{}", p % 2 + 1, start + 500)
            };
            fnames.push(id.clone());
            ids.push(id);
            types.push("Peaks".to_string());
        }
        for _ in 0..other {
            ids.push("CD3".into());
            fnames.push("CD3".into());
            types.push("Antibody Capture".into());
        }
        if rng.gen_bool(0.05) && !types.is_empty() {
            types.pop();
        }
        write_strings(rng, &f, "id", &ids);
        write_strings(rng, &f, "name", &fnames);
        write_strings(rng, &f, "feature_type", &types);
        let genome: Vec<String> = ids.iter().map(|_| "GRCh38".to_string()).collect();
        write_strings(rng, &f, "genome", &genome);
    }
    for _ in 0..rng.gen_range(0..3) {
        if rng.gen_bool(0.35) {
            plant_adversarial(rng, &file, &mut planted);
        }
    }
    planted
}

/// The valid seed files of the h5ad target, as bytes: written by
/// `crossomics_data::h5ad::write` (CSR and dense X, obs columns that become categoricals,
/// an embedding) plus generated files.
pub fn h5ad_seeds(rng: &mut CaseRng, dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (k, (rows, cols, dense)) in [
        (3usize, 4usize, false),
        (6, 5, true),
        (12, 9, false),
        (1, 1, true),
        (20, 15, false),
    ]
    .into_iter()
    .enumerate()
    {
        let path = dir.join(format!("seed{k}.h5ad"));
        let mut coo = CooMatrix::new(rows, cols);
        for r in 0..rows {
            for c in 0..cols {
                if rng.gen_bool(0.35) {
                    coo.push(r, c, rng.gen_range(1..12) as f32);
                }
            }
        }
        let csr = CsrMatrix::from(&coo);
        let barcodes: Vec<String> = (0..rows).map(|i| format!("AAAC-{i}")).collect();
        let mut cells = CellTable::new(barcodes);
        let types: Vec<String> = (0..rows)
            .map(|i| ["T", "B", "NK"][i % 3].to_string())
            .collect();
        if let Ok(c) = cells.clone().with_column("cell_type", types) {
            cells = c;
        }
        if k % 2 == 0 {
            let batch: Vec<String> = (0..rows).map(|i| format!("b{}", i % 2)).collect();
            if let Ok(c) = cells.clone().with_column("batch", batch) {
                cells = c;
            }
        }
        let var_names: Vec<String> = (0..cols).map(|j| format!("GENE{j}")).collect();
        let emb = Array2::from_shape_fn((rows, 2), |(i, j)| (i + j) as f32 * 0.5);
        let dense_x = Array2::from_shape_fn((rows, cols), |(i, j)| {
            csr.get_entry(i, j).map(|e| e.into_value()).unwrap_or(0.0)
        });
        let x = if dense {
            Matrix::Dense(dense_x.view())
        } else {
            Matrix::Sparse(&csr)
        };
        let obsm: Vec<(&str, ndarray::ArrayView2<'_, f32>)> = if k % 2 == 1 {
            vec![("X_umap", emb.view())]
        } else {
            vec![]
        };
        if h5ad::write(&path, Some(x), &cells, &var_names, &obsm).is_ok()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    // generated files widen the corpus (CSC, old categoricals, nullable columns, ...)
    for k in 0..6 {
        let path = dir.join(format!("gen{k}.h5ad"));
        let planted = generate_h5ad(rng, &path);
        if planted.items.is_empty()
            && let Ok(bytes) = std::fs::read(&path)
        {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// The valid seed files of the tenx-h5 target (genes only, peaks only, both; fixed and
/// variable-length strings, integer and float counts).
pub fn tenx_h5_seeds(rng: &mut CaseRng, dir: &Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for k in 0..8 {
        let path = dir.join(format!("seed{k}.h5"));
        write_tenx_seed(rng, &path, k);
        if let Ok(bytes) = std::fs::read(&path) {
            out.push(bytes);
        }
        let _ = std::fs::remove_file(&path);
    }
    out
}

/// A valid Cell Ranger feature-barcode matrix, laid out as in
/// `crates/runner/tests/portal.rs`'s `write_tenx_h5`.
fn write_tenx_seed(rng: &mut CaseRng, path: &Path, k: usize) {
    let genes = if k % 3 == 2 { 0 } else { 2 + k };
    let peaks = if k % 3 == 1 { 0 } else { 1 + k };
    let n_features = genes + peaks;
    let n_barcodes = 2 + 2 * k;
    let (indptr, indices, data) = random_csr(rng, n_barcodes, n_features, false);
    let Ok(file) = hdf5::File::create(path) else {
        return;
    };
    let Ok(m) = file.create_group("matrix") else {
        return;
    };
    let data_i32: Vec<i32> = data.iter().map(|&v| v as i32).collect();
    let _ = if k.is_multiple_of(2) {
        m.new_dataset_builder()
            .with_data(&data_i32[..])
            .create("data")
    } else {
        let f: Vec<f32> = data.iter().map(|&v| v as f32).collect();
        m.new_dataset_builder()
            .chunk(4.min(f.len().max(1)))
            .deflate(4)
            .with_data(&f[..])
            .create("data")
    };
    let _ = m
        .new_dataset_builder()
        .with_data(&indices[..])
        .create("indices");
    let _ = m
        .new_dataset_builder()
        .with_data(&indptr[..])
        .create("indptr");
    let _ = m
        .new_dataset_builder()
        .with_data(&[n_features as i64, n_barcodes as i64][..])
        .create("shape");
    let barcodes: Vec<String> = (0..n_barcodes)
        .map(|i| format!("AAACGAA{i:04}-1"))
        .collect();
    let fixed = |v: &[String]| -> Vec<FixedAscii<64>> {
        v.iter()
            .map(|s| FixedAscii::from_ascii(s).unwrap_or_default())
            .collect()
    };
    let vlen = |v: &[String]| -> Vec<VarLenUnicode> {
        v.iter().map(|s| s.parse().unwrap_or_default()).collect()
    };
    let put = |g: &Group, name: &str, v: &[String]| {
        let _ = if k % 4 == 3 {
            g.new_dataset_builder().with_data(&vlen(v)[..]).create(name)
        } else {
            g.new_dataset_builder()
                .with_data(&fixed(v)[..])
                .create(name)
        };
    };
    put(&m, "barcodes", &barcodes);
    let Ok(f) = m.create_group("features") else {
        return;
    };
    let mut ids = Vec::new();
    let mut fnames = Vec::new();
    let mut types = Vec::new();
    for g in 0..genes {
        ids.push(format!("ENSG{g:05}"));
        fnames.push(format!("GENE{g}"));
        types.push("Gene Expression".to_string());
    }
    for p in 0..peaks {
        let id = format!("chr{}:{}-{}", p % 2 + 1, 100 + 1000 * p, 600 + 1000 * p);
        ids.push(id.clone());
        fnames.push(id);
        types.push("Peaks".to_string());
    }
    put(&f, "id", &ids);
    put(&f, "name", &fnames);
    put(&f, "feature_type", &types);
    let genome: Vec<String> = ids.iter().map(|_| "GRCh38".to_string()).collect();
    put(&f, "genome", &genome);
}
