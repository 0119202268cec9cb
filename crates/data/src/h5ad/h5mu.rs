//! MuData `.h5mu` files: their modalities (`/mod/<name>` groups), each read as an AnnData.

use std::path::Path;

use anndata::backend::{Backend, GroupOp};
use anndata_hdf5::{H5, H5Group};
use crossomics_limits::Limits;

use super::ReadOptions;
use super::open::{Loc, guard, open};
use super::read::{parse_peaks, read_modality};
use crate::dataset::PairedDataset;
use crate::error::Result;
use crate::pair::{PairingConfig, PairingReport, SingleModality, join};

/// Reads modality `name` (`/mod/<name>`) of a MuData `.h5mu` file.
pub fn read_mod(path: &Path, name: &str, opts: &ReadOptions) -> Result<SingleModality<String>> {
    guard(path, || {
        let file = open(path, &opts.limits)?;
        let group = mod_group(&file, path, name)?;
        read_modality(&group, &Loc::new(path, &format!("mod/{name}/")), opts)
    })
}

/// The modality names of a MuData `.h5mu` file (`/mod/*`), in file order.
pub fn mods(path: &Path) -> Result<Vec<String>> {
    guard(path, || {
        let file = open(path, &Limits::default())?;
        let loc = Loc::new(path, "");
        mods_group(&file, &loc)?
            .list()
            .map_err(|e| loc.err("mod", format!("cannot list: {e:#}")))
    })
}

/// Pairs two modalities of a MuData `.h5mu` (usually `rna` and `atac`) by barcode.
pub fn read_h5mu(
    name: &str,
    path: &Path,
    rna_mod: &str,
    atac_mod: &str,
    opts: &ReadOptions,
    pairing: &PairingConfig,
) -> Result<(PairedDataset, PairingReport)> {
    let rna = read_mod(path, rna_mod, opts)?;
    let atac = parse_peaks(read_mod(path, atac_mod, opts)?)?;
    join(name, rna, atac, pairing)
}

/// The `/mod` group that holds a MuData file's modalities.
fn mods_group(file: &<H5 as Backend>::Store, loc: &Loc<'_>) -> Result<H5Group> {
    file.open_group("mod")
        .map_err(|_| loc.err("mod", "no `mod` group: not a MuData file"))
}

/// The group of modality `name` (`/mod/<name>`); the error lists the file's modalities.
pub(super) fn mod_group(file: &<H5 as Backend>::Store, path: &Path, name: &str) -> Result<H5Group> {
    let loc = Loc::new(path, "");
    let mods = mods_group(file, &loc)?;
    let elem = format!("mod/{name}");
    loc.require_member(&mods, name, &elem, "modality", "the file")?;
    mods.open_group(name)
        .map_err(|e| loc.err(&elem, format!("not a group: {e:#}")))
}
