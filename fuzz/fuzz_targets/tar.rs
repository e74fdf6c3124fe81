//! The tar layer reader (with its decompressors and the image tree's placement rules): any bytes
//! must be laid in or refused with an error, never a panic or a runaway.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut spool = bake::source::content::Spool::new(dir.path().join("spool"));
    let mut tree = bake::plan::tree::Tree::new();
    let origin = tree.origin("fuzz".into());
    let _ = bake::source::tar::read(data, "fuzz.tar", &mut tree.sink(origin), &mut spool);
});
