//! The image reader behind `bake inspect` and `bake diff`: cpio newc archives, compressed or
//! not, one after another. Never a panic or an unbounded allocation on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(segments) = bake::check::image::read(data) {
        let _ = bake::check::inspect::listing(&segments);
        let _ = bake::check::diff::compare(&segments, &segments, true);
    }
});
