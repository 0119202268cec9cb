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
//!   deflate (gzip) and shuffle, the two that h5py, anndata and Cell Ranger write;
//! - more objects than `max_hdf5_objects`, deeper nesting than [`MAX_DEPTH`];
//! - a dataset of more values than the largest of `max_nonzeros` and
//!   `max_dense_values`, or a chunk / attribute larger than `max_hdf5_block_bytes`.
//!
//! The readers then check each claim against its own limit (cells, features, entries).

use std::collections::HashSet;
use std::path::Path;

use crossomics_limits::{Limit, Limits};
use hdf5::filters::Filter;
use hdf5::plist::dataset_create::Layout;
use hdf5::types::TypeDescriptor;
use hdf5::{Group, LinkType, Location, LocationType};

use crate::error::{DataError, Result};

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

/// Refuses a file with a global heap collection (where HDF5 keeps variable-length strings:
/// obs names, categories, attributes) that the bundled HDF5 library would parse forever:
/// an object with index 0 and size 0 makes its decoding loop
/// (`H5HG__cache_heap_deserialize`) stand still. Found by fuzzing (`docs/fuzzing.md`);
/// no catch_unwind or time limit inside the process could stop it. The walk mirrors the
/// library's: same header layout (8-byte lengths, as h5py, anndata and Cell Ranger write),
/// same steps, and stops where the library would report an error instead.
fn check_global_heaps(path: &Path, file: &std::fs::File) -> Result<()> {
    use std::io::Read;
    use std::os::unix::fs::FileExt;
    let io = |e: std::io::Error| DataError::io(path, e);
    let mut file = file;
    let len = file.metadata().map_err(io)?.len();
    let mut block = vec![0u8; 1 << 20];
    // the last 3 bytes of the previous block, so that a signature across blocks is seen
    let mut tail: Vec<u8> = Vec::new();
    let mut at = 0u64;
    loop {
        let n = file.read(&mut block).map_err(io)?;
        if n == 0 {
            return Ok(());
        }
        let mut window = std::mem::take(&mut tail);
        let base = at - window.len() as u64;
        window.extend_from_slice(&block[..n]);
        for i in memchr_all(&window, b"GCOL") {
            let offset = base + i as u64;
            if let Some(reason) = collection_loops(file, offset, len).map_err(io)? {
                return Err(DataError::invalid(
                    format!("{}: byte {offset}", path.display()),
                    reason,
                ));
            }
        }
        at += n as u64;
        tail = window[window.len().saturating_sub(3)..].to_vec();
    }

    /// Start positions of `needle` in `hay`.
    fn memchr_all<'a>(hay: &'a [u8], needle: &'a [u8]) -> impl Iterator<Item = usize> + 'a {
        hay.windows(needle.len())
            .enumerate()
            .filter(move |(_, w)| *w == needle)
            .map(|(i, _)| i)
    }

    /// Why the collection at `offset` would never finish decoding; `None` when it would
    /// (or is no collection HDF5 would decode: it then fails with its own error).
    fn collection_loops(
        file: &std::fs::File,
        offset: u64,
        len: u64,
    ) -> std::io::Result<Option<String>> {
        const HEADER: u64 = 16; // "GCOL", version, 3 reserved bytes, 8-byte size
        const OBJECT_HEADER: u64 = 16; // index u16, refs u16, 4 reserved, 8-byte size
        let mut h = [0u8; HEADER as usize];
        if offset + HEADER > len {
            return Ok(None);
        }
        file.read_exact_at(&mut h, offset)?;
        let size = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        if h[4] != 1 || size < 4096 || offset.checked_add(size).is_none_or(|e| e > len) {
            return Ok(None);
        }
        let end = offset + size;
        let mut p = offset + HEADER;
        // each step moves forward: a bounded number of reads, whatever the sizes
        for _ in 0..1_000_000 {
            if p >= end || p + OBJECT_HEADER > end {
                return Ok(None);
            }
            let mut o = [0u8; OBJECT_HEADER as usize];
            file.read_exact_at(&mut o, p)?;
            let index = u16::from_le_bytes([o[0], o[1]]);
            let object = u64::from_le_bytes(o[8..16].try_into().unwrap_or_default());
            let need = if index > 0 {
                OBJECT_HEADER.wrapping_add(object.wrapping_add(7) & !7)
            } else {
                object
            };
            if need == 0 {
                return Ok(Some(
                    "a corrupt HDF5 global heap (a free-space object of size 0) on which the HDF5 library would loop forever: refused".into(),
                ));
            }
            match p.checked_add(need) {
                Some(next) if next <= end => p = next,
                _ => return Ok(None),
            }
        }
        Ok(None)
    }
}

