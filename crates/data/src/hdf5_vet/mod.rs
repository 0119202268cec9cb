//! Checks an HDF5 file (h5ad, h5mu, 10x `.h5`) before anything reads it, so that an
//! untrusted file reaches nothing outside itself and claims nothing over the [`Limits`].
//!
//! HDF5 can make a dataset read bytes from *other* files: external storage (raw data in
//! a named file, `/etc/passwd` or a named pipe as well as anything else), external links
//! (a group or dataset of another HDF5 file), virtual datasets (mappings onto other
//! files), and filters loaded as plugins from the library's search path. A dataspace, a
//! chunk or an attribute can also claim sizes the reader would allocate before reading a
//! byte. So every file is walked once, without following any link and without reading
//! any data, and refused (with the file and the object named) when it holds:
//!
//! - a link that is not a hard link inside the file (soft, external, user-defined);
//! - a dataset with external storage, a virtual layout, or a filter other than
//!   deflate (gzip), shuffle and LZF, those that h5py, anndata and Cell Ranger write
//!   (LZF: h5py's `compression="lzf"`, anndata 0.7's archives); every LZF chunk is
//!   decoded here first, in Rust, and refused when it is corrupt or holds more than
//!   its chunk, so the library's decoder never grows its buffer past a chunk (its first
//!   buffer is the size the filter's parameters claim, up to 4 GiB of address space of
//!   which it writes only what the chunk decodes to);
//! - more objects than `max_hdf5_objects`, deeper nesting than [`MAX_DEPTH`];
//! - a dataset of more values than the largest of `max_nonzeros` and
//!   `max_dense_values`, or a chunk / attribute larger than `max_hdf5_block_bytes`.
//!
//! The readers then check each claim against its own limit (cells, features, entries).

mod filters;
mod global_heap;
mod raw;
mod walk;

use std::collections::HashSet;
use std::path::Path;

use crossomics_limits::Limits;
use hdf5::Group;

use crate::error::{DataError, Result};
pub(crate) use global_heap::GlobalHeaps;
use global_heap::check_global_heaps;
pub(crate) use raw::{extra_disk_bytes, read_raw_1d};
use walk::Walk;

/// Deepest nesting of groups walked.
pub const MAX_DEPTH: usize = 64;

/// Walks `path` and returns `Ok` when it is safe to read under `limits` (see the module
/// documentation for what is refused).
pub fn vet(path: &Path, limits: &Limits) -> Result<()> {
    let file = hdf5::File::open(path).map_err(|e| {
        DataError::invalid(
            path.display().to_string(),
            format!(
                "not a readable HDF5 file (truncated or another format?): {}",
                short(&e.to_string())
            ),
        )
    })?;
    // raw reads (heap collections, variable-length descriptors) share one handle
    let raw = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut walk = Walk {
        raw: &raw,
        path,
        limits,
        seen: HashSet::new(),
        objects: 1,
    };
    let root: &Group = &file;
    walk.attributes(root, "/")?;
    walk.group(root, "", 0)?;
    check_global_heaps(path, &raw)
}

/// An HDF5 error message as the user sees it: one line, no longer than 200 characters.
pub(crate) fn short(message: &str) -> String {
    crossomics_limits::excerpt_str(message.lines().next().unwrap_or(""), 200)
}
