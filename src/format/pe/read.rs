//! Listing the sections of any PE image, as untrusted input.

use std::io::{self, Read, Seek, SeekFrom};

use super::*;
use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::{Digest, digest_reader};

/// One section of a PE image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SectionInfo {
    /// The name up to its first NUL (a `/N` long name is shown as written).
    pub name: String,
    /// Where it is in memory (relative to the image base).
    pub address: u32,
    /// Bytes in memory.
    pub virtual_size: u32,
    /// Where its data is in the file, and how many bytes of it.
    pub file_offset: u32,
    pub file_size: u32,
    pub characteristics: u32,
    /// Bytes of data: the smaller of its size in memory and in the file.
    pub size: u64,
    /// The sha256 of those bytes.
    pub sha256: Digest,
}

/// What [`read()`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub machine: u16,
    pub size_of_image: u32,
    pub sections: Vec<SectionInfo>,
}

/// Whether `head` (an image's first bytes) looks like a PE image.
pub fn is_pe(head: &[u8]) -> bool {
    Headers::parse(head).is_ok()
}

/// Reads the section table of a PE image and digests each section's data. Every size and
/// position the image gives is checked against the file before it is used.
pub fn read(mut input: impl Read + Seek) -> Result<Image> {
    let cannot = |e: io::Error| Error::input(format!("cannot read the PE image: {}", io_cause(&e)));
    let len = input.seek(SeekFrom::End(0)).map_err(cannot)?;
    input.seek(SeekFrom::Start(0)).map_err(cannot)?;
    let mut head = Vec::new();
    (&mut input).take(len.min(MAX_HEADERS)).read_to_end(&mut head).map_err(cannot)?;
    let headers = Headers::parse(&head)?;
    let size_of_image = u32_at(&head, headers.optional + opt::SIZE_OF_IMAGE).unwrap_or(0);
    let mut sections = Vec::with_capacity(headers.count as usize);
    for i in 0..headers.count as usize {
        let at = headers.sections + SECTION_HEADER * i;
        let raw = &head[at..at + SECTION_HEADER];
        let field = |offset: usize| u32_at(raw, offset).unwrap_or(0);
        let name_bytes = &raw[..8];
        let name_end = name_bytes.iter().position(|&b| b == 0).unwrap_or(8);
        let name = String::from_utf8_lossy(&name_bytes[..name_end]).into_owned();
        let (virtual_size, address, file_size, file_offset) = (field(8), field(12), field(16), field(20));
        let characteristics = field(36);
        let size = u64::from(virtual_size.min(file_size));
        if u64::from(file_offset) + size > len {
            return Err(Error::input(format!(
                "not a PE image: section `{name}` claims bytes {file_offset}..{} of a {len}-byte file",
                u64::from(file_offset) + size
            )));
        }
        input.seek(SeekFrom::Start(u64::from(file_offset))).map_err(cannot)?;
        let (sha256, got) = digest_reader((&mut input).take(size)).map_err(cannot)?;
        if got != size {
            return Err(Error::input(format!("not a PE image: section `{name}` is cut short")));
        }
        sections.push(SectionInfo {
            name,
            address,
            virtual_size,
            file_offset,
            file_size,
            characteristics,
            size,
            sha256,
        });
    }
    Ok(Image { machine: headers.machine, size_of_image, sections })
}
