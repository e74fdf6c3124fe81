//! Reading a newc archive: [`Reader`] yields one [`Entry`] per member, its data hashed (a
//! regular file) or taken whole (a symlink's target, bounded) as it passes, never held.

use std::io::{self, Read};

use super::{HEADER_LEN, TRAILER, is_magic, padding};
use crate::base::hash::digest_reader;
use crate::format::FileType;
use crate::format::entry::{Entry, MAX_TARGET};

/// Longest name a reader accepts (the kernel's own limit is `PATH_MAX`).
const MAX_NAME: u32 = 64 * 1024;

/// What comes next in an archive.
#[derive(Debug)]
pub enum Item {
    Entry(Entry),
    /// The `TRAILER!!!` entry: the archive ends.
    Trailer,
    /// The input ends between two entries.
    End,
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
        let padding = padding(self.offset);
        self.read_exact(&mut [0u8; 3][..padding])
    }

    /// The next entry, or `None` at the `TRAILER!!!` entry.
    pub fn next_entry(&mut self) -> io::Result<Option<Entry>> {
        match self.next_item()? {
            Item::Entry(entry) => Ok(Some(entry)),
            Item::Trailer => Ok(None),
            Item::End => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive ends early, at byte {}", self.offset),
            )),
        }
    }

    /// The next entry, the trailer, or the end of the input between two entries (where a
    /// compressed frame that holds part of an archive ends).
    pub fn next_item(&mut self) -> io::Result<Item> {
        let mut first = [0u8; 1];
        if crate::format::read_full(&mut self.inner, &mut first)? == 0 {
            return Ok(Item::End);
        }
        let Some(mut entry) = self.header(first[0])? else { return Ok(Item::Trailer) };
        let size = entry.size;
        let mut body = (&mut self.inner).take(size);
        match entry.file_type() {
            Some(FileType::Symlink) => {
                if size > MAX_TARGET {
                    return Err(invalid(format!(
                        "symlink `{}` claims a {size} byte target",
                        String::from_utf8_lossy(&entry.name)
                    )));
                }
                let mut target = Vec::with_capacity(size as usize);
                body.read_to_end(&mut target)?;
                entry.target = Some(target);
            }
            Some(FileType::File) => entry.sha256 = Some(digest_reader(&mut body)?.0),
            _ => {}
        }
        io::copy(&mut body, &mut io::sink())?;
        if body.limit() != 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the archive ends inside the data of `{}`", String::from_utf8_lossy(&entry.name)),
            ));
        }
        self.offset += size;
        self.skip_padding()?;
        Ok(Item::Entry(entry))
    }

    /// Reads a header (whose first byte is `first`) and its name; `None` at the trailer.
    fn header(&mut self, first: u8) -> io::Result<Option<Entry>> {
        let at = self.offset;
        let mut raw = [0u8; HEADER_LEN];
        raw[0] = first;
        self.offset += 1;
        self.read_exact(&mut raw[1..])?;
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
        if name == TRAILER {
            return Ok(None);
        }
        Ok(Some(Entry {
            name,
            ino: u64::from(fields[0]),
            mode: fields[1],
            uid: fields[2],
            gid: fields[3],
            nlink: fields[4],
            mtime: u64::from(fields[5]),
            size: u64::from(fields[6]),
            dev: (fields[7], fields[8]),
            rdev: (fields[9], fields[10]),
            sha256: None,
            target: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::hash::digest_bytes;
    use crate::format::cpio::{Header, Writer};

    fn header(name: &[u8], file_type: FileType, size: u32) -> Header<'_> {
        let mode = file_type.bits() | 0o644;
        Header { name, ino: 1, mode, uid: 0, gid: 0, nlink: 1, mtime: 0, size, rdev_major: 0, rdev_minor: 0 }
    }

    #[test]
    fn the_reader_reads_what_the_writer_wrote() {
        let mut writer = Writer::new(Vec::new());
        let device = Header {
            ino: 7,
            uid: 1,
            gid: 2,
            mtime: 3,
            rdev_major: 4,
            rdev_minor: 64,
            ..header(b"caf\xe9", FileType::Char, 0)
        };
        writer.append(&device, &mut io::empty()).unwrap();
        writer.append(&header(b"f", FileType::File, 5), &mut &b"abcde"[..]).unwrap();
        writer.append(&header(b"l", FileType::Symlink, 3), &mut &b"../"[..]).unwrap();
        let out = writer.finish().unwrap();
        let mut reader = Reader::new(&out[..]);
        let read = reader.next_entry().unwrap().unwrap();
        assert_eq!(read.name, b"caf\xe9");
        assert_eq!((read.ino, read.mode, read.uid, read.gid, read.mtime), (7, FileType::Char.bits() | 0o644, 1, 2, 3));
        assert_eq!((read.rdev, read.size, read.sha256), ((4, 64), 0, None));
        let file = reader.next_entry().unwrap().unwrap();
        assert_eq!((file.size, file.sha256), (5, Some(digest_bytes(b"abcde"))));
        let link = reader.next_entry().unwrap().unwrap();
        assert_eq!(link.target.as_deref(), Some(&b"../"[..]));
        assert!(reader.next_entry().unwrap().is_none());
        assert_eq!(reader.offset(), out.len() as u64);
    }

    #[test]
    fn malformed_archives_are_errors_not_panics_or_huge_allocations() {
        let mut good = Writer::new(Vec::new());
        good.append(&header(b"f", FileType::File, 4), &mut &b"data"[..]).unwrap();
        let good = good.finish().unwrap();
        let read_all = |bytes: &[u8]| -> io::Result<usize> {
            let mut reader = Reader::new(bytes);
            let mut n = 0;
            while reader.next_entry()?.is_some() {
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
        // A symlink claiming a huge target is refused before it is read.
        let mut writer = Writer::new(Vec::new());
        writer.append(&header(b"l", FileType::Symlink, 70_000), &mut &vec![b'a'; 70_000][..]).unwrap();
        let long_link = writer.finish().unwrap();
        assert!(read_all(&long_link).unwrap_err().to_string().contains("claims a 70000 byte target"));
    }
}
