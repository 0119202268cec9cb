//! Checksums: the pinned algorithm (MD5 or SHA-256, whichever the source published) and
//! streaming hashers that always compute SHA-256 as well, so that every download can
//! report a SHA-256 the user can pin.

use std::borrow::Cow;
use std::fmt;
use std::fs::File;
use std::io::Read;
use std::path::Path;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::FetchError;

/// The hash function of a pinned checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// MD5 (128 bits, 32 hex digits): what several dataset catalogues publish.
    Md5,
    /// SHA-256 (256 bits, 64 hex digits).
    Sha256,
}

impl HashAlgo {
    /// Lower-case name as written in `algo:hex` strings (`md5`, `sha256`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Md5 => "md5",
            HashAlgo::Sha256 => "sha256",
        }
    }

    /// Number of hex digits of a digest.
    pub fn hex_len(self) -> usize {
        match self {
            HashAlgo::Md5 => 32,
            HashAlgo::Sha256 => 64,
        }
    }
}

impl fmt::Display for HashAlgo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An expected digest: algorithm and lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Checksum {
    pub algo: HashAlgo,
    pub hex: Cow<'static, str>,
}

impl Checksum {
    /// A SHA-256 checksum from a `'static` hex string (for the registry).
    pub const fn sha256(hex: &'static str) -> Self {
        Checksum {
            algo: HashAlgo::Sha256,
            hex: Cow::Borrowed(hex),
        }
    }

    /// An MD5 checksum from a `'static` hex string (for the registry).
    pub const fn md5(hex: &'static str) -> Self {
        Checksum {
            algo: HashAlgo::Md5,
            hex: Cow::Borrowed(hex),
        }
    }

    /// Parses `sha256:HEX`, `md5:HEX` or a bare `HEX` (64 digits: SHA-256, 32: MD5).
    /// Hex digits may be upper or lower case; the result is lower case.
    pub fn parse(text: &str) -> Result<Self, FetchError> {
        let invalid = |reason: String| FetchError::InvalidChecksum {
            value: text.to_string(),
            reason,
        };
        let trimmed = text.trim();
        let (algo, hex) = match trimmed.split_once(':') {
            Some((name, hex)) => {
                let algo = match name.to_ascii_lowercase().as_str() {
                    "sha256" | "sha-256" => HashAlgo::Sha256,
                    "md5" => HashAlgo::Md5,
                    other => {
                        return Err(invalid(format!(
                            "unknown algorithm `{other}` (use sha256 or md5)"
                        )));
                    }
                };
                (algo, hex)
            }
            None => match trimmed.len() {
                64 => (HashAlgo::Sha256, trimmed),
                32 => (HashAlgo::Md5, trimmed),
                n => {
                    return Err(invalid(format!(
                        "{n} hex digits; a SHA-256 has 64 and an MD5 32"
                    )));
                }
            },
        };
        if hex.len() != algo.hex_len() {
            return Err(invalid(format!(
                "{} hex digits; a {} has {}",
                hex.len(),
                algo,
                algo.hex_len()
            )));
        }
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid("not a hexadecimal string".to_string()));
        }
        Ok(Checksum {
            algo,
            hex: Cow::Owned(hex.to_ascii_lowercase()),
        })
    }

    /// Whether `actual_hex` (a digest of this algorithm) equals the expected one.
    pub fn matches(&self, actual_hex: &str) -> bool {
        self.hex.eq_ignore_ascii_case(actual_hex)
    }
}

impl fmt::Display for Checksum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algo, self.hex)
    }
}

/// Incremental hashing of a download: SHA-256 always, MD5 when the pin is MD5.
#[derive(Debug, Clone)]
pub(crate) struct Hashers {
    sha256: Sha256,
    md5: Option<Md5>,
}

/// Final digests of a [`Hashers`].
#[derive(Debug, Clone)]
pub(crate) struct Digests {
    pub sha256: String,
    pub md5: Option<String>,
}

impl Digests {
    /// The digest of `algo`, if it was computed.
    pub fn get(&self, algo: HashAlgo) -> Option<&str> {
        match algo {
            HashAlgo::Sha256 => Some(&self.sha256),
            HashAlgo::Md5 => self.md5.as_deref(),
        }
    }
}

impl Hashers {
    pub fn new(with_md5: bool) -> Self {
        Hashers {
            sha256: Sha256::new(),
            md5: with_md5.then(Md5::new),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.sha256.update(bytes);
        if let Some(md5) = &mut self.md5 {
            md5.update(bytes);
        }
    }

    pub fn finish(self) -> Digests {
        Digests {
            sha256: to_hex(&self.sha256.finalize()),
            md5: self.md5.map(|m| to_hex(&m.finalize())),
        }
    }

    /// Feeds the whole content of `path` (an existing partial or complete download).
    pub fn update_from_file(&mut self, path: &Path) -> Result<u64, FetchError> {
        let io_err = |source| FetchError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = File::open(path).map_err(io_err)?;
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            let n = file.read(&mut buf).map_err(io_err)?;
            if n == 0 {
                return Ok(total);
            }
            self.update(&buf[..n]);
            total += n as u64;
        }
    }
}

/// Digests of a whole file.
pub(crate) fn hash_file(path: &Path, with_md5: bool) -> Result<(u64, Digests), FetchError> {
    let mut hashers = Hashers::new(with_md5);
    let len = hashers.update_from_file(path)?;
    Ok((len, hashers.finish()))
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests_of_abc() {
        let mut h = Hashers::new(true);
        h.update(b"a");
        h.update(b"bc");
        let d = h.finish();
        assert_eq!(
            d.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.md5.as_deref(), Some("900150983cd24fb0d6963f7d28e17f72"));
    }

    #[test]
    fn parse_forms() {
        let s = Checksum::parse(
            "SHA256:BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
        )
        .unwrap();
        assert_eq!(s.algo, HashAlgo::Sha256);
        assert_eq!(
            s.hex,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let m = Checksum::parse("900150983cd24fb0d6963f7d28e17f72").unwrap();
        assert_eq!(m.algo, HashAlgo::Md5);
        assert_eq!(m.to_string(), "md5:900150983cd24fb0d6963f7d28e17f72");
        assert!(Checksum::parse("md5:1234").is_err());
        assert!(Checksum::parse("crc32:900150983cd24fb0d6963f7d28e17f72").is_err());
        assert!(Checksum::parse(&"g".repeat(64)).is_err());
        let err = Checksum::parse("abc").unwrap_err().to_string();
        assert!(err.contains("abc") && err.contains("64"), "{err}");
    }
}
