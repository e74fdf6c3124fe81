//! PE/COFF images as UEFI firmware runs them, for the unified kernel image: systemd's EFI stub
//! with sections added after its own ([`write()`]), and a reader that lists the sections of any
//! PE image with their digests ([`read()`]).
//!
//! The writer follows the UAPI Group's Unified Kernel Image specification: the stub is copied as
//! it is, and each new section (`.osrel`, `.cmdline`, `.uname`, `.initrd`, `.linux`) gets a
//! section header in the slack the stub leaves between its last section header and its first
//! section's data (`SizeOfHeaders`), and its data at the end of the file. Sections are placed
//! one after another, each at the next `FileAlignment` boundary in the file and the next 4 KiB
//! page in memory, never at fixed addresses: a 14 MB kernel then never collides with the
//! initramfs, whatever their sizes. In the headers only `NumberOfSections`, `SizeOfImage`,
//! `SizeOfInitializedData` and `CheckSum` change; the checksum is written as 0, which UEFI
//! firmware does not check (objcopy and ukify leave it so as well), and the stub's own
//! `TimeDateStamp` stays, so every byte is a function of the stub and the sections.
//!
//! Hand-written, not the `object` crate's PE writer: that writer lays out a whole new image
//! from its sections and would re-encode the stub's headers and sections, so the result could
//! not be the stub's own bytes with sections appended; and the 20 MB of kernel and initramfs
//! are streamed through, never held in memory. A signed stub is refused: adding sections breaks
//! its signature, and bake writes unsigned images (Secure Boot off, `docs/SECURITY.md`).

pub mod read;
#[cfg(test)]
mod tests;
pub mod write;

pub use read::{Image, SectionInfo, is_pe, read};
pub use write::{Section, write};

use crate::base::error::{Error, Result};

/// `IMAGE_SCN_CNT_INITIALIZED_DATA | IMAGE_SCN_MEM_READ`: what every UKI section is.
pub const DATA_READ_ONLY: u32 = 0x4000_0040;
/// PE32+ (64-bit) optional header magic.
const PE32_PLUS: u16 = 0x20b;
/// `IMAGE_FILE_MACHINE_AMD64`.
pub const MACHINE_X86_64: u16 = 0x8664;
/// `IMAGE_SUBSYSTEM_EFI_APPLICATION`.
const SUBSYSTEM_EFI_APPLICATION: u16 = 10;
const SECTION_HEADER: usize = 40;
const COFF_HEADER: usize = 20;
/// Where new sections start in memory: a page boundary.
const PAGE: u64 = 4096;
/// The most sections a reader takes (the COFF limit is 96 for images).
const MAX_SECTIONS: u16 = 96;
/// The most header bytes a reader takes into memory.
const MAX_HEADERS: u64 = 64 * 1024;

/// Offsets in the PE32+ optional header.
mod opt {
    pub const MAGIC: usize = 0;
    pub const SIZE_OF_INITIALIZED_DATA: usize = 8;
    pub const SECTION_ALIGNMENT: usize = 32;
    pub const FILE_ALIGNMENT: usize = 36;
    pub const SIZE_OF_IMAGE: usize = 56;
    pub const SIZE_OF_HEADERS: usize = 60;
    pub const CHECKSUM: usize = 64;
    pub const SUBSYSTEM: usize = 68;
    pub const NUMBER_OF_RVA_AND_SIZES: usize = 108;
    pub const DATA_DIRECTORIES: usize = 112;
    /// The data directory of the attribute certificate table (a signature).
    pub const SECURITY_DIRECTORY: usize = 4;
}

