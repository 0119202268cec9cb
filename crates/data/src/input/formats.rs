//! The built-in formats of the input registry.

use std::io::Read;
use std::path::Path;

use crossomics_limits::Limits;

use super::{Input, InputFormat, Request, Single};
use crate::error::{DataError, Result};
use crate::h5ad::{self, ReadOptions};
use crate::pair::PairingConfig;
use crate::tenx::{self, GENE_EXPRESSION, PEAKS, TenxParts};
use crate::transfer::Modality;

/// HDF5's signature, at offset 0 or after a user block of 512, 1024, 2048, ... bytes.
const HDF5_MAGIC: &[u8] = b"\x89HDF\r\n\x1a\n";

/// Whether `path` is a file with the HDF5 signature where HDF5 looks for it.
fn is_hdf5(path: &Path) -> bool {
    let Ok(mut f) = std::fs::File::open(path) else {
        return false;
    };
    if !path.is_file() {
        return false;
    }
    let mut head = Vec::new();
    // offsets 0, 512, 1024, 2048: enough for the user blocks of MuData (512) and others
    if (&mut f).take(2048 + 8).read_to_end(&mut head).is_err() {
        return false;
    }
    [0usize, 512, 1024, 2048]
        .iter()
        .any(|&o| head.get(o..o + 8) == Some(HDF5_MAGIC))
}

fn has_extension(path: &Path, ext: &str) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// One modality of a 10x feature-barcode matrix, which may hold one or both; an error
/// naming the file when it lacks `modality`.
pub fn tenx_single(parts: TenxParts, modality: Modality) -> Result<Single> {
    let TenxParts {
        source,
        rna,
        gene_ids,
        atac,
        feature_types,
        ..
    } = parts;
    let missing = |wanted: &str| {
        DataError::invalid(
            source.display().to_string(),
            format!(
                "a 10x matrix with {} features, but {modality} data needs `{wanted}` features",
                feature_types.join(", ")
            ),
        )
    };
    Ok(match modality {
        Modality::Rna => Single::Rna {
            data: rna.ok_or_else(|| missing(GENE_EXPRESSION))?,
            ids: gene_ids,
        },
        Modality::Atac => Single::Atac(atac.ok_or_else(|| missing(PEAKS))?),
    })
}

/// A 10x matrix: paired when both feature types are there (or no modality is asked
/// for), else the modality asked for.
fn tenx_input(parts: TenxParts, request: &Request) -> Result<Input> {
    match request.modality {
        Some(m) if parts.rna.is_none() || parts.atac.is_none() => {
            Ok(Input::Single(tenx_single(parts, m)?))
        }
        _ => Ok(Input::Paired(parts.into_paired()?)),
    }
}

/// A 10x Cell Ranger (ARC) matrix folder: `matrix.mtx[.gz]`, `features.tsv[.gz]`,
/// `barcodes.tsv[.gz]`.
#[derive(Debug, Clone, Copy)]
pub struct TenxMtxDir;

impl InputFormat for TenxMtxDir {
    fn name(&self) -> &'static str {
        "10x matrix folder"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        path.is_dir()
            && ["matrix.mtx", "matrix.mtx.gz"]
                .iter()
                .any(|m| path.join(m).is_file())
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        tenx_input(tenx::read_mtx_dir_parts(path, &request.limits)?, request)
    }
}

/// A 10x Cell Ranger (ARC) `filtered_feature_bc_matrix.h5`.
#[derive(Debug, Clone, Copy)]
pub struct TenxH5;

impl InputFormat for TenxH5 {
    fn name(&self) -> &'static str {
        "10x h5"
    }

    fn detect(&self, path: &Path, limits: &Limits) -> bool {
        is_hdf5(path) && tenx::is_tenx_h5(path, limits)
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        tenx_input(tenx::read_h5_parts(path, &request.limits)?, request)
    }
}

