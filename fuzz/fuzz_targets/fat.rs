//! The FAT reader behind `bake inspect` and `bake diff` of a disk with an EFI system partition:
//! any bytes must give a volume or an error, never a panic or a hang. A FAT32 volume is at least
//! 33 MiB, more than a fuzz input, so the input is the volume's start and the rest reads as
//! zeros.
#![no_main]

use std::io::{self, Read, Seek, SeekFrom};

/// `data`, then zeros up to `len` bytes.
struct Padded<'a> {
    data: &'a [u8],
    len: u64,
    pos: u64,
}

impl Read for Padded<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        let from = usize::try_from(self.pos).unwrap_or(usize::MAX).min(self.data.len());
        let real = (self.data.len() - from).min(n);
        buf[..real].copy_from_slice(&self.data[from..from + real]);
        buf[real..n].fill(0);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for Padded<'_> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        self.pos = match to {
            SeekFrom::Start(n) => n,
            SeekFrom::End(d) => self.len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = bake::format::fat::read(Padded { data, len: 34 << 20, pos: 0 });
});
