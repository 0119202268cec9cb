//! The hazards a reader must refuse or bound, planted into a generated file: soft and
//! external links, external storage, unknown filters, huge dataspaces, link cycles, deep
//! nesting, many objects, exotic types.

use hdf5::Group;
use hdf5::types::TypeDescriptor;
use rand::Rng;

use super::Planted;
use crate::mutate::{CaseRng, pick};

/// Things that vetting must refuse or bound, planted with small probability anywhere.
pub(super) fn plant_adversarial(rng: &mut CaseRng, file: &hdf5::File, planted: &mut Planted) {
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
