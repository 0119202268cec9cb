//! MatrixMarket text compressed in memory: a chunk's entry lines as one gzip member, and
//! the header as a stored member of fixed length that can be rewritten in place.

use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;

/// MatrixMarket entry lines of a chunk, compressed into one gzip member in memory.
pub(super) struct EntryWriter {
    gz: GzEncoder<Vec<u8>>,
    text: Vec<u8>,
    nnz: u64,
}

impl EntryWriter {
    pub(super) fn new(level: Compression, mut buf: Vec<u8>) -> Self {
        buf.clear();
        Self {
            gz: GzEncoder::new(buf, level),
            text: Vec::with_capacity(1 << 17),
            nnz: 0,
        }
    }

    pub(super) fn row(&mut self, row: usize, entries: &[(u32, u32)]) {
        let mut prefix = itoa(row as u64 + 1);
        prefix.push(b' ');
        for &(c, v) in entries {
            self.text.extend_from_slice(&prefix);
            push_u64(&mut self.text, u64::from(c) + 1);
            self.text.push(b' ');
            push_u64(&mut self.text, u64::from(v));
            self.text.push(b'\n');
        }
        self.nnz += entries.len() as u64;
        if self.text.len() >= 1 << 16 {
            self.flush();
        }
    }

    fn flush(&mut self) {
        self.gz
            .write_all(&self.text)
            .expect("compressing into memory cannot fail");
        self.text.clear();
    }

    pub(super) fn finish(mut self) -> (Vec<u8>, u64) {
        self.flush();
        let bytes = self
            .gz
            .finish()
            .expect("compressing into memory cannot fail");
        (bytes, self.nnz)
    }
}

fn itoa(mut v: u64) -> Vec<u8> {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    buf[i..].to_vec()
}

fn push_u64(out: &mut Vec<u8>, v: u64) {
    if v < 10 {
        out.push(b'0' + v as u8);
    } else {
        out.extend_from_slice(&itoa(v));
    }
}

/// A gzip member holding `data` in one stored deflate block (RFC 1951 BTYPE 00).
pub(super) fn stored_gzip_member(data: &[u8]) -> Vec<u8> {
    let len = u16::try_from(data.len()).expect("the header is short");
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];
    out.push(1); // BFINAL = 1, BTYPE = 00, padded to the byte
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&(!len).to_le_bytes());
    out.extend_from_slice(data);
    let mut crc = flate2::Crc::new();
    crc.update(data);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(data.len() as u32).to_le_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itoa_writes_decimal() {
        for v in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, v);
            assert_eq!(String::from_utf8(out).unwrap(), v.to_string());
        }
    }
}
