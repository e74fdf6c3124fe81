//! The input store: what bake read out of kernel packages, Debian packages and tar archives,
//! kept in the cache folder so later builds do not decompress them again. It must never change
//! an output byte, and a damaged store must be read again from the archive, not trusted.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// `bake build -v RECIPE` into `out` with the cache folder `cache`, the build cache emptied
/// first (so the build is a real one); returns SHA256SUMS and what bake said.
fn build_with_store(recipe: &Path, cache: &Path, out: &Path) -> (String, String) {
    let _ = std::fs::remove_dir_all(cache.join("builds"));
    let outcome = Bake::build(recipe).out(out).arg("--cache").arg(cache).arg("-v").allow_cache().ok();
    (std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(), outcome.stderr())
}

/// The entries of one kind in a store (`kernel`, `deb`, `tar`).
fn entries(cache: &Path, kind: &str) -> Vec<PathBuf> {
    let dir = cache.join("store").join(kind);
    let mut found: Vec<PathBuf> =
        std::fs::read_dir(dir).map(|d| d.map(|e| e.unwrap().path()).collect()).unwrap_or_default();
    found.sort();
    found
}

#[test]
fn every_example_builds_the_same_from_the_input_store() {
    let recipes: Vec<PathBuf> = all_recipes()
        .into_iter()
        .filter(|r| !r.starts_with(repo().join("qemu-tests/must-fail")))
        .filter(|r| {
            // Recipes that read an archive: packages, a `deb` or `tar` layer, a kernel.
            let text = std::fs::read_to_string(r).unwrap();
            let recipe: toml::Table = text.parse().unwrap();
            recipe.contains_key("kernel")
                || text.contains("packages =")
                || text.contains(".deb\"")
                || text.contains(".tar")
        })
        .collect();
    assert!(recipes.len() >= 8, "{recipes:?}");
    for recipe in recipes {
        let t = tempfile::tempdir().unwrap();
        let cache = own_cache(t.path());
        let shown = recipe.display();
        Bake::build(&recipe).out(t.path().join("fresh")).arg("--no-cache").ok();
        let fresh = std::fs::read_to_string(t.path().join("fresh/SHA256SUMS")).unwrap();
        // The first build reads the archives and files what it read in the store ...
        let (first, said) = build_with_store(&recipe, &cache, &t.path().join("first"));
        let kernel = said.contains("reading the kernel package");
        let archives = entries(&cache, "deb").len() + entries(&cache, "tar").len();
        assert!(kernel || archives > 0, "{shown}: nothing was stored: {said}");
        // ... the second reads it from there, and the bytes never differ.
        let (second, said) = build_with_store(&recipe, &cache, &t.path().join("second"));
        if kernel {
            assert!(
                said.contains("from the input store") && !said.contains("reading the kernel package"),
                "{shown}: {said}"
            );
        }
        assert_eq!(first, fresh, "{shown}");
        assert_eq!(second, fresh, "{shown}");
    }
}

#[test]
fn a_damaged_input_store_is_read_again_from_the_archives() {
    let t = tempfile::tempdir().unwrap();
    let cache = own_cache(t.path());
    let recipe = repo().join("qemu-tests/modules.toml");
    let (good, _) = build_with_store(&recipe, &cache, &t.path().join("out"));
    let kernel = &entries(&cache, "kernel")[0];
    let package = &entries(&cache, "deb")[0];
    let smallest = |entry: &Path| {
        let blobs: Vec<PathBuf> = std::fs::read_dir(entry.join("blobs")).unwrap().map(|e| e.unwrap().path()).collect();
        blobs.into_iter().min_by_key(|b| std::fs::metadata(b).unwrap().len()).unwrap()
    };
    let damage = |blob: &Path| {
        let mut bytes = std::fs::read(blob).unwrap();
        bytes[0] ^= 1;
        std::fs::write(blob, bytes).unwrap();
    };
    // A module's bytes, and a file of busybox's package, changed in the store: both dropped,
    // both archives read again, the same image.
    damage(&smallest(kernel));
    damage(&smallest(package));
    let (again, said) = build_with_store(&recipe, &cache, &t.path().join("out"));
    assert!(said.contains("reading the kernel package"), "{said}");
    assert_eq!(again, good);
    // Indexes that do not parse: the same.
    std::fs::write(kernel.join("index.json"), b"{\"version\":").unwrap();
    std::fs::write(package.join("index.json"), b"[").unwrap();
    let (again, said) = build_with_store(&recipe, &cache, &t.path().join("out"));
    assert!(said.contains("reading the kernel package"), "{said}");
    assert_eq!(again, good);
    // And the store is whole again for the next build.
    let (again, said) = build_with_store(&recipe, &cache, &t.path().join("out"));
    assert!(said.contains("from the input store"), "{said}");
    assert!(package.join("index.json").is_file() && std::fs::read(package.join("index.json")).unwrap().len() > 100);
    assert_eq!(again, good);
}
