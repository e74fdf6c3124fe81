//! Adding sections to an EFI stub (see the module documentation of [`super`]).

use std::io::{self, Read, Write};

use super::*;
use crate::base::error::{Error, Result, io_cause};

/// A section to add, with its contents.
pub struct Section<'a> {
    /// At most 8 bytes (`.cmdline` is exactly 8; a shorter name is padded with NULs).
    pub name: &'a str,
    /// The contents: exactly `size` bytes.
    pub contents: &'a mut dyn Read,
    pub size: u64,
}

/// Where the new sections go: what [`plan`] checked and computed.
pub(super) struct Plan {
    headers: Headers,
    /// Where the first new section's data starts in the file.
    file_end: u64,
    /// Where the first new section starts in memory.
    memory_end: u64,
}

/// Checks `stub` and finds room for `new` more sections.
pub(super) fn plan(stub: &[u8], new: usize) -> Result<Plan> {
    let headers = Headers::parse(stub)?;
    let bad = |what: String| Error::input(format!("not an EFI stub bake can use: {what}"));
    if headers.machine != MACHINE_X86_64 || !headers.pe32_plus {
        return Err(bad(format!("a PE image for machine {:#06x}, not an x86-64 PE32+ image", headers.machine)));
    }
    let subsystem = u16_at(stub, headers.optional + opt::SUBSYSTEM).unwrap_or(0);
    if subsystem != SUBSYSTEM_EFI_APPLICATION {
        return Err(bad(format!("subsystem {subsystem}, not an EFI application (10)")));
    }
    if let Some((_, size)) = headers.directory(stub, opt::SECURITY_DIRECTORY)
        && size != 0
    {
        return Err(bad(
            "it is signed; adding sections would break the signature, so use the unsigned `linuxx64.efi.stub`".into(),
        ));
    }
    let table_end = headers.sections + SECTION_HEADER * (headers.count as usize + new);
    let mut first_data = u64::from(headers.size_of_headers);
    let mut file_end = stub.len() as u64;
    let mut memory_end = 0u64;
    for i in 0..headers.count as usize {
        let at = headers.sections + SECTION_HEADER * i;
        let field = |offset: usize| u64::from(u32_at(stub, at + offset).unwrap_or(0));
        let (virtual_size, address, raw_size, raw_at) = (field(8), field(12), field(16), field(20));
        if raw_size > 0 {
            first_data = first_data.min(raw_at);
            file_end = file_end.max(raw_at + raw_size);
        }
        memory_end = memory_end.max(address + virtual_size.max(raw_size));
    }
    if table_end as u64 > first_data.min(u64::from(headers.size_of_headers)) {
        return Err(bad(format!(
            "its headers leave no room for {new} more section headers ({} bytes of headers, {} needed)",
            headers.size_of_headers, table_end
        )));
    }
    if file_end > stub.len() as u64 {
        return Err(bad("its sections reach past the end of the file".into()));
    }
    Ok(Plan { headers, file_end, memory_end })
}

/// Writes `stub` with `sections` added, in order, to `out`; returns `out`. Each section's
/// contents are copied through, never held in memory.
pub fn write<W: Write>(stub: &[u8], sections: &mut [Section<'_>], mut out: W) -> Result<W> {
    let Plan { headers, file_end, memory_end } = plan(stub, sections.len())?;
    let file_alignment = u64::from(headers.file_alignment);
    let section_alignment = u64::from(headers.section_alignment).max(PAGE);
    let mut image = stub.to_vec();
    let mut file_at = align(file_end, file_alignment);
    let mut memory_at = align(memory_end, section_alignment);
    let mut added_data = 0u64;
    let mut placed = Vec::with_capacity(sections.len());
    for (i, section) in sections.iter().enumerate() {
        let name = section.name.as_bytes();
        if name.len() > 8 {
            return Err(Error::failure(format!("PE section name `{}` is longer than 8 bytes", section.name)));
        }
        let raw_size = align(section.size, file_alignment);
        let too_big = |what: &str| {
            Error::input(format!(
                "section `{}` would end past 4 GiB ({what}), the most a PE image can address",
                section.name
            ))
        };
        let virtual_size = u32::try_from(section.size).map_err(|_| too_big("its size"))?;
        let address = u32::try_from(memory_at).map_err(|_| too_big("its address"))?;
        let raw = u32::try_from(raw_size).map_err(|_| too_big("its size in the file"))?;
        let pointer = u32::try_from(file_at).map_err(|_| too_big("its place in the file"))?;
        let mut header = [0u8; SECTION_HEADER];
        header[..name.len()].copy_from_slice(name);
        header[8..12].copy_from_slice(&virtual_size.to_le_bytes());
        header[12..16].copy_from_slice(&address.to_le_bytes());
        header[16..20].copy_from_slice(&raw.to_le_bytes());
        header[20..24].copy_from_slice(&pointer.to_le_bytes());
        header[36..40].copy_from_slice(&DATA_READ_ONLY.to_le_bytes());
        let at = headers.sections + SECTION_HEADER * (headers.count as usize + i);
        image[at..at + SECTION_HEADER].copy_from_slice(&header);
        placed.push((file_at, raw_size));
        added_data += raw_size;
        file_at += raw_size;
        memory_at = align(memory_at + section.size.max(1), section_alignment);
    }
    let count = headers.count + sections.len() as u16;
    let size_of_image =
        u32::try_from(memory_at).map_err(|_| Error::input("the image would be larger than 4 GiB in memory"))?;
    let initialized =
        u64::from(u32_at(stub, headers.optional + opt::SIZE_OF_INITIALIZED_DATA).unwrap_or(0)) + added_data;
    let initialized =
        u32::try_from(initialized).map_err(|_| Error::input("the image would hold more than 4 GiB of data"))?;
    image[headers.coff + 2..headers.coff + 4].copy_from_slice(&count.to_le_bytes());
    let put = |image: &mut Vec<u8>, offset: usize, value: u32| {
        image[headers.optional + offset..headers.optional + offset + 4].copy_from_slice(&value.to_le_bytes());
    };
    put(&mut image, opt::SIZE_OF_IMAGE, size_of_image);
    put(&mut image, opt::SIZE_OF_INITIALIZED_DATA, initialized);
    put(&mut image, opt::CHECKSUM, 0);

    let io = |e: io::Error| Error::failure(format!("cannot write the unified kernel image: {}", io_cause(&e)));
    out.write_all(&image).map_err(io)?;
    let mut written = image.len() as u64;
    for (section, (at, raw_size)) in sections.iter_mut().zip(placed) {
        zeros(&mut out, at - written).map_err(io)?;
        let copied = io::copy(&mut (&mut section.contents).take(section.size), &mut out).map_err(io)?;
        if copied != section.size {
            return Err(Error::failure(format!(
                "section `{}`: {copied} bytes, not the {} expected",
                section.name, section.size
            )));
        }
        let mut extra = [0u8; 1];
        if section.contents.read(&mut extra).map_err(io)? != 0 {
            return Err(Error::failure(format!(
                "section `{}`: more than the {} bytes expected",
                section.name, section.size
            )));
        }
        zeros(&mut out, raw_size - section.size).map_err(io)?;
        written = at + raw_size;
    }
    Ok(out)
}

fn zeros(out: &mut impl Write, count: u64) -> io::Result<()> {
    io::copy(&mut io::repeat(0).take(count), out).map(|_| ())
}
