//! The `ar` archive a Debian package is, read as a stream: a magic line, then members, each a
//! 60-byte header (name, times, owner, mode, decimal size, the two bytes "`\n") followed by its
//! data, padded to an even length.
//!
//! Written here rather than taken from the `ar` crate: that crate (0.9) panics on a header that
//! refers to a GNU long-name table the archive does not have (found by `scripts/fuzz.sh`), and a
//! package reader must never panic on any bytes. A Debian package needs none of the variants
//! beyond the short names (`debian-binary`, `control.tar.*`, `data.tar.*`, which dpkg itself
//! requires to fit the 16-byte field), so names of the long-name variants are given as they are
//! in the header and never match those.

use std::io::{self, Read};

use super::read_full;

const MAGIC: &[u8; 8] = b"!<arch>\n";
const HEADER: usize = 60;

/// Reads the members of an `ar` archive in order.
pub struct Reader<R> {
    input: R,
    /// Bytes of the current member (and its padding) not yet read or skipped.
    unread: u64,
    /// The byte of padding after an odd-sized member, part of `unread`.
    padding: u64,
    started: bool,
    /// Where the next member's header is, from the start of the archive.
    next_header: u64,
}

/// One member: its name and its data, read through [`Reader::data`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The name with GNU's `/` terminator and the space padding removed.
    pub name: Vec<u8>,
    pub size: u64,
    /// Where its data starts, from the start of the archive.
    pub offset: u64,
}

impl<R: Read> Reader<R> {
    pub fn new(input: R) -> Self {
        Reader { input, unread: 0, padding: 0, started: false, next_header: MAGIC.len() as u64 }
    }

    /// The next member's header, skipping what is left of the one before; `None` at the end.
    pub fn next_member(&mut self) -> io::Result<Option<Member>> {
        if !self.started {
            let mut magic = [0u8; 8];
            self.input.read_exact(&mut magic).map_err(|_| invalid("it does not start with `!<arch>`"))?;
            if &magic != MAGIC {
                return Err(invalid("it does not start with `!<arch>`"));
            }
            self.started = true;
        }
        let left = self.unread;
        self.unread = 0;
        let skipped = io::copy(&mut (&mut self.input).take(left), &mut io::sink())?;
        if skipped < left {
            return Err(invalid("a member is cut short"));
        }
        let mut header = [0u8; HEADER];
        let got = read_full(&mut self.input, &mut header)?;
        if got == 0 {
            return Ok(None);
        }
        if got < HEADER {
            return Err(invalid("a member header is cut short"));
        }
        let mut member = parse_header(&header)?;
        member.offset = self.next_header + HEADER as u64;
        self.padding = member.size % 2;
        self.next_header = member.offset.saturating_add(member.size + self.padding);
        self.unread = member.size + self.padding;
        Ok(Some(member))
    }

    /// The current member's data (at most its size; the padding stays to be skipped).
    pub fn data(&mut self) -> impl Read + '_ {
        let left = self.unread.saturating_sub(self.padding);
        DataReader { reader: self, left }
    }
}

struct DataReader<'a, R> {
    reader: &'a mut Reader<R>,
    left: u64,
}

impl<R: Read> Read for DataReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 || buf.is_empty() {
            return Ok(0);
        }
        let want = buf.len().min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.reader.input.read(&mut buf[..want])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the member is cut short"));
        }
        self.left -= n as u64;
        self.reader.unread -= n as u64;
        Ok(n)
    }
}

fn parse_header(header: &[u8; HEADER]) -> io::Result<Member> {
    if &header[58..60] != b"`\n" {
        return Err(invalid("a member header does not end in \"`\\n\""));
    }
    let field = &header[48..58];
    let text = std::str::from_utf8(field).map_err(|_| invalid("a member size is not a number"))?;
    let size = text.trim_end_matches(' ').parse::<u64>().map_err(|_| invalid("a member size is not a number"))?;
    let mut name = &header[..16];
    while let [rest @ .., b' '] = name {
        name = rest;
    }
    // GNU ar ends short names with `/`; the special members `/` and `//` keep theirs.
    if let [rest @ .., b'/'] = name
        && !rest.is_empty()
        && rest != b"/"
    {
        name = rest;
    }
    Ok(Member { name: name.to_vec(), size, offset: 0 })
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(name: &str, size: usize) -> Vec<u8> {
        format!("{name:<16}{:<12}{:<6}{:<6}{:<8}{size:<10}`\n", 0, 0, 0, 100644).into_bytes()
    }

    fn archive(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (name, data) in members {
            out.extend(header(name, data.len()));
            out.extend(*data);
            if data.len() % 2 == 1 {
                out.push(b'\n');
            }
        }
        out
    }

    fn all(bytes: &[u8]) -> io::Result<Vec<(String, Vec<u8>)>> {
        let mut reader = Reader::new(bytes);
        let mut out = Vec::new();
        while let Some(member) = reader.next_member()? {
            let mut data = Vec::new();
            reader.data().read_to_end(&mut data)?;
            let start = member.offset as usize;
            assert_eq!(&bytes[start..start + member.size as usize], &data[..], "the member's offset");
            out.push((String::from_utf8_lossy(&member.name).into_owned(), data));
        }
        Ok(out)
    }

    #[test]
    fn members_come_in_order_with_gnu_and_padded_names_and_odd_sizes() {
        let bytes =
            archive(&[("debian-binary", b"2.0\n"), ("control.tar.xz/", b"abc"), ("data.tar.xz", b"0123456789")]);
        let members = all(&bytes).unwrap();
        assert_eq!(
            members,
            vec![
                ("debian-binary".to_string(), b"2.0\n".to_vec()),
                ("control.tar.xz".to_string(), b"abc".to_vec()),
                ("data.tar.xz".to_string(), b"0123456789".to_vec()),
            ]
        );
    }

    #[test]
    fn a_member_left_unread_is_skipped() {
        let bytes = archive(&[("a", b"xyz"), ("b", b"12")]);
        let mut reader = Reader::new(&bytes[..]);
        assert_eq!(reader.next_member().unwrap().unwrap().name, b"a");
        let second = reader.next_member().unwrap().unwrap();
        assert_eq!(second.name, b"b");
        let mut data = Vec::new();
        reader.data().read_to_end(&mut data).unwrap();
        assert_eq!(data, b"12");
        assert!(reader.next_member().unwrap().is_none());
    }

    #[test]
    fn damage_is_an_error_never_a_panic() {
        let good = archive(&[("data.tar.xz", b"0123456789")]);
        assert!(all(b"!<arc").is_err());
        assert!(all(b"not an archive at all").is_err());
        assert!(all(&good[..good.len() - 3]).is_err(), "cut short");
        assert!(all(&good[..30]).is_err(), "header cut short");
        let mut bad_size = good.clone();
        bad_size[8 + 48..8 + 58].copy_from_slice(b"x000000000");
        assert!(all(&bad_size).is_err());
        let mut huge = good.clone();
        huge[8 + 48..8 + 58].copy_from_slice(b"9999999999");
        assert!(all(&huge).is_err());
        // A GNU long-name reference with no name table: the input that made the `ar` crate panic.
        let mut long = good;
        long[8..8 + 16].copy_from_slice(b"/10000000       ");
        let members = all(&long).unwrap();
        assert_eq!(members[0].0, "/10000000");
    }
}
