//! Compressors for images and decompressors for inputs, and telling formats apart by their
//! first bytes.
//!
//! Every encoder here gives the same bytes for the same input on every machine: the libraries
//! are built from the sources pinned in `Cargo.lock`, never taken from the host, and no setting
//! depends on the host (thread count, clock, file name).

mod ahead;
mod decode;
mod encode;
mod xz_blocks;

pub use ahead::{Ahead, decoder_ahead, decoder_ahead_at};
pub use decode::{decoder, single_stream};
pub use encode::Encoder;

use serde::Deserialize;

/// `lz4 -l` writes and the kernel reads frames of this many uncompressed bytes.
const LZ4_LEGACY_CHUNK: usize = 8 << 20;
const LZ4_LEGACY_MAGIC: [u8; 4] = [0x02, 0x21, 0x4c, 0x18];

/// The compressors an image can be written with, and a stream read back can be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    Zstd,
    Gzip,
    Xz,
    Lz4,
    None,
}

impl Compression {
    /// The file name suffix, including the dot (empty for `none`).
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::Zstd => ".zst",
            Compression::Gzip => ".gz",
            Compression::Xz => ".xz",
            Compression::Lz4 => ".lz4",
            Compression::None => "",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Compression::Zstd => "zstd",
            Compression::Gzip => "gzip",
            Compression::Xz => "xz",
            Compression::Lz4 => "lz4",
            Compression::None => "none",
        }
    }

    /// The levels a recipe may ask for, and the default; `None` when the format has no levels.
    ///
    /// zstd stops at 19: the "ultra" levels above it need windows of up to 128 MiB, more than
    /// the kernel's initramfs decompressor is built to take on small machines.
    pub fn levels(self) -> Option<(i64, i64, i64)> {
        match self {
            Compression::Zstd => Some((1, 19, 19)),
            Compression::Gzip => Some((1, 9, 9)),
            Compression::Xz => Some((0, 9, 6)),
            Compression::Lz4 | Compression::None => None,
        }
    }

    /// `level`, or the format's default level (0 for a format without levels).
    pub fn level_or_default(self, level: Option<i64>) -> i64 {
        level.or(self.levels().map(|(_, _, default)| default)).unwrap_or(0)
    }

    /// Recognises a compressed stream by its magic bytes; anything else is `None` (uncompressed).
    pub fn detect(prefix: &[u8]) -> Compression {
        if prefix.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else if prefix.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if prefix.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Compression::Xz
        } else if prefix.starts_with(&LZ4_LEGACY_MAGIC) {
            Compression::Lz4
        } else {
            Compression::None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use super::*;

    /// Data that compresses somewhat, like a file system does.
    fn sample(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 3 == 0 { (state % 7) as u8 } else { b"bake image "[i % 11] }
            })
            .collect()
    }

    fn compress(data: &[u8], compression: Compression, level: Option<i64>, workers: u32) -> Vec<u8> {
        compress_in(data, compression, level, workers, 100_000)
    }

    /// Compresses `data` handed over in writes of `piece` bytes.
    fn compress_in(data: &[u8], compression: Compression, level: Option<i64>, workers: u32, piece: usize) -> Vec<u8> {
        let mut encoder = Encoder::stream(Vec::new(), compression, level, workers).unwrap();
        for chunk in data.chunks(piece) {
            encoder.write_all(chunk).unwrap();
        }
        encoder.finish().unwrap()
    }

    #[test]
    fn every_format_round_trips_and_is_detected() {
        let data = sample(9 << 20);
        for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz, Compression::Lz4, Compression::None]
        {
            let level = compression.levels().map(|(low, _, _)| low);
            let packed = compress(&data, compression, level, 2);
            let (found, mut reader) = decoder(&packed[..]).unwrap();
            assert_eq!(found, compression);
            let mut unpacked = Vec::new();
            reader.read_to_end(&mut unpacked).unwrap();
            assert!(unpacked == data, "{} did not round-trip", compression.name());
        }
    }

    /// xz streams one after another, with zero padding between them, and streams of several
    /// blocks all read back whole, in order.
    #[test]
    fn concatenated_and_multi_block_xz_streams_read_back_whole() {
        let first = sample(20 << 20); // liblzma's encoder at level 0 cuts blocks of 1 MiB
        let second = sample(1000);
        let mut packed = compress(&first, Compression::Xz, Some(0), 2);
        packed.extend([0u8; 8]);
        packed.extend(compress(&second, Compression::Xz, Some(0), 1));
        let (_, mut reader) = decoder(&packed[..]).unwrap();
        let mut unpacked = Vec::new();
        reader.read_to_end(&mut unpacked).unwrap();
        assert!(unpacked.len() == first.len() + second.len() && unpacked[..first.len()] == first[..]);
        assert!(unpacked[first.len()..] == second[..]);
        drop(reader);
        // Something that is not a stream after one is an error, not the end.
        packed.extend(b"junk");
        let (_, mut reader) = decoder(&packed[..]).unwrap();
        assert!(reader.read_to_end(&mut Vec::new()).is_err());
    }

    /// Hands out one byte per read, as a member of an `ar` archive can at a buffer's end.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.len().min(buf.len()).min(1);
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Regression: the format was decided from one read, so a short read made xz look plain.
    #[test]
    fn formats_are_detected_from_short_reads() {
        let packed = compress(b"hello", Compression::Xz, None, 1);
        let (found, mut reader) = decoder(Trickle(&packed)).unwrap();
        assert_eq!(found, Compression::Xz);
        let mut out = Vec::new();
        reader.read_to_end(&mut out).unwrap();
        assert_eq!(out, b"hello");
        let (found, _) = decoder(Trickle(b"ab")).unwrap();
        assert_eq!(found, Compression::None);
    }

    /// The data spans three 8 MiB LZ4 blocks, so workers really run concurrently and finish
    /// out of order; and it reaches every format in writes of other sizes (one byte more than a
    /// block, odd sizes, a page), which must not change the bytes either.
    #[test]
    fn bytes_do_not_depend_on_the_worker_count_or_the_writes() {
        let data = sample(18 << 20);
        for (compression, level) in
            [(Compression::Zstd, 3), (Compression::Gzip, 6), (Compression::Xz, 1), (Compression::Lz4, 0)]
        {
            let level = compression.levels().map(|_| level);
            let one = compress(&data, compression, level, 1);
            for workers in [2, 8] {
                let many = compress(&data, compression, level, workers);
                assert!(one == many, "{} output changed from 1 to {workers} workers", compression.name());
            }
            for piece in [4096, 131_073, 999_999] {
                let other = compress_in(&data, compression, level, 2, piece);
                assert!(one == other, "{} output changed with writes of {piece} bytes", compression.name());
            }
        }
    }

    /// zstd fits its parameters to a known size and records it in the frame.
    #[test]
    fn a_zstd_frame_of_known_size_records_it() {
        let data = sample(300_000);
        let mut encoder = Encoder::unit(Vec::new(), Compression::Zstd, None, Some(data.len() as u64)).unwrap();
        encoder.write_all(&data).unwrap();
        let packed = encoder.finish().unwrap();
        assert_eq!(zstd::zstd_safe::get_frame_content_size(&packed).ok(), Some(Some(data.len() as u64)));
        let (_, mut reader) = decoder(&packed[..]).unwrap();
        let mut unpacked = Vec::new();
        reader.read_to_end(&mut unpacked).unwrap();
        assert!(unpacked == data);
        // A wrong size is an error, not a damaged frame.
        let mut encoder = Encoder::unit(Vec::new(), Compression::Zstd, None, Some(5)).unwrap();
        encoder.write_all(&data[..6]).unwrap();
        assert!(encoder.finish().is_err());
    }

    #[test]
    fn gzip_is_one_member_that_gnu_gzip_reads() {
        let data = sample(3 * (1 << 20) + 5);
        let packed = compress(&data, Compression::Gzip, Some(9), 2);
        let mut member = flate2::read::GzDecoder::new(&packed[..]);
        let mut unpacked = Vec::new();
        member.read_to_end(&mut unpacked).unwrap();
        assert!(unpacked == data, "the first member does not hold all the data");
        // Whatever gzip build the host has must agree (it checks the CRC and length too).
        let mut gzip = std::process::Command::new("gzip")
            .args(["-d", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = gzip.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&packed).unwrap());
        let output = gzip.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(output.status.success());
        assert!(output.stdout == data, "gzip -d gives other bytes");
    }

    #[test]
    fn empty_input_gives_a_valid_stream_in_every_format() {
        for compression in [Compression::Zstd, Compression::Gzip, Compression::Xz, Compression::Lz4] {
            for workers in [1, 2] {
                let packed = compress(b"", compression, None, workers);
                let (_, mut reader) = decoder(&packed[..]).unwrap();
                let mut out = Vec::new();
                reader.read_to_end(&mut out).unwrap();
                assert!(out.is_empty(), "{}", compression.name());
            }
        }
    }

    #[test]
    fn gzip_header_has_no_time_and_no_host() {
        let packed = compress(b"hello", Compression::Gzip, None, 1);
        assert_eq!(&packed[4..8], &[0, 0, 0, 0], "mtime");
        assert_eq!(packed[9], 255, "OS byte");
    }

    #[test]
    fn xz_uses_the_crc32_check_the_kernel_requires() {
        let packed = compress(b"hello", Compression::Xz, None, 1);
        // Stream flags, second byte: check type 0x01 is CRC32.
        assert_eq!(packed[7], 0x01);
    }

    #[test]
    fn lz4_legacy_frames_are_cut_every_8_mib() {
        let data = sample(LZ4_LEGACY_CHUNK + 10);
        let packed = compress(&data, Compression::Lz4, None, 1);
        assert_eq!(&packed[..4], &LZ4_LEGACY_MAGIC);
        let first = u32::from_le_bytes(packed[4..8].try_into().unwrap()) as usize;
        let second = u32::from_le_bytes(packed[8 + first..12 + first].try_into().unwrap()) as usize;
        assert_eq!(packed.len(), 12 + first + second);
    }
}

