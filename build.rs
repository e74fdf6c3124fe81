//! Names the source this `bake` is built from: a sha256 over `Cargo.toml`, `Cargo.lock` and
//! every file below `src/` (path and bytes, in path order), as `BAKE_SOURCE_DIGEST`. The build
//! cache keys start with it, so two builders running bake built from the same source agree on
//! every key (and share a remote cache), wherever and by whichever compiler it was built, and a
//! bake built from other source never takes another's outputs.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

fn main() {
    let root = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = vec![root.join("Cargo.toml"), root.join("Cargo.lock")];
    collect(&root.join("src"), &mut files);
    files.sort();
    let mut hasher = Sha256::new();
    for file in &files {
        let name = file.strip_prefix(&root).expect("below the root").to_string_lossy().into_owned();
        // A missing Cargo.lock (a library build elsewhere) hashes as empty.
        let bytes = std::fs::read(file).unwrap_or_default();
        for field in [name.as_bytes(), &bytes] {
            hasher.update((field.len() as u64).to_le_bytes());
            hasher.update(field);
        }
    }
    let digest: String = hasher.finalize().iter().map(|b| format!("{b:02x}")).collect();
    println!("cargo:rustc-env=BAKE_SOURCE_DIGEST={digest}");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=Cargo.toml");
    println!("cargo:rerun-if-changed=Cargo.lock");
}

fn collect(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, out);
        } else {
            out.push(path);
        }
    }
}
