//! Raw reads: the chunks of a dataset as the file stores them, for the checks of the walk
//! and for what the library cannot read through this binding (the compound `obs` and
//! `var` datasets of anndata < 0.7, see `h5ad`).

use std::os::unix::fs::FileExt;
use std::path::Path;

use hdf5::plist::dataset_create::Layout;
use hdf5::types::TypeDescriptor;

use super::filters::unfilter;
use super::short;

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
pub(super) fn read_at(file: &std::fs::File, addr: u64, size: u64) -> std::io::Result<Vec<u8>> {
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
