//! The cpio "newc" format (the kernel's initramfs format), written by hand.
//!
//! The `cpio` crate takes names only as `&str` (image paths are bytes and need not be UTF-8) and
//! does not notice when an entry's data is shorter than its header says, so it cannot promise
//! the exact bytes an image needs. The format is small: each entry is a 110-byte ASCII header
//! (`070701` and thirteen 8-digit hex fields), the name with a NUL, padding to a multiple of 4,
//! the data, padding to a multiple of 4; a `TRAILER!!!` entry ends the archive. See the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`. The [`Reader`] reads any newc
//! or newc-with-CRC archive (GNU cpio's, the kernel's `gen_init_cpio`'s, distributions'), with
//! every size it is told checked before anything is allocated.

use std::io::{self, Read, Write};

/// newc header magic without CRCs.
const MAGIC: &[u8; 6] = b"070701";
/// newc header magic with CRCs (the `check` field holds a sum of the data bytes).
const MAGIC_CRC: &[u8; 6] = b"070702";
/// Longest name a reader accepts (the kernel's own limit is `PATH_MAX`).
const MAX_NAME: u32 = 64 * 1024;
const TRAILER: &[u8] = b"TRAILER!!!";

/// The largest value a header field holds: files of 4 GiB or more and times after
/// 2106-02-07 06:28:15 UTC cannot be stored.
pub const FIELD_MAX: u64 = u32::MAX as u64;

pub const S_IFMT: u32 = 0o170000;
pub const S_IFDIR: u32 = 0o040000;
pub const S_IFREG: u32 = 0o100000;
pub const S_IFLNK: u32 = 0o120000;
pub const S_IFCHR: u32 = 0o020000;
pub const S_IFBLK: u32 = 0o060000;
pub const S_IFIFO: u32 = 0o010000;

/// One entry's header fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a [u8],
    pub ino: u32,
    /// File type and permission bits (`st_mode`).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u32,
    /// Bytes of data that follow the header.
    pub size: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
}

/// Writes a newc archive into `W`.
pub struct Writer<W: Write> {
    out: W,
    offset: u64,
}

impl<W: Write> Writer<W> {
    pub fn new(out: W) -> Writer<W> {
        Writer { out, offset: 0 }
    }

