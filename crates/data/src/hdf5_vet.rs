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

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::FileExt;
use std::path::Path;

use crossomics_limits::{Limit, Limits};
use hdf5::filters::Filter;
use hdf5::plist::dataset_create::Layout;
use hdf5::types::TypeDescriptor;
use hdf5::{Group, LinkType, Location, LocationType};

use crate::error::{DataError, Result};

/// Deepest nesting of groups walked.
pub const MAX_DEPTH: usize = 64;

/// Most chunks of one compressed dataset whose stored bytes are checked (LZF) or read
/// raw; a dataset of more LZF chunks is refused.
const MAX_CHUNKS: usize = 1_000_000;

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
        let not_read = |name: &str| {
            self.refuse(
                at,
                format!(
                    "is compressed with {name}, which this reader does not read (gzip, LZF and shuffle are); write the file with gzip compression"
                ),
            )
        };
        let filters = match dcpl.get_filters() {
            Ok(filters) => filters,
            // the binding parses the parameters of the filters it knows, and fails on
            // those it cannot apply (Blosc with a compressor not built in: LZ4, ...)
            Err(e) if e.to_string().to_ascii_lowercase().contains("blosc") => {
                return Err(not_read("Blosc (filter 32001)"));
            }
            Err(e) => {
                return Err(not_read(&format!(
                    "a filter whose parameters do not parse ({})",
                    short(&e.to_string())
                )));
            }
        };
        for filter in &filters {
            // gzip, shuffle and LZF are what h5py, anndata and Cell Ranger write; HDF5's
            // fletcher32 crashed (SIGSEGV) on a fuzzed chunk, and n-bit / scale-offset
            // have a history of memory bugs, so they are not read from untrusted files;
            // any other filter would make the library search its plugin folder
            let built_in = match filter {
                Filter::Deflate(_) => hdf5::filters::deflate_available(),
                Filter::Shuffle => true,
                Filter::LZF => hdf5::filters::lzf_available(),
                _ => false,
            };
            if !built_in {
                return Err(not_read(&filter_name(filter)));
            }
        }
        let lzf = filters.iter().position(|f| matches!(f, Filter::LZF));
        if let Some(i) = lzf
            && (i + 1 != filters.len() || filters.iter().any(|f| matches!(f, Filter::Deflate(_))))
        {
            return Err(self.refuse(
                at,
                "combines LZF with gzip or applies a filter after LZF, which h5py never writes: refused",
            ));
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
            if let Some(i) = lzf {
                // in the file, a variable-length value takes more bytes than in memory
                let disk_item = item + extra_disk_bytes(&dtype.to_descriptor().ok()) as u128;
                let cap = product(&chunk).saturating_mul(disk_item.max(1));
                self.lzf_chunks(ds, i, cap, at)?;
            }
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
    /// data are read where they lie; chunks are read raw and decoded (gzip or LZF). A
    /// layout this cannot read raw (compact, shuffled or otherwise filtered chunks) is
    /// left to the library.
    fn variable_lengths(
        &self,
        ds: &hdf5::Dataset,
        dcpl: &hdf5::plist::DatasetCreate,
        values: u128,
        base: u128,
        source: &str,
    ) -> Result<()> {
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
                // gzip or LZF alone: decoded here; shuffled or otherwise filtered
                // chunks are left to the library
                if filters.len() > 1
                    || filters
                        .iter()
                        .any(|f| !matches!(f, Filter::Deflate(_) | Filter::LZF))
                {
                    return Ok(());
                }
                let per_chunk = dcpl.chunk().map(|c| product(&c)).unwrap_or(0);
                if per_chunk == 0 {
                    return Ok(());
                }
                // at most 16 bytes an element (length, heap address, index)
                let cap = per_chunk.saturating_mul(16);
                let Ok(Some(chunks)) = stored_chunks(ds, MAX_CHUNKS) else {
                    return Ok(());
                };
                for info in chunks {
                    // the uncompressed size is checked above; the stored one is bounded by
                    // it (gzip may add a few bytes to what does not compress)
                    if info.size > self.limits.max_hdf5_block_bytes.saturating_mul(2) {
                        return Err(DataError::invalid(
                            source,
                            format!(
                                "a chunk at byte {} is stored in {} bytes, more than twice max_hdf5_block_bytes: refused",
                                info.addr, info.size
                            ),
                        ));
                    }
                    let raw = read_at(file, info.addr, info.size).map_err(io)?;
                    // a chunk that does not decode into its size is refused rather than
                    // left to the library, which would read lengths not checked here
                    let data = unfilter(raw, &filters, info.filter_mask, 0, cap as usize).map_err(
                        |reason| {
                            DataError::invalid(
                                source,
                                format!("a chunk at byte {} {reason}: refused", info.addr),
                            )
                        },
                    )?;
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

    /// Decodes every LZF chunk of `ds` (LZF the filter at `position` of its pipeline) in
    /// Rust, refusing a chunk stored in more than `cap` bytes (its size uncompressed), or
    /// one that is corrupt or decodes to more than `cap`: the library's own LZF decoder
    /// would grow its buffer until such a chunk fits.
    fn lzf_chunks(&self, ds: &hdf5::Dataset, position: usize, cap: u128, at: &str) -> Result<()> {
        let chunks = stored_chunks(ds, MAX_CHUNKS)
            .map_err(|e| self.hdf5_err(at, e))?
            .ok_or_else(|| {
                self.refuse(
                    at,
                    format!("has more than {MAX_CHUNKS} LZF-compressed chunks: refused"),
                )
            })?;
        let cap = usize::try_from(cap).unwrap_or(usize::MAX);
        for info in chunks {
            let where_ = format!("an LZF chunk at byte {}", info.addr);
            if info.size > cap as u64 {
                return Err(self.refuse(
                    at,
                    format!(
                        "{where_} is stored in {} bytes, more than the {cap} it holds uncompressed: refused",
                        info.size
                    ),
                ));
            }
            if info.filter_mask & (1 << position) != 0 {
                continue; // stored uncompressed
            }
            let raw =
                read_at(self.raw, info.addr, info.size).map_err(|e| DataError::io(self.path, e))?;
            lzf_decompress(&raw, cap)
                .map_err(|reason| self.refuse(at, format!("{where_} {reason}: refused")))?;
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
        Filter::LZF => "LZF (filter 32000, h5py's compression=\"lzf\")".into(),
        // registered by anndata-hdf5 (anndata-rs writes blosc-zstd by default)
        Filter::Blosc(..) => "Blosc (filter 32001)".into(),
        Filter::Fletcher32 => "the fletcher32 checksum (filter 3)".into(),
        Filter::NBit => "n-bit packing (filter 5)".into(),
        Filter::ScaleOffset(_) => "scale-offset packing (filter 6)".into(),
        Filter::User(id, _) => match id {
            32000 => "LZF (filter 32000, h5py's compression=\"lzf\")".into(),
            32002 => "Blosc2 (filter 32002)".into(),
            32013 => "ZFP (filter 32013)".into(),
            32017 => "SZ (filter 32017)".into(),
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

// ---------------------------------------------------------------------------------------
// raw reads: the chunks and heaps of a dataset as the file stores them, for the checks
// above and for what the library cannot read through this binding (the compound `obs`
// and `var` datasets of anndata < 0.7, see `h5ad`)

/// One stored chunk of a chunked dataset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoredChunk {
    /// its first element along the first dimension
    pub first: u64,
    /// bit `i` set: filter `i` of the pipeline was not applied to this chunk
    pub filter_mask: u32,
    pub addr: u64,
    pub size: u64,
}

/// The stored chunks of `ds` (none written: empty), or `None` when there are more than
/// `max`.
pub(crate) fn stored_chunks(
    ds: &hdf5::Dataset,
    max: usize,
) -> hdf5::Result<Option<Vec<StoredChunk>>> {
    let mut chunks = Vec::new();
    let mut over = false;
    ds.chunks_visit(|info| {
        if chunks.len() >= max {
            over = true;
            return 1; // stop
        }
        chunks.push(StoredChunk {
            first: info.offset.first().copied().unwrap_or(0),
            filter_mask: info.filter_mask,
            addr: info.addr,
            size: info.size,
        });
        0
    })?;
    Ok((!over).then_some(chunks))
}

/// `size` bytes of `file` at `addr` (a stored chunk; the caller bounds `size`).
fn read_at(file: &std::fs::File, addr: u64, size: u64) -> std::io::Result<Vec<u8>> {
    let len = file.metadata()?.len();
    if addr.checked_add(size).is_none_or(|end| end > len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("a chunk at byte {addr} of {size} bytes runs past the end of the file"),
        ));
    }
    let mut raw = vec![0u8; size as usize];
    file.read_exact_at(&mut raw, addr)?;
    Ok(raw)
}

/// A stored chunk decoded: the filters of `pipeline` undone in reverse order, skipping
/// those `mask` marks as not applied; never more than `cap` bytes. `item` is the size of
/// one element in the file (for shuffle). Deflate, shuffle and LZF are decoded; any other
/// filter is an error.
pub(crate) fn unfilter(
    raw: Vec<u8>,
    pipeline: &[Filter],
    mask: u32,
    item: usize,
    cap: usize,
) -> std::result::Result<Vec<u8>, String> {
    let mut data = raw;
    for (i, filter) in pipeline.iter().enumerate().rev() {
        if i < 32 && mask & (1 << i) != 0 {
            continue;
        }
        data = match filter {
            Filter::Deflate(_) => {
                let mut out = Vec::new();
                std::io::Read::read_to_end(
                    &mut std::io::Read::take(
                        flate2::read::ZlibDecoder::new(data.as_slice()),
                        cap as u64 + 1,
                    ),
                    &mut out,
                )
                .map_err(|_| "is not a valid gzip (deflate) stream".to_string())?;
                if out.len() > cap {
                    return Err(format!("inflates to more than {cap} bytes"));
                }
                out
            }
            Filter::LZF => lzf_decompress(&data, cap)?,
            Filter::Shuffle => unshuffle(&data, item),
            other => return Err(format!("is compressed with {}", filter_name(other))),
        };
    }
    Ok(data)
}

/// LZF (liblzf's format, as h5py's filter writes it: no header) decoded into at most
/// `cap` bytes; every reference is checked.
pub(crate) fn lzf_decompress(input: &[u8], cap: usize) -> std::result::Result<Vec<u8>, String> {
    let corrupt = || "is corrupt (an LZF stream that does not decode)".to_string();
    let over = || format!("decodes to more than {cap} bytes");
    let mut out: Vec<u8> = Vec::with_capacity(cap.min(input.len().saturating_mul(4)));
    let mut i = 0;
    while i < input.len() {
        let ctrl = usize::from(input[i]);
        i += 1;
        if ctrl < 32 {
            // a run of ctrl + 1 literal bytes
            let len = ctrl + 1;
            let literal = input.get(i..i + len).ok_or_else(corrupt)?;
            if out.len() + len > cap {
                return Err(over());
            }
            out.extend_from_slice(literal);
            i += len;
        } else {
            // a back reference: length (ctrl >> 5) + 2, distance from 13 bits + 1
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(i).ok_or_else(corrupt)?);
                i += 1;
            }
            len += 2;
            let distance =
                ((ctrl & 0x1f) << 8) + usize::from(*input.get(i).ok_or_else(corrupt)?) + 1;
            i += 1;
            if distance > out.len() {
                return Err(corrupt());
            }
            if out.len() + len > cap {
                return Err(over());
            }
            let start = out.len() - distance;
            for k in 0..len {
                let b = out[start + k];
                out.push(b);
            }
        }
    }
    Ok(out)
}

/// HDF5's shuffle undone: byte `b` of every element was stored together.
fn unshuffle(data: &[u8], item: usize) -> Vec<u8> {
    if item <= 1 {
        return data.to_vec();
    }
    let n = data.len() / item;
    let mut out = vec![0u8; data.len()];
    for b in 0..item {
        for j in 0..n {
            out[j * item + b] = data[b * n + j];
        }
    }
    // bytes past the last whole element are stored as they are
    out[n * item..].copy_from_slice(&data[n * item..]);
    out
}

/// How many bytes more than in memory a value of this type takes in the file: a
/// variable-length string is a pointer (8 bytes) in memory, and a 4-byte length, an
/// 8-byte heap address and a 4-byte index (16) in the file.
pub(crate) fn extra_disk_bytes(desc: &Option<TypeDescriptor>) -> usize {
    fn extra(t: &TypeDescriptor) -> usize {
        match t {
            TypeDescriptor::VarLenUnicode | TypeDescriptor::VarLenAscii => 8,
            TypeDescriptor::Compound(c) => c.fields.iter().map(|f| extra(&f.ty)).sum(),
            TypeDescriptor::FixedArray(t, n) => extra(t).saturating_mul(*n),
            _ => 0,
        }
    }
    desc.as_ref().map_or(0, extra)
}

/// All `n` elements of a 1-D dataset of `item` bytes each as the file stores them
/// (contiguous, or chunked with gzip, shuffle and LZF decoded). The caller checks
/// `n * item` against its limits first; no chunk is read past its size uncompressed.
pub(crate) fn read_raw_1d(
    path: &Path,
    ds: &hdf5::Dataset,
    n: usize,
    item: usize,
) -> std::result::Result<Vec<u8>, String> {
    let io = |e: std::io::Error| format!("cannot be read: {e}");
    let h5 = |e: hdf5::Error| short(&e.to_string());
    let total = n
        .checked_mul(item)
        .ok_or_else(|| "its size overflows".to_string())?;
    if total == 0 {
        return Ok(Vec::new());
    }
    let file = std::fs::File::open(path).map_err(io)?;
    let dcpl = ds.dcpl().map_err(h5)?;
    match dcpl.get_layout().map_err(h5)? {
        Layout::Contiguous => {
            let offset = ds
                .offset()
                .ok_or_else(|| "holds no data (it was never written)".to_string())?;
            if ds.storage_size() != total as u64 {
                return Err(format!(
                    "stores {} bytes, but its {n} records take {total}",
                    ds.storage_size()
                ));
            }
            read_at(&file, offset, total as u64).map_err(io)
        }
        Layout::Chunked => {
            let chunk = match dcpl.chunk().as_deref() {
                Some(&[c]) if c > 0 => c,
                _ => return Err("is not chunked along one dimension".into()),
            };
            let filters = dcpl.get_filters().map_err(h5)?;
            let cap = chunk
                .checked_mul(item)
                .ok_or_else(|| "its chunk size overflows".to_string())?;
            let slots = n.div_ceil(chunk);
            let chunks = stored_chunks(ds, slots)
                .map_err(h5)?
                .ok_or_else(|| format!("has more chunks than its {slots} chunk positions"))?;
            let mut out = vec![0u8; total];
            let mut filled = vec![false; slots];
            for info in chunks {
                let first = usize::try_from(info.first).unwrap_or(usize::MAX);
                if first % chunk != 0 || first >= n || filled[first / chunk] {
                    return Err(format!(
                        "holds a chunk at element {first} that does not fit it"
                    ));
                }
                filled[first / chunk] = true;
                if info.size > cap as u64 {
                    return Err(format!(
                        "a chunk at byte {} is stored in {} bytes, more than the {cap} it holds",
                        info.addr, info.size
                    ));
                }
                let raw = read_at(&file, info.addr, info.size).map_err(io)?;
                let data = unfilter(raw, &filters, info.filter_mask, item, cap)
                    .map_err(|r| format!("a chunk at byte {} {r}", info.addr))?;
                let k = chunk.min(n - first);
                if data.len() < k * item {
                    return Err(format!(
                        "a chunk at byte {} holds {} bytes, less than its {} records",
                        info.addr,
                        data.len(),
                        k
                    ));
                }
                out[first * item..(first + k) * item].copy_from_slice(&data[..k * item]);
            }
            if filled.iter().any(|f| !f) {
                return Err("holds chunks that were never written".into());
            }
            Ok(out)
        }
        _ => Err("is stored compact or virtual, which this reader does not read raw".into()),
    }
}

/// A global heap collection read: its bytes, and where each object lies in them (index
/// -> start, size).
type Collection = (Vec<u8>, HashMap<u16, (usize, usize)>);

/// Variable-length strings looked up in the file's global heap collections (where HDF5
/// keeps them), each collection read once, bounded by the limits.
pub(crate) struct GlobalHeaps<'a> {
    file: std::fs::File,
    len: u64,
    limits: &'a Limits,
    /// collection address -> its bytes and the objects in it (index -> range)
    collections: HashMap<u64, Collection>,
    held: u64,
    /// the bytes of all strings read so far
    total: u128,
}

