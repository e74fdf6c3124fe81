//! The cpio "newc" format (the kernel's initramfs format), written by hand.
//!
//! The `cpio` crate takes names only as `&str` (image paths are bytes and need not be UTF-8) and
//! does not notice when an entry's data is shorter than its header says, so it cannot promise
//! the exact bytes an image needs. The format is small: each entry is a 110-byte ASCII header
//! (`070701` and thirteen 8-digit hex fields), the name with a NUL, padding to a multiple of 4,
//! the data, padding to a multiple of 4; a `TRAILER!!!` entry ends the archive. See the kernel's
//! `Documentation/driver-api/early-userspace/buffer-format.rst`.

use std::io::{self, Read, Write};

/// newc header magic without CRCs.
const MAGIC: &[u8; 6] = b"070701";
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout_matches_the_kernel_documentation() {
        let mut writer = Writer::new(Vec::new());
        let header = Header {
            name: b"init",
            ino: 1,
            mode: S_IFREG | 0o755,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0x6553_f100,
            size: 3,
            rdev_major: 0,
            rdev_minor: 0,
        };
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
        let header = Header {
            name: b"f",
            ino: 1,
            mode: S_IFREG | 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            mtime: 0,
            size: 10,
            rdev_major: 0,
            rdev_minor: 0,
        };
        let err = writer.append(&header, &mut &b"short"[..]).unwrap_err();
        assert!(err.to_string().contains("gave 5 bytes where its header promises 10"), "{err}");
    }

    #[test]
    fn the_cpio_crate_reads_what_we_write() {
        let mut writer = Writer::new(Vec::new());
        for (i, name) in [&b"a"[..], b"a/bb", b"a/ccc"].into_iter().enumerate() {
            let data = name.repeat(i + 1);
            let header = Header {
                name,
                ino: i as u32 + 1,
                mode: S_IFREG | 0o600,
                uid: 1000,
                gid: 100,
                nlink: 1,
                mtime: 42,
                size: data.len() as u32,
                rdev_major: 0,
                rdev_minor: 0,
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
