use super::*;
use crate::base::hash::digest_bytes;

/// A minimal x86-64 EFI application: DOS header, PE32+ headers in 0x400 bytes, one `.text`
/// section of 0x200 bytes at 0x1000.
fn stub() -> Vec<u8> {
    let mut image = vec![0u8; 0x600];
    image[..2].copy_from_slice(b"MZ");
    image[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    image[0x40..0x44].copy_from_slice(b"PE\0\0");
    let coff = 0x44;
    image[coff..coff + 2].copy_from_slice(&MACHINE_X86_64.to_le_bytes());
    image[coff + 2..coff + 4].copy_from_slice(&1u16.to_le_bytes());
    image[coff + 4..coff + 8].copy_from_slice(&0x1234_5678u32.to_le_bytes());
    image[coff + 16..coff + 18].copy_from_slice(&240u16.to_le_bytes());
    let optional = coff + COFF_HEADER;
    let put = |image: &mut Vec<u8>, at: usize, value: u32| {
        image[optional + at..optional + at + 4].copy_from_slice(&value.to_le_bytes())
    };
    image[optional..optional + 2].copy_from_slice(&PE32_PLUS.to_le_bytes());
    put(&mut image, opt::SIZE_OF_INITIALIZED_DATA, 0x200);
    put(&mut image, opt::SECTION_ALIGNMENT, 0x200);
    put(&mut image, opt::FILE_ALIGNMENT, 0x200);
    put(&mut image, opt::SIZE_OF_IMAGE, 0x1200);
    put(&mut image, opt::SIZE_OF_HEADERS, 0x400);
    put(&mut image, opt::CHECKSUM, 0xabcd);
    image[optional + opt::SUBSYSTEM..optional + opt::SUBSYSTEM + 2].copy_from_slice(&10u16.to_le_bytes());
    put(&mut image, opt::NUMBER_OF_RVA_AND_SIZES, 16);
    let section = optional + 240;
    image[section..section + 5].copy_from_slice(b".text");
    for (offset, value) in [(8, 0x1f0u32), (12, 0x1000), (16, 0x200), (20, 0x400), (36, 0x6000_0020)] {
        image[section + offset..section + offset + 4].copy_from_slice(&value.to_le_bytes());
    }
    for (i, byte) in image[0x400..0x5f0].iter_mut().enumerate() {
        *byte = i as u8;
    }
    image
}

fn with_sections(stub: &[u8], sections: &[(&str, &[u8])]) -> crate::base::error::Result<Vec<u8>> {
    let mut readers: Vec<&[u8]> = sections.iter().map(|(_, data)| *data).collect();
    let mut list: Vec<Section> = sections
        .iter()
        .zip(readers.iter_mut())
        .map(|((name, data), reader)| Section { name, size: data.len() as u64, contents: reader })
        .collect();
    write(stub, &mut list, Vec::new())
}

#[test]
fn sections_follow_the_stub_in_order_aligned_and_the_stub_is_unchanged_but_for_its_counts() {
    let stub = stub();
    let kernel = vec![7u8; 5000];
    let out = with_sections(&stub, &[(".osrel", b"ID=x\n"), (".cmdline", b"root=x"), (".linux", &kernel)]).unwrap();
    let image = read(std::io::Cursor::new(&out)).unwrap();
    let names: Vec<&str> = image.sections.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [".text", ".osrel", ".cmdline", ".linux"]);
    let [text, osrel, cmdline, linux] = &image.sections[..] else { panic!() };
    assert_eq!(text.sha256, digest_bytes(&stub[0x400..0x5f0]));
    assert_eq!((osrel.address, osrel.file_offset, osrel.virtual_size, osrel.file_size), (0x2000, 0x600, 5, 0x200));
    assert_eq!((cmdline.address, cmdline.file_offset), (0x3000, 0x800));
    assert_eq!((linux.address, linux.file_offset, linux.file_size), (0x4000, 0xa00, 5120));
    assert_eq!(linux.sha256, digest_bytes(&kernel));
    assert_eq!(cmdline.characteristics, DATA_READ_ONLY);
    assert_eq!(image.size_of_image, 0x6000, "the last section's pages");
    assert_eq!(out.len(), 0xa00 + 5120);
    // Only the counts, sizes, checksum and new headers differ from the stub.
    let optional = 0x44 + COFF_HEADER;
    let changed: Vec<usize> = (0..stub.len()).filter(|&i| stub[i] != out[i]).collect();
    let allowed = |i: usize| {
        i == 0x46
            || (optional + opt::SIZE_OF_INITIALIZED_DATA..optional + opt::SIZE_OF_INITIALIZED_DATA + 4).contains(&i)
            || (optional + opt::SIZE_OF_IMAGE..optional + opt::SIZE_OF_IMAGE + 4).contains(&i)
            || (optional + opt::CHECKSUM..optional + opt::CHECKSUM + 4).contains(&i)
            || (optional + 240 + 40..optional + 240 + 4 * 40).contains(&i)
    };
    assert!(changed.iter().all(|&i| allowed(i)), "changed bytes {changed:x?}");
    assert_eq!(u32_at(&out, optional + opt::SIZE_OF_INITIALIZED_DATA), Some(0x200 + 0x200 + 0x200 + 5120));
    assert_eq!(u32_at(&out, optional + opt::CHECKSUM), Some(0));
    // The same inputs give the same bytes.
    assert_eq!(
        out,
        with_sections(&stub, &[(".osrel", b"ID=x\n"), (".cmdline", b"root=x"), (".linux", &kernel)]).unwrap()
    );
}

