//! The build cache: an unchanged recipe is served from it, every change to what the image is
//! made from misses it, and what it serves is always exactly what a fresh build makes.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::{Bake, Outcome, TarMaker, sha256_hex};

const RECIPE: &str = r#"[image]
name = "cached"

[initramfs]
compression = "gzip"

[[layer]]
dir = "rootfs"

[[layer]]
tar = "extra.tar"

[[file]]
path = "/etc/motd"
source = "motd"

[[file]]
path = "/etc/hostname"
content = "box\n"
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("rootfs");
        std::fs::create_dir_all(root.join("bin")).unwrap();
        std::fs::write(root.join("bin/tool"), b"#!/bin/sh\necho tool\n").unwrap();
        std::fs::set_permissions(root.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(root.join("data.txt"), b"aaaa\n").unwrap();
        std::os::unix::fs::symlink("data.txt", root.join("link")).unwrap();
        write_tar_layer(dir.path(), 0, b"from the tar\n");
        std::fs::write(dir.path().join("motd"), b"welcome\n").unwrap();
        std::fs::write(dir.path().join("recipe.toml"), RECIPE).unwrap();
        Fixture { dir }
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// `bake SUBCOMMAND --cache CACHE` with the cache allowed.
    fn bake(&self, subcommand: &str) -> Bake {
        Bake::new(subcommand).allow_cache().arg("--cache").arg(self.path("cache"))
    }

    /// Runs `bake build FLAGS --cache CACHE -o OUT recipe.toml` with the cache allowed (and
    /// `extra_env`), and requires it to succeed.
    fn run_build(&self, out: &str, flags: &[&str], extra_env: &[(&str, &str)]) -> Outcome {
        let bake = self.bake("build").args(flags).out(self.path(out)).arg(self.path("recipe.toml"));
        with_env(bake, extra_env).ok()
    }

    /// Builds with the cache into `out`; returns whether the outputs came from the cache and
    /// the text of `SHA256SUMS`.
    fn build(&self, out: &str, extra_env: &[(&str, &str)]) -> (bool, String) {
        let cached = was_cached(&self.run_build(out, &["-q", "--json"], extra_env));
        (cached, std::fs::read_to_string(self.path(out).join("SHA256SUMS")).unwrap())
    }

    /// A build that never touches the cache, into a fresh folder.
    fn fresh(&self, extra_env: &[(&str, &str)]) -> String {
        let out = tempfile::tempdir_in(self.dir.path()).unwrap();
        with_env(Bake::build(self.path("recipe.toml")).args(["-q", "--no-cache"]).out(out.path()), extra_env).ok();
        std::fs::read_to_string(out.path().join("SHA256SUMS")).unwrap()
    }
}

#[test]
fn an_unchanged_recipe_is_served_from_the_cache_with_the_same_bytes() {
    let f = Fixture::new();
    let (cached, first) = f.build("out", &[]);
    assert!(!cached, "the first build cannot come from an empty cache");
    let (cached, second) = f.build("out", &[]);
    assert!(cached, "an unchanged recipe was built again");
    assert_eq!(first, second);
    // Into another folder, from another working directory: still the same entry.
    let (cached, third) = f.build("elsewhere", &[]);
    assert!(cached);
    assert_eq!(first, third);
    assert_eq!(first, f.fresh(&[]), "the cache holds something a fresh build does not make");
    let summary = f.run_build("out", &[], &[]).stdout();
    assert!(summary.contains("(unchanged: from the build cache)"), "{summary}");
}

