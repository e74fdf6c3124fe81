//! The PE reader behind `bake inspect` and `bake diff` of a unified kernel image: any bytes must
//! give a section table or an error, and every section it gives lies inside the image.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(image) = bake::format::pe::read(std::io::Cursor::new(data)) {
        for s in &image.sections {
            assert!(u64::from(s.file_offset) + s.size <= data.len() as u64, "{s:?}");
        }
    }
});
