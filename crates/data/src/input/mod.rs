//! The input registry: every file format crossomics reads without being told the format,
//! detected from the path (a folder's files, a file's name and first bytes) and read as
//! paired data or as one modality. `crossomics run` (`format = "auto"`), `embed`,
//! `translate` and the portal's jobs read through [`Registry::builtin`].
//!
//! A new format is one type implementing [`InputFormat`] (its own file) and one line in
//! [`Registry::builtin`]; a program may also add one at run time with [`Registry::with`].
//! Formats are tried in registry order and the first that recognises the path reads it.

mod formats;

use std::path::Path;

use crossomics_limits::Limits;

use crate::error::{DataError, Result};
use crate::pair::SingleModality;
use crate::transfer::Modality;
use crate::{PairedDataset, Peak};

pub use formats::{H5ad, H5mu, PlainDir, TenxH5, TenxMtxDir, TomlDataset, tenx_single};

/// What one input holds: both modalities of the same cells, or one.
#[derive(Debug, Clone)]
pub enum Input {
    Paired(PairedDataset),
    Single(Single),
}

/// One modality of some cells, as read from a file.
#[derive(Debug, Clone)]
pub enum Single {
    Rna {
        data: SingleModality<String>,
        /// alternative gene names per column (Ensembl ids), when the file has them
        ids: Option<Vec<String>>,
    },
    Atac(SingleModality<Peak>),
}

impl Single {
    pub fn modality(&self) -> Modality {
        match self {
            Self::Rna { .. } => Modality::Rna,
            Self::Atac(_) => Modality::Atac,
        }
    }

    /// One modality of a paired dataset read from `source`.
    pub fn from_paired(d: &PairedDataset, modality: Modality, source: &Path) -> Self {
        match modality {
            Modality::Rna => Self::Rna {
                data: SingleModality {
                    source: source.to_path_buf(),
                    matrix: d.rna.clone(),
                    cells: d.cells.clone(),
                    features: d.genes.clone(),
                },
                ids: None,
            },
            Modality::Atac => Self::Atac(SingleModality {
                source: source.to_path_buf(),
                matrix: d.atac.clone(),
                cells: d.cells.clone(),
                features: d.peaks.clone(),
            }),
        }
    }
}

impl Input {
    /// The paired data; an error naming `path` when it holds one modality.
    pub fn into_paired(self, path: &Path) -> Result<PairedDataset> {
        match self {
            Self::Paired(d) => Ok(d),
            Self::Single(s) => Err(DataError::invalid(
                path.display().to_string(),
                format!(
                    "holds {} data only, but both modalities of the same cells are needed",
                    s.modality()
                ),
            )),
        }
    }

    /// The `modality` of the input; an error naming `path` when it lacks it.
    pub fn into_single(self, modality: Modality, path: &Path) -> Result<Single> {
        match self {
            Self::Paired(d) => Ok(Single::from_paired(&d, modality, path)),
            Self::Single(s) if s.modality() == modality => Ok(s),
            Self::Single(s) => Err(DataError::invalid(
                path.display().to_string(),
                format!("holds {} data, but {modality} data is needed", s.modality()),
            )),
        }
    }
}

/// What a read is asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub limits: Limits,
    /// The modality wanted from a single-modality file whose features do not tell (an
    /// `.h5ad` of one modality): `None` reads paired formats only.
    pub modality: Option<Modality>,
    /// Read this AnnData layer instead of `X` (raw counts are needed).
    pub layer: Option<String>,
}

/// A file format of the registry.
pub trait InputFormat: Send + Sync + std::fmt::Debug {
    /// A short name for messages (`10x h5`, `h5ad`, ...).
    fn name(&self) -> &'static str;
    /// Whether `path` is of this format: cheap (names, a folder's files, a file's first
    /// bytes), never a full read, never a panic.
    fn detect(&self, path: &Path, limits: &Limits) -> bool;
    /// Reads `path`, which [`InputFormat::detect`] recognised.
    fn read(&self, path: &Path, request: &Request) -> Result<Input>;
}

/// The formats, in detection order.
#[derive(Debug)]
pub struct Registry {
    formats: Vec<Box<dyn InputFormat>>,
}

impl Registry {
    /// Every built-in format.
    pub fn builtin() -> Self {
        Self::uploads().with_last(TomlDataset)
    }

    /// The formats whose data is all inside the file or folder itself, for uploads from
    /// strangers: every built-in one but the TOML dataset description, whose paths point
    /// anywhere.
    pub fn uploads() -> Self {
        Self {
            formats: vec![
                Box::new(TenxMtxDir),
                Box::new(PlainDir),
                Box::new(TenxH5),
                Box::new(H5mu),
                Box::new(H5ad),
            ],
        }
    }

    fn with_last(mut self, format: impl InputFormat + 'static) -> Self {
        self.formats.push(Box::new(format));
        self
    }

    /// The registry with `format` tried before the others.
    pub fn with(mut self, format: impl InputFormat + 'static) -> Self {
        self.formats.insert(0, Box::new(format));
        self
    }

    /// The names of the formats, in order.
    pub fn names(&self) -> Vec<&'static str> {
        self.formats.iter().map(|f| f.name()).collect()
    }

    /// The first format that recognises `path`.
    pub fn detect(&self, path: &Path, limits: &Limits) -> Result<&dyn InputFormat> {
        if !path.exists() {
            return Err(DataError::invalid(
                path.display().to_string(),
                "no such file or folder".to_string(),
            ));
        }
        self.formats
            .iter()
            .find(|f| f.detect(path, limits))
            .map(|f| &**f)
            .ok_or_else(|| {
                DataError::invalid(
                    path.display().to_string(),
                    format!(
                        "not a format crossomics reads (tried: {})",
                        self.names().join(", ")
                    ),
                )
            })
    }

    /// Detects the format of `path` and reads it.
    pub fn read(&self, path: &Path, request: &Request) -> Result<Input> {
        self.detect(path, &request.limits)?.read(path, request)
    }

    /// Paired data from `path`.
    pub fn read_paired(&self, path: &Path, limits: &Limits) -> Result<PairedDataset> {
        let request = Request {
            limits: *limits,
            ..Request::default()
        };
        self.read(path, &request)?.into_paired(path)
    }

    /// The `modality` of `path` (of paired data, or of a file of that modality).
    pub fn read_single(
        &self,
        path: &Path,
        modality: Modality,
        request: &Request,
    ) -> Result<Single> {
        let request = Request {
            modality: Some(modality),
            ..request.clone()
        };
        self.read(path, &request)?.into_single(modality, path)
    }
}