/// Each change is a miss; the build after it equals a fresh build; and building again hits.
#[test]
fn every_kind_of_change_misses_the_cache() {
    let f = Fixture::new();
    // Let the fixture's times settle, so the first build remembers the digests of its files
    // and the changes below are made to files whose digests bake would otherwise reuse.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    f.build("out", &[]);
    assert!(remembered_digests(&f) > 0);
    type Change<'a> = (&'a str, Box<dyn Fn(&Path)>, &'a [(&'a str, &'a str)]);
    let changes: Vec<Change> = vec![
        (
            "a file's content, same size",
            Box::new(|d| std::fs::write(d.join("rootfs/data.txt"), b"bbbb\n").unwrap()),
            &[],
        ),
        (
            "a file's exec bit (its mode in the image)",
            Box::new(|d| {
                std::fs::set_permissions(d.join("rootfs/data.txt"), std::fs::Permissions::from_mode(0o755)).unwrap()
            }),
            &[],
        ),
        ("a new file", Box::new(|d| std::fs::write(d.join("rootfs/new"), b"").unwrap()), &[]),
        ("a renamed file", Box::new(|d| std::fs::rename(d.join("rootfs/new"), d.join("rootfs/new2")).unwrap()), &[]),
        // Not `new2`: that would bring back the tree of two steps ago, which is cached, rightly.
        ("a removed file", Box::new(|d| std::fs::remove_file(d.join("rootfs/data.txt")).unwrap()), &[]),
        ("a new empty folder", Box::new(|d| std::fs::create_dir(d.join("rootfs/empty")).unwrap()), &[]),
        (
            "a symlink's target",
            Box::new(|d| {
                std::fs::remove_file(d.join("rootfs/link")).unwrap();
                std::os::unix::fs::symlink("bin/tool", d.join("rootfs/link")).unwrap();
            }),
            &[],
        ),
        (
            "a symlink replaced by the file it named",
            Box::new(|d| {
                std::fs::remove_file(d.join("rootfs/link")).unwrap();
                std::fs::write(d.join("rootfs/link"), b"#!/bin/sh\necho tool\n").unwrap();
            }),
            &[],
        ),
        ("a member of a tar layer", Box::new(|d| write_tar_layer(d, 0, b"from the TAR\n")), &[]),
        ("an owner inside a tar layer", Box::new(|d| write_tar_layer(d, 1000, b"from the TAR\n")), &[]),
        ("a `source` file", Box::new(|d| std::fs::write(d.join("motd"), b"WELCOME\n").unwrap()), &[]),
        (
            "the recipe's text",
            Box::new(|d| {
                let recipe = std::fs::read_to_string(d.join("recipe.toml")).unwrap();
                std::fs::write(d.join("recipe.toml"), recipe.replace("box\\n", "box2\\n")).unwrap();
            }),
            &[],
        ),
        (
            "the compression level",
            Box::new(|d| {
                let recipe = std::fs::read_to_string(d.join("recipe.toml")).unwrap();
                let recipe = recipe.replace("compression = \"gzip\"", "compression = \"gzip\"\nlevel = 1");
                std::fs::write(d.join("recipe.toml"), recipe).unwrap();
            }),
            &[],
        ),
        ("SOURCE_DATE_EPOCH (the recipe sets no epoch)", Box::new(|_| {}), &[("SOURCE_DATE_EPOCH", "1700000000")]),
    ];
    for (what, change, env) in changes {
        change(f.dir.path());
        let (cached, sums) = f.build("out", env);
        assert!(!cached, "changing {what} was served from the cache");
        assert_eq!(sums, f.fresh(env), "after changing {what}, the build differs from a fresh one");
        assert!(f.build("out", env).0, "after changing {what}, the next build was not cached");
    }
}

