//! The bundled sample dataset, compiled into the crate (as scanpy ships its samples):
//! 500 human bone-marrow cells, 10x Multiome, from the NeurIPS 2021 competition
//! (MIT; see `data/bmmc_multiome_starter/PROVENANCE.md`).

use std::io::Read;
use std::path::PathBuf;

use crate::dataset::PairedDataset;
use crate::error::{DataError, Result};
use crate::plain::{self, Files};

/// Names accepted by [`load`].
pub const NAMES: &[&str] = &["bmmc_multiome_starter"];

macro_rules! bundled {
    ($file:literal) => {
        (
            $file,
            include_bytes!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/data/bmmc_multiome_starter/",
                $file
            ))
            .as_slice(),
        )
    };
}

const BMMC: &[(&str, &[u8])] = &[
    bundled!("rna_counts.mtx.gz"),
    bundled!("atac_counts.mtx.gz"),
    bundled!("genes.tsv"),
    bundled!("peaks.tsv"),
    bundled!("cells.tsv"),
];

struct Bundled(&'static [(&'static str, &'static [u8])]);

impl Files for Bundled {
    fn open(&self, name: &str) -> Result<(PathBuf, Box<dyn Read + '_>)> {
        let gz = format!("{name}.gz");
        self.0
            .iter()
            .find(|(n, _)| *n == name || *n == gz)
            .map(|(n, bytes)| {
                let path = PathBuf::from(format!("<bundled>/bmmc_multiome_starter/{n}"));
                (path, Box::new(*bytes) as Box<dyn Read>)
            })
            .ok_or_else(|| DataError::invalid("bundled sample", format!("has no file {name}")))
    }
}

/// The 500-cell bone-marrow sample (cell_type, batch, is_train columns).
pub fn bmmc_multiome_starter() -> Result<PairedDataset> {
    plain::read_files(
        "bmmc_multiome_starter",
        &Bundled(BMMC),
        &crossomics_limits::Limits::default(),
    )
}

/// A bundled dataset by name.
pub fn load(name: &str) -> Result<PairedDataset> {
    match name {
        "bmmc_multiome_starter" => bmmc_multiome_starter(),
        other => Err(DataError::invalid(
            "sample dataset",
            format!("`{other}` is not bundled; available: {}", NAMES.join(", ")),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_sample_has_the_documented_shape() {
        let d = bmmc_multiome_starter().unwrap();
        assert_eq!(d.n_cells(), 500);
        assert_eq!((d.rna.ncols(), d.atac.ncols()), (600, 600));
        assert_eq!((d.rna.nnz(), d.atac.nnz()), (81291, 42448));
        let (types, names) = d.cells.codes("cell_type").unwrap();
        assert_eq!(names.len(), 21);
        assert_eq!(types.len(), 500);
        let batch = d.cells.column("batch").unwrap();
        assert_eq!(batch.iter().filter(|b| *b == "s1d1").count(), 221);
        // counts are integers
        assert!(d.rna.values().iter().all(|v| v.fract() == 0.0 && *v > 0.0));
    }

    #[test]
    fn unknown_sample_is_a_clear_error() {
        assert!(
            load("pbmc10k")
                .unwrap_err()
                .to_string()
                .contains("bmmc_multiome_starter")
        );
    }
}
