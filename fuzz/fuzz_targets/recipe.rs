//! The recipe decoder: any text must give a recipe or an error with a place, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Err(error) = bake::recipe::parse(text)
    {
        assert!(error.offset <= text.len(), "an error offset past the end");
        assert!(!error.message.is_empty());
    }
});
