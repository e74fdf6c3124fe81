//! apt's package lists and the dependency resolver: any Packages text must give an index or an
//! error, and resolving any name against it must give an order or an error, never a panic or a
//! loop.
#![no_main]

use bake::debian::index::Index;
use bake::debian::resolve::{Request, resolve};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut index = Index::new("amd64");
    if index.add(text, "fuzz/Packages").is_err() {
        return;
    }
    // Every package the list offers, as a root: the closure must come out in order, each once.
    let names: Vec<String> = index.names().take(8).map(str::to_string).collect();
    for name in &names {
        let request = Request { packages: std::slice::from_ref(name), exclude: &[], recommends: true };
        if let Ok(resolution) = resolve(&index, &request) {
            let mut seen = std::collections::BTreeSet::new();
            for package in &resolution.packages {
                assert!(seen.insert(&package.name), "`{}` twice in one closure", package.name);
            }
        }
    }
});
