//! HDF5 filters undone in Rust (deflate, shuffle, LZF), never past a given size, and
//! every filter named as its users know it.

use hdf5::filters::Filter;

/// A filter by the name its users know it by.
pub(super) fn filter_name(filter: &Filter) -> String {
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