    /// Appends one entry; `data` must yield exactly `header.size` bytes.
    pub fn append(&mut self, header: &Header<'_>, data: &mut dyn Read) -> io::Result<()> {
        self.write_header(header)?;
        let copied = io::copy(&mut data.take(u64::from(header.size)), &mut self.out)?;
        if copied != u64::from(header.size) {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!(
                    "`{}` gave {copied} bytes where its header promises {}",
                    String::from_utf8_lossy(header.name),
                    header.size
                ),
            ));
        }
        self.offset += copied;
        self.pad()
    }

    fn write_header(&mut self, h: &Header<'_>) -> io::Result<()> {
        let namesize = h.name.len() as u32 + 1;
        let fields = [
            h.ino,
            h.mode,
            h.uid,
            h.gid,
            h.nlink,
            h.mtime,
            h.size,
            0, // major of the device holding the file: meaningless in an image
            0,
            h.rdev_major,
            h.rdev_minor,
            namesize,
            0, // check: only used by the 070702 (crc) variant
        ];
        let mut header = Vec::with_capacity(110 + h.name.len() + 4);
        header.extend_from_slice(MAGIC);
        for field in fields {
            write!(header, "{field:08x}")?;
        }
        header.extend_from_slice(h.name);
        header.push(0);
        self.out.write_all(&header)?;
        self.offset += header.len() as u64;
        self.pad()
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = (4 - (self.offset % 4) as usize) % 4;
        self.out.write_all(&[0u8; 3][..padding])?;
        self.offset += padding as u64;
        Ok(())
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        let trailer = Header {
            name: TRAILER,
            ino: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            size: 0,
            rdev_major: 0,
            rdev_minor: 0,
        };
        self.write_header(&trailer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// A header as read from an archive, with all thirteen fields.
/// (Inode number, time and size are wider than newc's fields, so the same type can describe
/// entries of file systems that hold more, such as EROFS.)
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadHeader {
    pub name: Vec<u8>,
    pub ino: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub mtime: u64,
    pub size: u64,
    pub dev_major: u32,
    pub dev_minor: u32,
    pub rdev_major: u32,
    pub rdev_minor: u32,
    pub check: u32,
}

/// Whether `bytes` start a newc archive.
pub fn is_magic(bytes: &[u8]) -> bool {
    bytes.starts_with(MAGIC) || bytes.starts_with(MAGIC_CRC)
}

/// Reads a newc archive entry by entry.
pub struct Reader<R: Read> {
    inner: R,
    offset: u64,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Reader<R> {
        Reader { inner, offset: 0 }
    }

    /// Bytes read so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    fn read_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        self.inner.read_exact(buf).map_err(|e| match e.kind() {
            io::ErrorKind::UnexpectedEof => {
                io::Error::new(e.kind(), format!("the archive ends early, at byte {}", self.offset))
            }
            _ => e,
        })?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn skip_padding(&mut self) -> io::Result<()> {
        let padding = (4 - (self.offset % 4) as usize) % 4;
        self.read_exact(&mut [0u8; 3][..padding])
    }

    /// Reads the next header and hands its data to `data`, which may read any part of it (the
    /// rest is skipped). Returns `None` at the `TRAILER!!!` entry.
    pub fn next_with<T>(
        &mut self,
        data: impl FnOnce(&ReadHeader, &mut dyn Read) -> io::Result<T>,
    ) -> io::Result<Option<(ReadHeader, T)>> {
        let at = self.offset;
        let mut raw = [0u8; 110];
        self.read_exact(&mut raw)?;
        if !is_magic(&raw) {
            return Err(invalid(format!(
                "no cpio newc header at byte {at} (found {:?})",
                String::from_utf8_lossy(&raw[..6])
            )));
        }
        let mut fields = [0u32; 13];
        for (i, field) in fields.iter_mut().enumerate() {
            let text = &raw[6 + i * 8..14 + i * 8];
            *field = std::str::from_utf8(text).ok().and_then(|t| u32::from_str_radix(t, 16).ok()).ok_or_else(|| {
                invalid(format!("bad header field {} at byte {at}: {:?}", i + 1, String::from_utf8_lossy(text)))
            })?;
        }
        let namesize = fields[11];
        if namesize == 0 || namesize > MAX_NAME {
            return Err(invalid(format!("name size {namesize} at byte {at} is not plausible")));
        }
        let mut name = vec![0u8; namesize as usize];
        self.read_exact(&mut name)?;
        if name.pop() != Some(0) {
            return Err(invalid(format!("the name at byte {at} does not end with NUL")));
        }
        self.skip_padding()?;
        let header = ReadHeader {
            name,
            ino: u64::from(fields[0]),
            mode: fields[1],
            uid: fields[2],
            gid: fields[3],
            nlink: fields[4],
            mtime: u64::from(fields[5]),
            size: u64::from(fields[6]),
            dev_major: fields[7],
            dev_minor: fields[8],
            rdev_major: fields[9],
            rdev_minor: fields[10],
            check: fields[12],
        };
        if header.name == TRAILER {
            return Ok(None);
        }
        let size = header.size;
        let mut body = (&mut self.inner).take(size);
        let result = data(&header, &mut body)?;
        let rest = io::copy(&mut body, &mut io::sink())?;
        let used = size - body.limit();
        if used != size {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive ends inside the data of `{}`", String::from_utf8_lossy(&header.name)),
            ));
        }
        let _ = rest;
        self.offset += size;
        self.skip_padding()?;
        Ok(Some((header, result)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header for `name` with `mode` and `size`; every other field 0 (nlink 1).
    fn header(name: &[u8], mode: u32, size: u32) -> Header<'_> {
        Header { name, ino: 1, mode, uid: 0, gid: 0, nlink: 1, mtime: 0, size, rdev_major: 0, rdev_minor: 0 }
    }

    #[test]
    fn header_layout_matches_the_kernel_documentation() {
        let mut writer = Writer::new(Vec::new());
        let header = Header { mtime: 0x6553_f100, ..header(b"init", S_IFREG | 0o755, 3) };
        writer.append(&header, &mut &b"hi\n"[..]).unwrap();
        let out = writer.finish().unwrap();
        let fields = [1, 0o100755, 0, 0, 1, 0x6553_f100, 3, 0, 0, 0, 0, 5, 0];
        let expected: String = fields.iter().map(|f: &u32| format!("{f:08x}")).collect();
        assert_eq!(&out[..6], b"070701");
        assert_eq!(std::str::from_utf8(&out[6..110]).unwrap(), expected);
        assert_eq!(&out[6..14], b"00000001");
        assert_eq!(&out[14..22], b"000081ed");
        // name "init\0" ends at 115, padded to 116; data 3 bytes padded to 4.
        assert_eq!(&out[110..116], b"init\0\0");
        assert_eq!(&out[116..120], b"hi\n\0");
        assert_eq!(&out[120..126], b"070701");
        assert_eq!(out.len() % 4, 0);
        assert!(out.ends_with(b"TRAILER!!!\0\0\0\0"));
    }

    #[test]
    fn short_data_is_an_error_not_a_corrupt_archive() {
        let mut writer = Writer::new(Vec::new());
        let header = header(b"f", S_IFREG | 0o644, 10);
        let err = writer.append(&header, &mut &b"short"[..]).unwrap_err();
        assert!(err.to_string().contains("gave 5 bytes where its header promises 10"), "{err}");
    }

    #[test]
    fn the_reader_reads_what_the_writer_wrote() {
        let mut writer = Writer::new(Vec::new());
        let header = Header {
            ino: 7,
            uid: 1,
            gid: 2,
            mtime: 3,
            rdev_major: 4,
            rdev_minor: 64,
            ..header(b"caf\xe9", S_IFCHR | 0o600, 5)
        };
        writer.append(&header, &mut &b"abcde"[..]).unwrap();
        let out = writer.finish().unwrap();
        let mut reader = Reader::new(&out[..]);
        let (read, data) = reader
            .next_with(|_, d| {
                let mut v = Vec::new();
                d.read_to_end(&mut v)?;
                Ok(v)
            })
            .unwrap()
            .unwrap();
        assert_eq!(read.name, b"caf\xe9");
        assert_eq!((read.ino, read.mode, read.uid, read.gid, read.mtime), (7, S_IFCHR | 0o600, 1, 2, 3));
        assert_eq!((read.rdev_major, read.rdev_minor, read.size), (4, 64, 5));
        assert_eq!(data, b"abcde");
        assert!(reader.next_with(|_, _| Ok(())).unwrap().is_none());
        assert_eq!(reader.offset(), out.len() as u64);
    }

    #[test]
    fn malformed_archives_are_errors_not_panics_or_huge_allocations() {
        let mut good = Writer::new(Vec::new());
        good.append(&header(b"f", S_IFREG, 4), &mut &b"data"[..]).unwrap();
        let good = good.finish().unwrap();
        let read_all = |bytes: &[u8]| -> io::Result<usize> {
            let mut reader = Reader::new(bytes);
            let mut n = 0;
            while reader.next_with(|_, _| Ok(()))?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert_eq!(read_all(&good).unwrap(), 1);
        for cut in [0, 5, 60, 111, 116, 118] {
            assert!(read_all(&good[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_magic = good.clone();
        bad_magic[5] = b'7';
        assert!(read_all(&bad_magic).unwrap_err().to_string().contains("no cpio newc header"));
        // A name size of 4 GiB must be refused before anything is allocated.
        let mut huge_name = good.clone();
        huge_name[6 + 11 * 8..14 + 11 * 8].copy_from_slice(b"ffffffff");
        assert!(read_all(&huge_name).unwrap_err().to_string().contains("not plausible"));
        // A data size of 4 GiB is streamed, so it only fails where the data ends.
        let mut huge_data = good.clone();
        huge_data[6 + 6 * 8..14 + 6 * 8].copy_from_slice(b"ffffffff");
        assert!(read_all(&huge_data).is_err());
        let mut bad_hex = good.clone();
        bad_hex[10] = b'g';
        assert!(read_all(&bad_hex).unwrap_err().to_string().contains("bad header field"));
    }

    #[test]
    fn the_cpio_crate_reads_what_we_write() {
        let mut writer = Writer::new(Vec::new());
        for (i, name) in [&b"a"[..], b"a/bb", b"a/ccc"].into_iter().enumerate() {
            let data = name.repeat(i + 1);
            let header = Header {
                ino: i as u32 + 1,
                uid: 1000,
                gid: 100,
                mtime: 42,
                ..header(name, S_IFREG | 0o600, data.len() as u32)
            };
            writer.append(&header, &mut &data[..]).unwrap();
        }
        let out = writer.finish().unwrap();
        let mut reader = &out[..];
        let mut names = Vec::new();
        loop {
            let mut entry = cpio::NewcReader::new(reader).unwrap();
            if entry.entry().is_trailer() {
                break;
            }
            let name = entry.entry().name().to_string();
            assert_eq!(entry.entry().uid(), 1000);
            assert_eq!(entry.entry().mtime(), 42);
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            assert_eq!(data, name.as_bytes().repeat(names.len() + 1));
            names.push(name);
            reader = entry.finish().unwrap();
        }
        assert_eq!(names, ["a", "a/bb", "a/ccc"]);
    }
}
