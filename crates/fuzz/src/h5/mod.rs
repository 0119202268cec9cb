//! HDF5 inputs (h5ad and 10x `.h5`): seeds written with `crossomics_data::h5ad::write`
//! and with the `hdf5` crate in the Cell Ranger layout, and a structure-aware generator
//! that builds whole files with randomized shapes, dtypes, storage (chunked, compressed,
//! compact, huge claimed dataspaces with nothing written), attributes, string types,
//! soft and external links, external storage and unknown filters.
//!
//! Every `hdf5` call in a generator is allowed to fail (a combination HDF5 itself
//! refuses to write is simply left out): the generator's job is to produce files, and
//! the oracle judges what the readers make of them.
//!
//! Each submodule has one job: typed writers of datasets and attributes (`write`), random
//! contents (`values`), data frames (`frame`), the planted hazards (`adversarial`), the
//! generators of whole files (`generate`) and the valid seeds (`seeds`).

mod adversarial;
mod frame;
mod generate;
mod seeds;
mod values;
mod write;

pub use generate::{generate_h5ad, generate_tenx_h5};
pub use seeds::{h5ad_seeds, tenx_h5_seeds};

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