/// A folder in the plain layout (`rna_counts.mtx`, `atac_counts.mtx`, `genes.tsv`,
/// `peaks.tsv`, `cells.tsv`, each maybe gzipped).
#[derive(Debug, Clone, Copy)]
pub struct PlainDir;

impl InputFormat for PlainDir {
    fn name(&self) -> &'static str {
        "plain-layout folder"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        path.is_dir()
            && ["rna_counts.mtx", "rna_counts.mtx.gz"]
                .iter()
                .any(|m| path.join(m).is_file())
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        Ok(Input::Paired(crate::plain::read_dir(
            path,
            &request.limits,
        )?))
    }
}

/// A MuData `.h5mu` with modalities `rna` and `atac` (told apart from an `.h5ad` by its
/// name).
#[derive(Debug, Clone, Copy)]
pub struct H5mu;

impl InputFormat for H5mu {
    fn name(&self) -> &'static str {
        "h5mu"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        has_extension(path, "h5mu") && is_hdf5(path)
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        let name = path.file_stem().map_or_else(
            || path.display().to_string(),
            |s| s.to_string_lossy().into(),
        );
        let opts = ReadOptions {
            layer: request.layer.clone(),
            require_counts: true,
            limits: request.limits,
        };
        let (d, _) = h5ad::read_h5mu(&name, path, "rna", "atac", &opts, &PairingConfig::default())?;
        Ok(Input::Paired(d))
    }
}

/// An AnnData `.h5ad` of one modality (raw counts in `X` or in the requested layer):
/// RNA with the Ensembl ids of `var["gene_ids"]` where the file has them, or peaks named
/// `chr:start-end`. Which modality it holds is the request's.
#[derive(Debug, Clone, Copy)]
pub struct H5ad;

impl InputFormat for H5ad {
    fn name(&self) -> &'static str {
        "h5ad"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        is_hdf5(path)
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        let Some(modality) = request.modality else {
            return Err(DataError::invalid(
                path.display().to_string(),
                "an .h5ad holds one modality: paired data needs an .h5mu, a 10x file or folder, a plain-layout folder or a config with both files".to_string(),
            ));
        };
        let opts = ReadOptions {
            layer: request.layer.clone(),
            require_counts: true,
            limits: request.limits,
        };
        let m = h5ad::read_with(path, &opts)?;
        Ok(Input::Single(match modality {
            Modality::Rna => Single::Rna {
                ids: h5ad::read_var_column(path, "gene_ids", &request.limits)?,
                data: m,
            },
            Modality::Atac => Single::Atac(h5ad::parse_peaks(m)?),
        }))
    }
}

/// A TOML file with a `[dataset]` table (any format of the config schema; paths relative
/// to the file).
#[derive(Debug, Clone, Copy)]
pub struct TomlDataset;

impl InputFormat for TomlDataset {
    fn name(&self) -> &'static str {
        "TOML [dataset]"
    }

    fn detect(&self, path: &Path, _: &Limits) -> bool {
        path.is_file() && has_extension(path, "toml")
    }

    fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        let name = path.display().to_string();
        // a dataset description is small: a larger file is not one
        let len = std::fs::metadata(path)
            .map_err(|e| DataError::io(path, e))?
            .len();
        if len > 1 << 20 {
            return Err(DataError::invalid(
                name,
                format!("{len} bytes: too large for a dataset description"),
            ));
        }
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let table: toml::Table = toml::from_str(&text)
            .map_err(|e| DataError::invalid(name.clone(), format!("not TOML: {e}")))?;
        let dataset = table
            .get("dataset")
            .cloned()
            .ok_or_else(|| DataError::invalid(name.clone(), "no [dataset] table".to_string()))?;
        let cfg: crate::config::DatasetConfig = dataset
            .try_into()
            .map_err(|e| DataError::invalid(name.clone(), format!("[dataset]: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Ok(Input::Paired(cfg.load(base, &request.limits)?))
    }
}
