//! The structure-aware generators of whole files: h5ad-like and 10x `.h5`, each part
//! maybe wrong, hazards planted now and then.

use std::path::Path;

use hdf5::Group;
use rand::Rng;

use super::Planted;
use super::adversarial::plant_adversarial;
use super::frame::write_frame;
use super::values::{corrupt_ints, names, random_csr, tenx_features};
use super::write::{Num, int_array_attr, str_attr, write_nums, write_strings};
use crate::mutate::{CaseRng, pick};

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
        let (mut ids, mut fnames, mut types) = tenx_features(genes, peaks, || {
            (weird && rng.gen_bool(0.2)).then(|| {
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
            })
        });
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
