//! The GPT reader behind `bake inspect` and `bake diff` of a disk: any bytes must give a
//! partition table or an error, and every partition it gives lies inside the image.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(table) = bake::format::gpt::read(std::io::Cursor::new(data)) {
        for p in &table.partitions {
            assert!(p.offset.checked_add(p.size).is_some_and(|end| end <= data.len() as u64), "{p:?}");
        }
    }
});
