//! Byte-level mutations (bit flips, interesting integers, truncation, splicing) and the
//! small random helpers the structure-aware generators share.

use std::io::Write;

use rand::Rng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

/// The random source of one case: a pure function of (target, seed, case index).
pub type CaseRng = ChaCha8Rng;

/// Integers that sit on the edges of signed / unsigned widths.
pub const INTERESTING: [u64; 22] = [
    0,
    1,
    2,
    0x7f,
    0x80,
    0xff,
    0x100,
    0x7fff,
    0x8000,
    0xffff,
    0x1_0000,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    1 << 40,
    1 << 48,
    0x7fff_ffff_ffff_ffff,
    0x8000_0000_0000_0000,
    0xffff_ffff_ffff_fffe,
    u64::MAX,
    0x00ff_ffff_ffff_ffff,
];

/// The largest input a mutation may grow a file to.
pub const MAX_LEN: usize = 4 << 20;

/// One element of `items`.
pub fn pick<T: Clone>(rng: &mut CaseRng, items: &[T]) -> T {
    items.choose(rng).expect("a non-empty choice").clone()
}

/// A random offset in `0..len` (0 for an empty buffer).
fn offset(rng: &mut CaseRng, len: usize) -> usize {
    if len == 0 { 0 } else { rng.gen_range(0..len) }
}

/// Offsets are mostly near the start of a file (headers, superblocks, size lines),
/// sometimes anywhere.
fn biased_offset(rng: &mut CaseRng, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    if rng.gen_bool(0.5) {
        offset(rng, len.min(1024))
    } else {
        offset(rng, len)
    }
}

/// Applies `rounds` random byte mutations to `data`; `donors` are other valid inputs of
/// the same kind to splice from.
pub fn mutate_bytes(rng: &mut CaseRng, data: &mut Vec<u8>, donors: &[&[u8]], rounds: usize) {
    for _ in 0..rounds {
        let len = data.len();
        match rng.gen_range(0..14) {
            // bit flip
            0 | 1 => {
                if len > 0 {
                    let i = biased_offset(rng, len);
                    data[i] ^= 1 << rng.gen_range(0..8);
                }
            }
            // random byte
            2 => {
                if len > 0 {
                    let i = biased_offset(rng, len);
                    data[i] = rng.r#gen();
                }
            }
            // an interesting integer of 1, 2, 4 or 8 bytes, either byte order
            3..=5 => {
                let width = pick(rng, &[1usize, 2, 4, 8]);
                if len >= width {
                    let i = biased_offset(rng, len - width + 1);
                    let mut v = pick(rng, &INTERESTING);
                    if rng.gen_bool(0.2) {
                        v = v.wrapping_neg();
                    }
                    let bytes = if rng.gen_bool(0.8) {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    let bytes = if rng.gen_bool(0.8) {
                        &bytes[..width]
                    } else {
                        &bytes[8 - width..]
                    };
                    data[i..i + width].copy_from_slice(bytes);
                }
            }
            // add or subtract a small amount to a little-endian integer
            6 => {
                let width = pick(rng, &[1usize, 2, 4, 8]);
                if len >= width {
                    let i = biased_offset(rng, len - width + 1);
                    let mut buf = [0u8; 8];
                    buf[..width].copy_from_slice(&data[i..i + width]);
                    let v = u64::from_le_bytes(buf);
                    let delta = rng.gen_range(1..=16u64);
                    let v = if rng.r#gen() {
                        v.wrapping_add(delta)
                    } else {
                        v.wrapping_sub(delta)
                    };
                    data[i..i + width].copy_from_slice(&v.to_le_bytes()[..width]);
                }
            }
            // truncate
            7 => {
                if len > 0 {
                    let keep = offset(rng, len);
                    data.truncate(keep);
                }
            }
            // delete a range
            8 => {
                if len > 1 {
                    let a = offset(rng, len);
                    let n = rng.gen_range(1..=(len - a).min(256));
                    data.drain(a..a + n);
                }
            }
            // insert random bytes
            9 => {
                let a = offset(rng, len + 1).min(len);
                let n = rng.gen_range(1..=32);
                let bytes: Vec<u8> = (0..n).map(|_| rng.r#gen()).collect();
                data.splice(a..a, bytes);
            }
            // duplicate a range in place
            10 => {
                if len > 1 {
                    let a = offset(rng, len);
                    let n = rng.gen_range(1..=(len - a).min(512));
                    let chunk = data[a..a + n].to_vec();
                    let at = offset(rng, len);
                    data.splice(at..at, chunk);
                }
            }
            // overwrite a range with 0x00 or 0xff
            11 => {
                if len > 0 {
                    let a = offset(rng, len);
                    let n = rng.gen_range(1..=(len - a).min(64));
                    let b = if rng.r#gen() { 0 } else { 0xff };
                    data[a..a + n].fill(b);
                }
            }
            // splice from a donor: overwrite or insert a piece of another valid input
            _ => {
                if let Some(donor) = donors.choose(rng).filter(|d| !d.is_empty()) {
                    let a = offset(rng, donor.len());
                    let n = rng.gen_range(1..=(donor.len() - a).min(4096));
                    let piece = donor[a..a + n].to_vec();
                    let at = offset(rng, len + 1).min(len);
                    if rng.r#gen() && at + n <= len {
                        data[at..at + n].copy_from_slice(&piece);
                    } else {
                        data.splice(at..at, piece);
                    }
                }
            }
        }
        data.truncate(MAX_LEN);
    }
}

