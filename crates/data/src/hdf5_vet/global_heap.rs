//! HDF5 global heap collections, where variable-length strings live: the check that
//! refuses a collection the library would parse forever, and a bounded reader of the
//! strings (for the records of anndata < 0.7).

use std::collections::HashMap;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crossomics_limits::Limits;

use crate::error::{DataError, Result};

/// Refuses a file with a global heap collection (where HDF5 keeps variable-length strings:
/// obs names, categories, attributes) that the bundled HDF5 library would parse forever:
/// an object with index 0 and size 0 makes its decoding loop
/// (`H5HG__cache_heap_deserialize`) stand still. Found by fuzzing (`docs/fuzzing.md`);
/// no catch_unwind or time limit inside the process could stop it. The walk mirrors the
/// library's: same header layout (8-byte lengths, as h5py, anndata and Cell Ranger write),
/// same steps, and stops where the library would report an error instead.
pub(super) fn check_global_heaps(path: &Path, file: &std::fs::File) -> Result<()> {
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
