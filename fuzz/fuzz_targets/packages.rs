//! apt's package lists and the dependency resolver: any Packages text must give an index or an
//! error, and resolving any name against it must give an order or an error, never a panic or a
//! loop.
#![no_main]

use bake::debian::index::Index;
use bake::debian::resolve::{Request, Variant, resolve};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut index = Index::new("amd64");
    if index.add(text, "fuzz/Packages").is_err() {
        return;
    }
    // Every package the list offers, as a root: the closure must come out in order, each once.
    let names: Vec<String> = index.names().take(8).map(str::to_string).collect();
    // Each as a root, and once with a variant (every Essential and required package too).
    for (i, name) in names.iter().enumerate() {
        let variant = (i == 0).then_some(Variant::Minbase);
        let request = Request { packages: std::slice::from_ref(name), exclude: &[], recommends: true, variant };
        if let Ok(resolution) = resolve(&index, &request) {
            let mut seen = std::collections::BTreeSet::new();
            for package in &resolution.packages {
                assert!(seen.insert(&package.name), "`{}` twice in one closure", package.name);
            }
        }
    }
});