/// `rounds` drawn mostly small: one to four mutations, sometimes up to 16.
pub fn rounds(rng: &mut CaseRng) -> usize {
    if rng.gen_bool(0.8) {
        rng.gen_range(1..=4)
    } else {
        rng.gen_range(5..=16)
    }
}

/// gzip of `bytes` (fast level).
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).expect("gzip into memory");
    e.finish().expect("gzip into memory")
}

/// gzip of `bytes`, sometimes damaged the ways a real upload can be: cut short, two
/// members, a flipped CRC or length trailer, trailing garbage.
pub fn gzip_maybe_damaged(rng: &mut CaseRng, bytes: &[u8]) -> Vec<u8> {
    let mut gz = gzip(bytes);
    match rng.gen_range(0..12) {
        0 => {
            let keep = offset(rng, gz.len());
            gz.truncate(keep);
        }
        1 => {
            let (a, b) = bytes.split_at(offset(rng, bytes.len() + 1).min(bytes.len()));
            gz = gzip(a);
            gz.extend_from_slice(&gzip(b));
        }
        2 => {
            let n = gz.len();
            if n >= 8 {
                let i = n - 1 - offset(rng, 8);
                gz[i] ^= 0x5a;
            }
        }
        3 => gz.extend_from_slice(b"trailing garbage"),
        4 => {
            let rounds = rounds(rng);
            mutate_bytes(rng, &mut gz, &[], rounds);
        }
        _ => {}
    }
    gz
}

/// Text of a random length from a small alphabet that suits names and tables.
pub fn word(rng: &mut CaseRng, max: usize) -> String {
    const ALPHABET: &[u8] = b"ACGTacgt0123456789_-:.";
    let n = rng.gen_range(0..=max);
    (0..n)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

/// Strings that break parsers of numbers and names.
pub const WEIRD_TOKENS: [&str; 34] = [
    "0",
    "-1",
    "-0",
    "+1",
    "1.5",
    "0.5",
    "-2.5",
    "1e39",
    "-1e39",
    "1e-50",
    "3.4028236e38",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "Infinity",
    "",
    "4294967295",
    "4294967296",
    "2147483648",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999999",
    "0x10",
    "1_000",
    "\u{661}",
    "１",
    "1e",
    ".",
    "--1",
    "\u{0}",
    "100000",
];
