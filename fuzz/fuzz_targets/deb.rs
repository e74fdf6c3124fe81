//! The Debian package reader (ar, then a compressed tar): never a panic on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut spool = bake::content::Spool::new(dir.path().join("spool"));
    let mut tree = bake::tree::Tree::new();
    let origin = tree.origin("fuzz".into());
    let _ = bake::source::deb::read(data, "fuzz.deb", &mut tree, &mut spool, origin);
});