/// The headers of a PE image: where things are, read from its first bytes and checked.
#[derive(Clone, Debug)]
struct Headers {
    /// Offset of the COFF header (after `PE\0\0`).
    coff: usize,
    /// Offset of the optional header.
    optional: usize,
    optional_size: usize,
    /// Offset of the section table.
    sections: usize,
    count: u16,
    machine: u16,
    pe32_plus: bool,
    section_alignment: u32,
    file_alignment: u32,
    size_of_headers: u32,
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

impl Headers {
    /// Reads the headers from `bytes`, the image's first bytes (at least its `SizeOfHeaders`,
    /// or the whole image when shorter).
    fn parse(bytes: &[u8]) -> Result<Headers> {
        let bad = |what: &str| Error::input(format!("not a PE image: {what}"));
        if bytes.get(..2) != Some(b"MZ") {
            return Err(bad("it does not start with `MZ`"));
        }
        let pe = u32_at(bytes, 0x3c).ok_or_else(|| bad("it is shorter than a DOS header"))? as usize;
        if bytes.get(pe..pe.saturating_add(4)) != Some(b"PE\0\0") {
            return Err(bad("no `PE` signature where the DOS header points"));
        }
        let coff = pe + 4;
        let short = || bad("its headers are cut short");
        let machine = u16_at(bytes, coff).ok_or_else(short)?;
        let count = u16_at(bytes, coff + 2).ok_or_else(short)?;
        let optional_size = u16_at(bytes, coff + 16).ok_or_else(short)? as usize;
        let optional = coff + COFF_HEADER;
        if count > MAX_SECTIONS {
            return Err(bad(&format!("{count} sections, more than the {MAX_SECTIONS} an image may have")));
        }
        let magic = u16_at(bytes, optional + opt::MAGIC).ok_or_else(short)?;
        let pe32_plus = magic == PE32_PLUS;
        // PE32 has a 4-byte BaseOfData where PE32+ widens ImageBase: the fields read here sit
        // at the same offsets in both up to the data directories, which move by 16.
        if magic != PE32_PLUS && magic != 0x10b {
            return Err(bad(&format!("unknown optional header magic {magic:#x}")));
        }
        let minimum = if pe32_plus { opt::DATA_DIRECTORIES } else { opt::DATA_DIRECTORIES - 16 };
        if optional_size < minimum {
            return Err(bad(&format!("an optional header of {optional_size} bytes, shorter than {minimum}")));
        }
        let sections = optional + optional_size;
        let table_end = sections + SECTION_HEADER * count as usize;
        if bytes.len() < table_end {
            return Err(short());
        }
        let section_alignment = u32_at(bytes, optional + opt::SECTION_ALIGNMENT).ok_or_else(short)?;
        let file_alignment = u32_at(bytes, optional + opt::FILE_ALIGNMENT).ok_or_else(short)?;
        let size_of_headers = u32_at(bytes, optional + opt::SIZE_OF_HEADERS).ok_or_else(short)?;
        for (name, value) in [("SectionAlignment", section_alignment), ("FileAlignment", file_alignment)] {
            if !value.is_power_of_two() || value > 1 << 16 {
                return Err(bad(&format!("{name} {value:#x} is not a power of two up to 64 KiB")));
            }
        }
        Ok(Headers {
            coff,
            optional,
            optional_size,
            sections,
            count,
            machine,
            pe32_plus,
            section_alignment,
            file_alignment,
            size_of_headers,
        })
    }

    /// The data directory `index` (address, size), if the header has it.
    fn directory(&self, bytes: &[u8], index: usize) -> Option<(u32, u32)> {
        let base = if self.pe32_plus { opt::DATA_DIRECTORIES } else { opt::DATA_DIRECTORIES - 16 };
        let count_at = if self.pe32_plus { opt::NUMBER_OF_RVA_AND_SIZES } else { opt::NUMBER_OF_RVA_AND_SIZES - 16 };
        let count = u32_at(bytes, self.optional + count_at)? as usize;
        if index >= count || base + 8 * (index + 1) > self.optional_size {
            return None;
        }
        let at = self.optional + base + 8 * index;
        Some((u32_at(bytes, at)?, u32_at(bytes, at + 4)?))
    }
}

/// Checks that `head` (a kernel's first 4 KiB or more) is an x86 bzImage the stub can start:
/// a PE image (the kernel's own EFI stub) with the boot protocol's `HdrS` setup header.
pub fn check_bzimage(head: &[u8]) -> Result<()> {
    if head.get(0x202..0x206) != Some(b"HdrS") {
        return Err(Error::input("not an x86 bzImage: no `HdrS` setup header at byte 0x202"));
    }
    let headers = Headers::parse(head).map_err(|e| e.context("not a kernel with an EFI stub"))?;
    if headers.machine != MACHINE_X86_64 {
        return Err(Error::input(format!("a kernel for machine {:#06x}, not x86-64", headers.machine)));
    }
    Ok(())
}

/// The sections a unified kernel image adds to its stub: a stub that has one already is a
/// unified kernel image itself.
pub const UKI_SECTIONS: [&str; 5] = [".osrel", ".cmdline", ".uname", ".initrd", ".linux"];

/// Checks that `stub` is systemd's EFI stub and sections can be added to it: an x86-64 PE32+
/// EFI application, unsigned, with room for `new` more section headers, with the `.sdmagic`
/// section that marks systemd's stub, and none of the sections a unified kernel image adds.
pub fn check_stub(stub: &[u8], new: usize) -> Result<()> {
    write::plan(stub, new)?;
    let image = read(std::io::Cursor::new(stub))?;
    let names: Vec<&str> = image.sections.iter().map(|s| s.name.as_str()).collect();
    if !names.contains(&".sdmagic") {
        return Err(Error::input(format!(
            "not systemd's EFI stub: it has no `.sdmagic` section (its sections: {})",
            names.join(", ")
        )));
    }
    if let Some(taken) = names.iter().find(|n| UKI_SECTIONS.contains(n)) {
        return Err(Error::input(format!("a unified kernel image already (it has a `{taken}` section), not a stub")));
    }
    Ok(())
}

fn align(value: u64, to: u64) -> u64 {
    value.div_ceil(to) * to
}