#[cfg(test)]
mod golden {
    use std::io::Write;

    use super::*;

    /// The exact bytes each compressor gives for a fixed input at its default level. A failure
    /// means users' images would change: a library was upgraded, or a dependency switched
    /// flate2 to another backend through feature unification (flate2 is pinned to zlib-rs).
    /// Update these only on purpose, and say so in the release notes. The input is longer than
    /// one of the blocks a unit's compressor is fed.
    #[test]
    fn compressed_bytes_are_pinned() {
        let mut data = Vec::new();
        for i in 0..40_000u32 {
            data.extend_from_slice(format!("{i:08} bake reproducible image line {}\n", i % 97).as_bytes());
        }
        let digest = |encoder: Encoder<Vec<u8>>| {
            let mut encoder = encoder;
            encoder.write_all(&data).unwrap();
            crate::base::hash::hex(&crate::base::hash::digest_bytes(&encoder.finish().unwrap()))
        };
        // One stream on two threads (`frames = false`).
        for (compression, expected) in [
            (Compression::Zstd, "e94824a596d73e3773ae7b442144d24400225d130c01d2e62d7153cc19fcb1d6"),
            (Compression::Gzip, "aaf421a62eb69cde57a86a1dc12b17167f2503ab8d173b5583452244d7f067e2"),
            (Compression::Xz, "4c49ece1447d3b8d6e91a25448cfcd55102f72552de1097f426c4fe84001482f"),
            (Compression::Lz4, "191e33fdd7c54430d9600185c82cbeb175273da319c8349ac22d1ead3388b5c9"),
            (Compression::None, "8e944cb8effa0d60f1997ac4071b1b7544063c990893bd0e180cec0fbed31090"),
        ] {
            let got = digest(Encoder::stream(Vec::new(), compression, None, 2).unwrap());
            assert_eq!(got, expected, "{} stream output changed", compression.name());
        }
        // One unit of known size (an initramfs frame).
        for (compression, expected) in [
            (Compression::Zstd, "84783f4400b06bebef54c6e44e2e0d95b48784380057c1eab23734c9710c1517"),
            (Compression::Gzip, "aaf421a62eb69cde57a86a1dc12b17167f2503ab8d173b5583452244d7f067e2"),
            (Compression::Xz, "f586455e50996404eb6724189ee3f811fe0631d21c9cc7c6ddeb7385216a1135"),
        ] {
            let got = digest(Encoder::unit(Vec::new(), compression, None, Some(data.len() as u64)).unwrap());
            assert_eq!(got, expected, "{} unit output changed", compression.name());
        }
    }
}
