//! The walk over every object of a file: links, datasets (storage, layout, filters,
//! sizes, variable-length lengths, LZF chunks) and attributes, each checked against the
//! limits without reading any data through the library.

use std::collections::HashSet;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crossomics_limits::{Limit, Limits};
use hdf5::filters::Filter;
use hdf5::plist::dataset_create::Layout;
use hdf5::types::TypeDescriptor;
use hdf5::{Group, LinkType, Location, LocationType};

use super::filters::{filter_name, lzf_decompress, unfilter};
use super::raw::{extra_disk_bytes, read_at, stored_chunks};
use super::{MAX_DEPTH, short};
use crate::error::{DataError, Result};

/// Most chunks of one compressed dataset whose stored bytes are checked (LZF) or read
/// raw; a dataset of more LZF chunks is refused.
const MAX_CHUNKS: usize = 1_000_000;

pub(super) struct Walk<'a> {
    pub(super) path: &'a Path,
    pub(super) limits: &'a Limits,
    pub(super) seen: HashSet<String>,
    pub(super) objects: u64,
    /// the file itself, for reads the HDF5 library does not make
    pub(super) raw: &'a std::fs::File,
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

    pub(super) fn group(&mut self, g: &Group, at: &str, depth: usize) -> Result<()> {
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

    pub(super) fn attributes(&mut self, loc: &Location, at: &str) -> Result<()> {
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
