//! SHA-256 digests of inputs, entries and outputs, and I/O adapters that compute them on the fly.

use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest as _, Sha256};

use crate::error::{IoContext, Result};

/// A SHA-256 digest.
pub type Digest = [u8; 32];

/// Lower-case hex, as `sha256sum` prints it.
pub fn hex(digest: &Digest) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(DIGITS[usize::from(byte >> 4)] as char);
        out.push(DIGITS[usize::from(byte & 15)] as char);
    }
    out
}

/// Parses 64 hex digits (either case).
pub fn parse_hex(text: &str) -> Option<Digest> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in text.as_bytes().chunks(2).enumerate() {
        let pair = std::str::from_utf8(pair).ok()?;
        out[i] = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// A name-based UUID from a SHA-256 digest: its first 16 bytes with the version set to 8 and
/// the variant to RFC 9562's (its appendix B.2 describes exactly this use of SHA-256). The same
/// content always gives the same UUID, so file systems and disks stay reproducible.
pub fn uuid_v8(digest: &[u8]) -> [u8; 16] {
    let mut uuid = [0u8; 16];
    uuid.copy_from_slice(&digest[..16]);
    uuid[6] = (uuid[6] & 0x0f) | 0x80;
    uuid[8] = (uuid[8] & 0x3f) | 0x80;
    uuid
}

pub fn digest_bytes(bytes: &[u8]) -> Digest {
    Sha256::digest(bytes).into()
}

/// Digest and length of everything `reader` yields.
pub fn digest_reader(mut reader: impl Read) -> io::Result<(Digest, u64)> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut size = 0u64;
    loop {
        crate::interrupt::check()?;
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((hasher.finalize().into(), size))
}

/// Digest and length of a host file (an input: errors are input errors naming it).
pub fn digest_file(path: &Path) -> Result<(Digest, u64)> {
    let file = std::fs::File::open(path).reading(path)?;
    digest_reader(file).reading(path)
}

/// A reader that hashes what passes through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> HashingReader<R> {
        HashingReader { inner, hasher: Sha256::new() }
    }

    /// Reads what is left, and returns the digest of everything read.
    pub fn finish(mut self) -> io::Result<Digest> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(self.hasher.finalize().into())
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A writer that hashes and counts what passes through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    written: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> HashingWriter<W> {
        HashingWriter { inner, hasher: Sha256::new(), written: 0 }
    }

    /// The inner writer, the digest and the number of bytes written.
    pub fn finish(self) -> (W, Digest, u64) {
        (self.inner, self.hasher.finalize().into(), self.written)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_matches_sha256sum() {
        let digest = digest_bytes(b"hello\n");
        let text = hex(&digest);
        assert_eq!(text, "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03");
        assert_eq!(parse_hex(&text), Some(digest));
        assert_eq!(parse_hex(&text.to_uppercase()), Some(digest));
        assert_eq!(parse_hex("abc"), None);
        assert_eq!(parse_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn hashing_writer_sees_every_byte() {
        let mut writer = HashingWriter::new(Vec::new());
        writer.write_all(b"hel").unwrap();
        writer.write_all(b"lo\n").unwrap();
        let (inner, digest, written) = writer.finish();
        assert_eq!(inner, b"hello\n");
        assert_eq!(written, 6);
        assert_eq!(digest, digest_bytes(b"hello\n"));
    }
}