impl<'a> GlobalHeaps<'a> {
    pub(crate) fn new(path: &Path, limits: &'a Limits) -> std::io::Result<Self> {
        let file = std::fs::File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            len,
            limits,
            collections: HashMap::new(),
            held: 0,
            total: 0,
        })
    }

    /// The string of a variable-length value stored as `raw` (4-byte length, 8-byte
    /// collection address, 4-byte object index).
    pub(crate) fn string(&mut self, raw: &[u8]) -> std::result::Result<String, String> {
        let [l0, l1, l2, l3, a @ .., i0, i1, i2, i3] = raw else {
            return Err("a variable-length value of an unexpected size".into());
        };
        let len = u32::from_le_bytes([*l0, *l1, *l2, *l3]) as u64;
        if len == 0 {
            return Ok(String::new());
        }
        if len > self.limits.max_hdf5_block_bytes {
            return Err(format!(
                "a string claims {len} bytes, over max_hdf5_block_bytes ({})",
                self.limits.max_hdf5_block_bytes
            ));
        }
        self.total += u128::from(len);
        if self.total > u128::from(self.limits.max_dense_values) {
            return Err(format!(
                "its strings claim more than max_dense_values ({}) bytes together",
                self.limits.max_dense_values
            ));
        }
        let addr = match a {
            [a0, a1, a2, a3, a4, a5, a6, a7] => {
                u64::from_le_bytes([*a0, *a1, *a2, *a3, *a4, *a5, *a6, *a7])
            }
            _ => return Err("a variable-length value of an unexpected size".into()),
        };
        let index = u32::from_le_bytes([*i0, *i1, *i2, *i3]);
        if !self.collections.contains_key(&addr) {
            let c = self.load(addr)?;
            self.collections.insert(addr, c);
        }
        let (bytes, objects) = &self.collections[&addr];
        let &(start, size) = u16::try_from(index)
            .ok()
            .and_then(|i| objects.get(&i))
            .ok_or_else(|| format!("a string's heap object {index} at byte {addr} is missing"))?;
        if len as usize > size {
            return Err(format!(
                "a string claims {len} bytes, but its heap object holds {size}"
            ));
        }
        Ok(String::from_utf8_lossy(&bytes[start..start + len as usize]).into_owned())
    }

    /// The collection at `addr`: "GCOL", version 1, 3 reserved bytes, its size (8), then
    /// objects (index u16, references u16, 4 reserved, size u64, data padded to 8) up to
    /// one of index 0 (free space).
    fn load(&mut self, addr: u64) -> std::result::Result<Collection, String> {
        let bad = || format!("no valid global heap collection at byte {addr}");
        let mut h = [0u8; 16];
        if addr.checked_add(16).is_none_or(|e| e > self.len) {
            return Err(bad());
        }
        self.file.read_exact_at(&mut h, addr).map_err(|_| bad())?;
        let size = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        if h[..4] != *b"GCOL"
            || h[4] != 1
            || size < 16
            || addr.checked_add(size).is_none_or(|e| e > self.len)
        {
            return Err(bad());
        }
        if size > self.limits.max_hdf5_block_bytes {
            return Err(format!(
                "a global heap collection of {size} bytes, over max_hdf5_block_bytes ({})",
                self.limits.max_hdf5_block_bytes
            ));
        }
        self.held += size;
        if u128::from(self.held) > u128::from(self.limits.max_dense_values) {
            return Err(format!(
                "its strings' heap collections hold more than max_dense_values ({}) bytes together",
                self.limits.max_dense_values
            ));
        }
        let mut bytes = vec![0u8; size as usize];
        self.file
            .read_exact_at(&mut bytes, addr)
            .map_err(|_| bad())?;
        let mut objects = HashMap::new();
        let mut p = 16usize;
        // each step moves at least 16 bytes forward
        while p + 16 <= bytes.len() {
            let index = u16::from_le_bytes([bytes[p], bytes[p + 1]]);
            let object = u64::from_le_bytes(bytes[p + 8..p + 16].try_into().unwrap_or_default());
            if index == 0 {
                break;
            }
            let start = p + 16;
            let size = usize::try_from(object).unwrap_or(usize::MAX);
            if size > bytes.len() - start {
                break;
            }
            objects.insert(index, (start, size));
            p = start + size.div_ceil(8) * 8;
        }
        Ok((bytes, objects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// liblzf's encoder output for a literal run and a back reference
    #[test]
    fn lzf_decodes_literals_and_overlapping_references() {
        // "abcabcabcabc": literal "abc" (ctrl 2), then a reference of length 9 at
        // distance 3: ctrl = (7 << 5) | 0, extra length 9 - 2 - 7 = 0, distance byte 2
        let input = [2, b'a', b'b', b'c', 7 << 5, 0, 2];
        assert_eq!(lzf_decompress(&input, 100).unwrap(), b"abcabcabcabc");
        // too small a cap, a reference before the start, truncated input
        assert!(
            lzf_decompress(&input, 11)
                .unwrap_err()
                .contains("more than 11")
        );
        assert!(
            lzf_decompress(&[1 << 5, 5], 100)
                .unwrap_err()
                .contains("corrupt")
        );
        assert!(
            lzf_decompress(&[5, b'a'], 100)
                .unwrap_err()
                .contains("corrupt")
        );
        assert!(
            lzf_decompress(&[7 << 5], 100)
                .unwrap_err()
                .contains("corrupt")
        );
        assert_eq!(lzf_decompress(&[], 0).unwrap(), b"");
    }

    #[test]
    fn lzf_never_panics_and_never_exceeds_its_cap() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for round in 0..20_000 {
            let len = round % 64;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state as u8
                })
                .collect();
            let cap = round % 300;
            if let Ok(out) = lzf_decompress(&input, cap) {
                assert!(out.len() <= cap);
            }
        }
    }

    #[test]
    fn shuffle_is_undone() {
        // elements [1,2,3], [4,5,6] of 3 bytes shuffled: bytes 1,4,2,5,3,6, then a leftover
        assert_eq!(
            unshuffle(&[1, 4, 2, 5, 3, 6, 9], 3),
            vec![1, 2, 3, 4, 5, 6, 9]
        );
        assert_eq!(unshuffle(&[7, 8], 1), vec![7, 8]);
    }

    #[test]
    fn filters_are_named() {
        assert_eq!(
            filter_name(&Filter::User(32015, vec![])),
            "Zstandard (filter 32015)"
        );
        assert_eq!(
            filter_name(&Filter::User(32008, vec![])),
            "bitshuffle (filter 32008)"
        );
        assert_eq!(
            filter_name(&Filter::User(424242, vec![])),
            "the filter with id 424242"
        );
        assert!(filter_name(&Filter::SZip(hdf5::filters::SZip::Entropy, 8)).contains("SZIP"));
        assert!(filter_name(&Filter::LZF).contains("LZF"));
    }
}
