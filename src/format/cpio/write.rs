//! Writing a newc archive: [`Writer`] in the tar-rs shape, `append` then `finish`.

use std::io::{self, Read, Write};

use super::{HEADER_LEN, Header, MAGIC, TRAILER, padding};

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
        let header = header_bytes(h);
        self.out.write_all(&header)?;
        self.offset += header.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let padding = padding(self.offset);
        self.out.write_all(&[0u8; 3][..padding])?;
        self.offset += padding as u64;
        Ok(())
    }

    /// Returns the inner writer without writing a trailer: the archive goes on in what comes
    /// after (another compressed frame of the same archive).
    pub fn into_inner(self) -> W {
        self.out
    }

    /// Writes the trailer and returns the inner writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.write_header(&TRAILER_HEADER)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

/// The `TRAILER!!!` entry that ends an archive.
pub const TRAILER_HEADER: Header<'static> = Header {
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

/// Bytes an entry with this header takes in an archive: header, name, data and padding.
pub fn entry_len(header: &Header<'_>) -> u64 {
    let head = (HEADER_LEN + header.name.len() + 1) as u64;
    let data = u64::from(header.size);
    head + padding(head) as u64 + data + padding(data) as u64
}

/// The header as written, with the name, its NUL and the padding after it (an entry always
/// starts at a multiple of 4).
pub fn header_bytes(h: &Header<'_>) -> Vec<u8> {
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
    let mut header = Vec::with_capacity(HEADER_LEN + h.name.len() + 4);
    header.extend_from_slice(MAGIC);
    for field in fields {
        header.extend_from_slice(format!("{field:08x}").as_bytes());
    }
    header.extend_from_slice(h.name);
    header.push(0);
    header.resize(header.len() + padding(header.len() as u64), 0);
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::FileType;

    /// A header for `name` with `mode` and `size`; every other field 0 (nlink 1).
    fn header(name: &[u8], mode: u32, size: u32) -> Header<'_> {
        Header { name, ino: 1, mode, uid: 0, gid: 0, nlink: 1, mtime: 0, size, rdev_major: 0, rdev_minor: 0 }
    }

    #[test]
    fn header_layout_matches_the_kernel_documentation() {
        let mut writer = Writer::new(Vec::new());
        let header = Header { mtime: 0x6553_f100, ..header(b"init", FileType::File.bits() | 0o755, 3) };
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
        let header = header(b"f", FileType::File.bits() | 0o644, 10);
        let err = writer.append(&header, &mut &b"short"[..]).unwrap_err();
        assert!(err.to_string().contains("gave 5 bytes where its header promises 10"), "{err}");
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
                ..header(name, FileType::File.bits() | 0o600, data.len() as u32)
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
