//! The EROFS reader behind `bake inspect` and `bake diff`: any bytes must give entries or an
//! error, never a panic, a huge allocation or an endless walk.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(entries) = bake::format::erofs::read(std::io::Cursor::new(data)) {
        assert!(entries.first().is_some_and(|root| root.name.is_empty()), "the root comes first");
    }
});
