//! The Debian package reader (ar, then a compressed tar; with its control files, as dpkg's
//! database needs them): never a panic on any bytes.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temporary folder");
    let mut spool = bake::source::content::Spool::new(dir.path().join("spool"));
    let mut tree = bake::plan::tree::Tree::new();
    let origin = tree.origin("fuzz".into());
    let _ = bake::source::deb::read(data, "fuzz.deb", &mut tree.sink(origin), &mut spool);
    let mut tree = bake::plan::tree::Tree::new();
    let origin = tree.origin("fuzz".into());
    if let Ok(installed) = bake::source::deb::read_installed(data, "fuzz.deb", &mut tree.sink(origin), &mut spool) {
        let control = [bake::debian::dpkg::Package { name: "fuzz", architecture: "amd64", control: &installed.control }];
        let _ = bake::debian::dpkg::status(&control);
    }
});