/// An HDF5 error message as the user sees it: one line, no longer than 200 characters.
pub(crate) fn short(message: &str) -> String {
    crossomics_limits::excerpt_str(message.lines().next().unwrap_or(""), 200)
}

struct Walk<'a> {
    path: &'a Path,
    limits: &'a Limits,
    seen: HashSet<String>,
    objects: u64,
    /// the file itself, for reads the HDF5 library does not make
    raw: &'a std::fs::File,
}

impl Walk<'_> {
    fn refuse(&self, at: &str, reason: impl Into<String>) -> DataError {
        DataError::invalid(format!("{}:{at}", self.path.display()), reason)
    }

    fn hdf5_err(&self, at: &str, e: hdf5::Error) -> DataError {
        self.refuse(
            at,
            format!("cannot be inspected: {}", short(&e.to_string())),
        )
    }

    fn count(&mut self, n: u64, at: &str) -> Result<()> {
        self.objects = self.objects.saturating_add(n);
        self.limits
            .check(
                Limit::Hdf5Objects,
                u128::from(self.objects),
                &format!("{}:{at}", self.path.display()),
                "the objects and attributes walked so far",
            )
            .map_err(DataError::from)
    }

    fn group(&mut self, g: &Group, at: &str, depth: usize) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(self.refuse(at, format!("groups nested deeper than {MAX_DEPTH} levels")));
        }
        // one past the limit is enough to know it is over
        let room = self.limits.max_hdf5_objects.saturating_sub(self.objects) as usize + 1;
        let links = g
            .iter_visit_default(Vec::new(), |_, name, info, acc: &mut Vec<_>| {
                acc.push((name.to_string(), info.link_type));
                acc.len() <= room
            })
            .map_err(|e| self.hdf5_err(at_or_root(at), e))?;
        self.count(links.len() as u64, at_or_root(at))?;
        for (name, link_type) in links {
            let child = format!("{at}/{name}");
            let shown = crossomics_limits::excerpt_str(&child, 120);
            match link_type {
                LinkType::Hard => {}
                LinkType::Soft => {
                    return Err(self.refuse(
                        &shown,
                        "is a soft link; only plain (hard-linked) groups and datasets are read",
                    ));
                }
                LinkType::External => {
                    return Err(self.refuse(
                        &shown,
                        "is an external link to another file (or a user-defined link): refused, a file may only read itself",
                    ));
                }
            }
            let info = g
                .loc_info_by_name(&name)
                .map_err(|e| self.hdf5_err(&shown, e))?;
            if !self.seen.insert(format!("{:?}", info.token)) {
                continue;
            }
            self.count(info.num_attrs as u64, &shown)?;
            match info.loc_type {
                LocationType::Group => {
                    let sub = g.group(&name).map_err(|e| self.hdf5_err(&shown, e))?;
                    self.attributes(&sub, &shown)?;
                    self.group(&sub, &child, depth + 1)?;
                }
                LocationType::Dataset => {
                    let ds = g.dataset(&name).map_err(|e| self.hdf5_err(&shown, e))?;
                    self.attributes(&ds, &shown)?;
                    self.dataset(&ds, &shown)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn dataset(&mut self, ds: &hdf5::Dataset, at: &str) -> Result<()> {
        let dcpl = ds.dcpl().map_err(|e| self.hdf5_err(at, e))?;
        let external = dcpl.get_external().map_err(|e| self.hdf5_err(at, e))?;
        if !external.is_empty() {
            return Err(self.refuse(
                at,
                "stores its data in another file (HDF5 external storage): refused, a file may only read itself",
            ));
        }
        let layout = dcpl.get_layout().map_err(|e| self.hdf5_err(at, e))?;
        if layout == Layout::Virtual {
            return Err(self.refuse(
                at,
                "is a virtual dataset (its data are mapped from other files): refused",
            ));
        }
        let filters = dcpl.get_filters().map_err(|e| self.hdf5_err(at, e))?;
        for filter in &filters {
            // gzip and shuffle are what h5py, anndata and Cell Ranger write; HDF5's
            // fletcher32 crashed (SIGSEGV) on a fuzzed chunk, and n-bit / scale-offset
            // have a history of memory bugs, so they are not read from untrusted files
            let built_in = match filter {
                Filter::Deflate(_) => hdf5::filters::deflate_available(),
                Filter::Shuffle => true,
                _ => false,
            };
            if !built_in {
                return Err(self.refuse(
                    at,
                    format!(
                        "is compressed with {}, which this reader does not read (gzip and shuffle are); write the file with gzip compression",
                        filter_name(filter)
                    ),
                ));
            }
        }
        let dtype = ds.dtype().map_err(|e| self.hdf5_err(at, e))?;
        let item = dtype.size() as u128;
        let space = ds.space().map_err(|e| self.hdf5_err(at, e))?;
        let values = product(&space.shape());
        let (limit, _) = [Limit::Nonzeros, Limit::DenseValues]
            .map(|l| (l, self.limits.get(l)))
            .into_iter()
            .max_by_key(|&(_, v)| v)
            .unwrap_or((Limit::DenseValues, 0));
        let source = format!("{}:{at}", self.path.display());
        self.limits
            .check(limit, values, &source, "the values its dataspace claims")?;
        if let Some(chunk) = dcpl.chunk() {
            self.limits.check(
                Limit::Hdf5BlockBytes,
                product(&chunk).saturating_mul(item.max(1)),
                &source,
                "one chunk, uncompressed",
            )?;
        }
        // variable-length data: HDF5 allocates what each stored length claims before it
        // reads the string (up to 4 GiB each; found by fuzzing), so the lengths are read
        // raw and checked first
        let base = match dtype.to_descriptor() {
            Ok(TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii) => Some(1u128),
            Ok(TypeDescriptor::VarLenArray(b)) => Some(b.size() as u128),
            _ => None,
        };
        if let Some(base) = base {
            self.variable_lengths(ds, &dcpl, values, base, &source)?;
        }
        Ok(())
    }

    /// Checks the stored lengths of a variable-length dataset (each element on disk: a
    /// 4-byte length, then the global heap id) against the limits: one element at most
    /// `max_hdf5_block_bytes`, all together at most `max_dense_values` bytes. Contiguous
    /// data are read where they lie; chunks are read raw and inflated (gzip). A layout
    /// this cannot read raw (compact, shuffled or otherwise filtered chunks) is left to
    /// the library.
    fn variable_lengths(
        &self,
        ds: &hdf5::Dataset,
        dcpl: &hdf5::plist::DatasetCreate,
        values: u128,
        base: u128,
        source: &str,
    ) -> Result<()> {
        use std::os::unix::fs::FileExt;
        if values == 0 {
            return Ok(());
        }
        let io = |e: std::io::Error| DataError::io(self.path, e);
        let file = self.raw;
        let mut total = 0u128;
        let mut check = |raw: &[u8], element: usize| -> Result<()> {
            for d in raw.chunks_exact(element) {
                let len = u128::from(u32::from_le_bytes([d[0], d[1], d[2], d[3]])) * base;
                self.limits.check(
                    Limit::Hdf5BlockBytes,
                    len,
                    source,
                    "one variable-length value's stored length",
                )?;
                total += len;
            }
            self.limits
                .check(
                    Limit::DenseValues,
                    total,
                    source,
                    "the bytes its variable-length values claim together",
                )
                .map_err(DataError::from)
        };
        match dcpl.get_layout().map_err(|e| self.hdf5_err(source, e))? {
            Layout::Contiguous => {
                let (Some(offset), stored) = (ds.offset(), u128::from(ds.storage_size())) else {
                    return Ok(()); // nothing written: fill values
                };
                let element = (stored / values) as usize;
                if !(element == 12 || element == 16) || stored % values != 0 {
                    return Ok(());
                }
                let mut at = 0u128;
                let mut buf = vec![0u8; element * 4096];
                while at < stored {
                    let n = ((stored - at) as usize).min(buf.len());
                    file.read_exact_at(&mut buf[..n], offset + at as u64)
                        .map_err(io)?;
                    check(&buf[..n], element)?;
                    at += n as u128;
                }
            }
            Layout::Chunked => {
                let filters = dcpl.get_filters().map_err(|e| self.hdf5_err(source, e))?;
                if filters.iter().any(|f| !matches!(f, Filter::Deflate(_))) {
                    return Ok(());
                }
                let per_chunk = dcpl.chunk().map(|c| product(&c)).unwrap_or(0);
                let chunks = ds.num_chunks().unwrap_or(0);
                if per_chunk == 0 || chunks > 1_000_000 {
                    return Ok(());
                }
                for i in 0..chunks {
                    let Some(info) = ds.chunk_info(i) else {
                        return Ok(());
                    };
                    // the uncompressed size is checked above; the stored one is bounded by it
                    if info.size > self.limits.max_hdf5_block_bytes.saturating_mul(2) {
                        return Ok(());
                    }
                    let mut raw = vec![0u8; info.size as usize];
                    file.read_exact_at(&mut raw, info.addr).map_err(io)?;
                    let deflated = !filters.is_empty() && info.filter_mask & 1 == 0;
                    let data = if deflated {
                        let mut out = Vec::new();
                        let cap = self.limits.max_hdf5_block_bytes;
                        let inflated = std::io::Read::read_to_end(
                            &mut std::io::Read::take(
                                flate2::read::ZlibDecoder::new(raw.as_slice()),
                                cap,
                            ),
                            &mut out,
                        );
                        if inflated.is_err() {
                            return Ok(()); // the library reports a broken chunk itself
                        }
                        out
                    } else {
                        raw
                    };
                    let element = data.len() as u128 / per_chunk;
                    if !(element == 12 || element == 16) {
                        return Ok(());
                    }
                    check(&data[..(per_chunk * element) as usize], element as usize)?;
                }
            }
            _ => {}
        }
        Ok(())
    }

    fn attributes(&mut self, loc: &Location, at: &str) -> Result<()> {
        let names = loc.attr_names().map_err(|e| self.hdf5_err(at, e))?;
        for name in names {
            let shown = format!(
                "{at} (attribute `{}`)",
                crossomics_limits::excerpt_str(&name, 60)
            );
            let attr = loc.attr(&name).map_err(|e| self.hdf5_err(&shown, e))?;
            let item = attr.dtype().map_err(|e| self.hdf5_err(&shown, e))?.size() as u128;
            let space = attr.space().map_err(|e| self.hdf5_err(&shown, e))?;
            self.limits.check(
                Limit::Hdf5BlockBytes,
                product(&space.shape()).saturating_mul(item.max(1)),
                &format!("{}:{shown}", self.path.display()),
                "the attribute's size",
            )?;
        }
        Ok(())
    }
}

fn at_or_root(at: &str) -> &str {
    if at.is_empty() { "/" } else { at }
}

fn product(dims: &[usize]) -> u128 {
    dims.iter()
        .fold(1u128, |acc, &d| acc.saturating_mul(d as u128))
}

/// A filter by the name its users know it by.
fn filter_name(filter: &Filter) -> String {
    match filter {
        Filter::SZip(..) => "SZIP (filter 4)".into(),
        Filter::Fletcher32 => "the fletcher32 checksum (filter 3)".into(),
        Filter::NBit => "n-bit packing (filter 5)".into(),
        Filter::ScaleOffset(_) => "scale-offset packing (filter 6)".into(),
        Filter::User(id, _) => match id {
            32000 => "LZF (filter 32000, h5py's compression=\"lzf\")".into(),
            32001 => "Blosc (filter 32001)".into(),
            32004 => "LZ4 (filter 32004)".into(),
            32008 => "bitshuffle (filter 32008)".into(),
            32015 => "Zstandard (filter 32015)".into(),
            307 => "bzip2 (filter 307)".into(),
            other => format!("the filter with id {other}"),
        },
        other => format!("{other:?}"),
    }
}