/// A host detail bake never takes (permission bits other than exec, times, owner) leaves the
/// image as it was, so the cached outputs are still exactly right.
#[test]
fn a_change_the_image_does_not_see_is_served_and_is_still_right() {
    let f = Fixture::new();
    let (_, before) = f.build("out", &[]);
    std::fs::set_permissions(f.path("rootfs/data.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let file = std::fs::File::options().append(true).open(f.path("rootfs/data.txt")).unwrap();
    file.set_modified(std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(86400)).unwrap();
    let (cached, after) = f.build("out", &[]);
    assert!(cached);
    assert_eq!(before, after);
    assert_eq!(after, f.fresh(&[]));
}

#[test]
fn a_damaged_cache_entry_is_dropped_and_the_image_built() {
    let f = Fixture::new();
    let (_, good) = f.build("out", &[]);
    let builds = f.path("cache/builds");
    let entry = std::fs::read_dir(&builds).unwrap().next().unwrap().unwrap().path();
    let image = entry.join("cached.cpio.gz");
    // Break the hard link first, as an editor saving the file would, then change a byte.
    let mut bytes = std::fs::read(&image).unwrap();
    std::fs::remove_file(&image).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&image, bytes).unwrap();
    let output = f.run_build("out", &["--json"], &[]);
    assert!(!was_cached(&output));
    let stderr = output.stderr();
    assert!(stderr.contains("is damaged") && stderr.contains("not the file that was cached"), "{stderr}");
    assert_eq!(std::fs::read_to_string(f.path("out/SHA256SUMS")).unwrap(), good);
    assert!(f.build("out", &[]).0, "the rebuilt outputs were not cached again");
}

#[test]
fn no_cache_and_verify_never_use_it() {
    let f = Fixture::new();
    f.build("out", &[]);
    assert!(!was_cached(&f.run_build("out", &["--json", "--no-cache"], &[])));
    assert!(!was_cached(&f.run_build("out", &["--json"], &[("BAKE_NO_CACHE", "1")])));
    // verify's first build is a real one, not the cache's: the cached manifest is forged, with
    // a record to match, so the entry passes for sound and a cached build serves it ...
    let forged = forge_cached_output(&f, "cached.manifest.json");
    assert!(f.build("forged", &[]).0, "the forged entry was not served");
    assert_eq!(std::fs::read(f.path("forged/cached.manifest.json")).unwrap(), forged);
    // ... yet verify, with the cache allowed, builds twice for real and finds both the same.
    f.bake("verify").arg(f.path("recipe.toml")).ok();
}

/// Whether a `bake build --json` says its outputs came from the cache.
fn was_cached(output: &Outcome) -> bool {
    output.json()["cached"].as_bool().unwrap()
}

/// `bake` with the extra environment variables `env`.
fn with_env(bake: Bake, env: &[(&str, &str)]) -> Bake {
    env.iter().fold(bake, |bake, (name, value)| bake.env(name, value))
}

/// Changes the bytes of `file` in the cache's only entry, and its `size` and `sha256` in the
/// entry's `record.json` to match (touching nothing else there, whatever else it holds), so
/// the entry still passes for sound. Returns the forged bytes.
fn forge_cached_output(f: &Fixture, file: &str) -> Vec<u8> {
    let entries: Vec<PathBuf> = std::fs::read_dir(f.path("cache/builds"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
        .collect();
    let [entry] = &entries[..] else { panic!("expected one cache entry: {entries:?}") };
    let path = entry.join(file);
    let mut forged = std::fs::read(&path).unwrap();
    forged.extend_from_slice(b"\nforged\n");
    // Remove it first: it may be a hard link to an output of the build that cached it.
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, &forged).unwrap();
    let record_path = entry.join("record.json");
    let mut record: serde_json::Value = serde_json::from_slice(&std::fs::read(&record_path).unwrap()).unwrap();
    let mut found = 0;
    for_each_object(&mut record, &mut |object| {
        if object.get("file").is_some_and(|name| name == file) {
            object.insert("size".into(), forged.len().into());
            object.insert("sha256".into(), sha256_hex(&forged).into());
            found += 1;
        }
    });
    assert_eq!(found, 1, "`{file}` in {record:#}");
    std::fs::write(&record_path, serde_json::to_vec_pretty(&record).unwrap()).unwrap();
    forged
}

/// Calls `visit` on every object in `json`, however deep.
fn for_each_object(
    json: &mut serde_json::Value,
    visit: &mut dyn FnMut(&mut serde_json::Map<String, serde_json::Value>),
) {
    match json {
        serde_json::Value::Object(object) => {
            visit(object);
            object.values_mut().for_each(|value| for_each_object(value, visit));
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(|value| for_each_object(value, visit)),
        _ => {}
    }
}

/// Writes the fixture's tar layer: one file, `opt/extra`, owned by `uid`.
fn write_tar_layer(dir: &Path, uid: u64, data: &[u8]) {
    let mut tar = TarMaker::new();
    tar.file("opt/extra", 0o644, uid, 0, data);
    std::fs::write(dir.join("extra.tar"), tar.finish()).unwrap();
}

/// How many bytes of remembered file digests the cache holds.
fn remembered_digests(f: &Fixture) -> u64 {
    std::fs::read_dir(f.path("cache/digests"))
        .map(|dir| dir.filter_map(|e| e.ok()?.metadata().ok()).map(|m| m.len()).sum())
        .unwrap_or(0)
}

/// The digest of a file unchanged since the last build is remembered rather than read again;
/// a write that keeps the file's size and puts its mtime back still gives a new change time,
/// so the file is read again and the build misses the cache.
#[test]
fn a_remembered_file_rewritten_with_its_old_size_and_mtime_still_misses() {
    let f = Fixture::new();
    std::thread::sleep(std::time::Duration::from_millis(2500));
    let (_, before) = f.build("out", &[]);
    assert!(remembered_digests(&f) > 0, "nothing was remembered");
    let path = f.path("rootfs/data.txt");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    std::fs::write(&path, b"cccc\n").unwrap();
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(mtime).unwrap();
    let (cached, after) = f.build("out", &[]);
    assert!(!cached, "a rewritten file was taken for unchanged");
    assert_ne!(before, after);
    assert_eq!(after, f.fresh(&[]));
}