#[test]
fn stubs_it_cannot_extend_are_refused_naming_why() {
    let good = stub();
    let error = |stub: &[u8]| with_sections(stub, &[(".linux", b"k")]).unwrap_err().to_string();
    assert!(error(b"ELF").contains("does not start with `MZ`"));
    assert!(error(&good[..0x50]).contains("cut short"));
    let mut signed = good.clone();
    let security = 0x44 + COFF_HEADER + opt::DATA_DIRECTORIES + 8 * opt::SECURITY_DIRECTORY;
    signed[security + 4..security + 8].copy_from_slice(&100u32.to_le_bytes());
    assert!(error(&signed).contains("signed"), "{}", error(&signed));
    let mut full = good.clone();
    full[0x44 + COFF_HEADER + opt::SIZE_OF_HEADERS..][..4].copy_from_slice(&0x180u32.to_le_bytes());
    assert!(error(&full).contains("no room"), "{}", error(&full));
    let mut arm = good.clone();
    arm[0x44..0x46].copy_from_slice(&0xaa64u16.to_le_bytes());
    assert!(error(&arm).contains("0xaa64"));
    let mut app = good;
    app[0x44 + COFF_HEADER + opt::SUBSYSTEM] = 3;
    assert!(error(&app).contains("not an EFI application"));
    assert!(with_sections(&stub(), &[(".toolongname", b"x")]).is_err());
}

#[test]
fn a_stub_must_be_systemds_and_not_a_unified_kernel_image_already() {
    let plain = stub();
    assert!(check_stub(&plain, 5).unwrap_err().to_string().contains("no `.sdmagic` section (its sections: .text)"));
    let mut marked = plain.clone();
    let name = 0x44 + COFF_HEADER + 240;
    marked[name..name + 8].copy_from_slice(b".sdmagic");
    check_stub(&marked, 5).unwrap();
    let uki = with_sections(&marked, &[(".linux", b"kernel")]).unwrap();
    assert!(check_stub(&uki, 5).unwrap_err().to_string().contains("already (it has a `.linux` section)"));
}

#[test]
fn a_bzimage_needs_its_setup_header_and_a_pe_header() {
    let mut kernel = stub();
    assert!(check_bzimage(&kernel).unwrap_err().to_string().contains("HdrS"));
    kernel[0x202..0x206].copy_from_slice(b"HdrS");
    check_bzimage(&kernel).unwrap();
    kernel[0x3c] = 0xf0;
    assert!(check_bzimage(&kernel).is_err());
}

#[test]
fn a_hostile_image_is_an_error_never_a_panic() {
    let good = with_sections(&stub(), &[(".linux", b"kernel")]).unwrap();
    for cut in [0, 1, 2, 0x3c, 0x40, 0x45, 0x60, 0x200, 0x5ff, good.len() - 1] {
        let _ = read(std::io::Cursor::new(&good[..cut]));
    }
    let mut huge = good.clone();
    let last = 0x44 + COFF_HEADER + 240 + 40;
    huge[last + 8..last + 12].copy_from_slice(&u32::MAX.to_le_bytes());
    huge[last + 16..last + 20].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(read(std::io::Cursor::new(&huge)).unwrap_err().to_string().contains("claims bytes"));
    let mut many = good;
    many[0x46..0x48].copy_from_slice(&u16::MAX.to_le_bytes());
    assert!(read(std::io::Cursor::new(&many)).is_err());
}
