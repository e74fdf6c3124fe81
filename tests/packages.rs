//! `packages` layers, `bake lock` and the SBOM, end to end and offline: each test publishes a
//! small apt archive of hand-made packages in a temporary folder (a flat `file:` repository),
//! points apt at it with `APT_CONFIG`, and drives the real `bake` and the real `apt-get`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A package in the fixture archive.
struct Pkg {
    name: String,
    version: String,
    arch: String,
    fields: String,
    deb: Vec<u8>,
}

/// A flat apt archive and an apt configuration that uses only it.
struct Archive {
    dir: tempfile::TempDir,
    packages: Vec<Pkg>,
}

const MIT_COPYRIGHT: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
Upstream-Name: tool\n\nFiles: *\nCopyright: 2026 Someone\nLicense: Expat\n\nLicense: Expat\n Permission is hereby granted...\n";

impl Archive {
    fn new() -> Archive {
        require_tool("apt-get");
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["repo", "etc/apt.conf.d", "etc/sources.list.d", "etc/preferences.d", "state/lists/partial", "log"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("state/status"), "").unwrap();
        std::fs::write(
            root.join("etc/sources.list"),
            format!("deb [trusted=yes] file:{} ./\n", root.join("repo").display()),
        )
        .unwrap();
        let r = root.display();
        std::fs::write(
            root.join("apt.conf"),
            format!(
                "Dir::Etc \"{r}/etc/\";\nDir::State \"{r}/state/\";\nDir::State::status \"{r}/state/status\";\n\
                 Dir::Cache \"{r}/apt-cache/\";\nDir::Log \"{r}/log/\";\nAPT::Architecture \"amd64\";\n\
                 APT::Architectures {{ \"amd64\"; }};\nAcquire::Languages \"none\";\nAPT::Sandbox::User \"root\";\n\
                 Debug::NoLocking \"true\";\n"
            ),
        )
        .unwrap();
        Archive { dir, packages: Vec::new() }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Adds (or replaces) an amd64 package shipping `files`, with extra control `fields`.
    fn add(&mut self, name: &str, version: &str, fields: &str, files: &[(&str, &[u8])]) -> &mut Self {
        self.add_for("amd64", name, version, fields, files)
    }

    fn add_for(&mut self, arch: &str, name: &str, version: &str, fields: &str, files: &[(&str, &[u8])]) -> &mut Self {
        let mut tar = TarMaker::new();
        for (path, data) in files {
            tar.file(&format!(".{path}"), 0o755, 0, 0, data);
        }
        self.packages.retain(|p| p.name != name);
        self.packages.push(Pkg {
            name: name.into(),
            version: version.into(),
            arch: arch.into(),
            fields: fields.into(),
            deb: deb(&tar.finish()),
        });
        self
    }

    /// Writes the archive's files and runs `apt-get update` on it.
    fn publish(&self) {
        let repo = self.root().join("repo");
        for old in std::fs::read_dir(&repo).unwrap() {
            std::fs::remove_file(old.unwrap().path()).unwrap();
        }
        let mut index = String::new();
        for p in &self.packages {
            let file = format!("{}_{}_{}.deb", p.name, p.version.replace(':', "%3a"), p.arch);
            std::fs::write(repo.join(&file), &p.deb).unwrap();
            index.push_str(&format!(
                "Package: {}\nVersion: {}\nArchitecture: {}\n{}Filename: ./{file}\nSize: {}\nSHA256: {}\n\
                 Description: fixture\n\n",
                p.name,
                p.version,
                p.arch,
                p.fields,
                p.deb.len(),
                sha256_hex(&p.deb)
            ));
        }
        std::fs::write(repo.join("Packages"), &index).unwrap();
        let release = format!(
            "Suite: fixture\nDate: Thu, 01 Jan 2026 00:00:00 UTC\nSHA256:\n {} {} Packages\n",
            sha256_hex(index.as_bytes()),
            index.len()
        );
        std::fs::write(repo.join("Release"), release).unwrap();
        run_ok(Command::new("apt-get").args(["update", "-qq"]).env("APT_CONFIG", self.root().join("apt.conf")));
    }

    fn deb_sha256(&self, name: &str) -> String {
        sha256_hex(&self.packages.iter().find(|p| p.name == name).unwrap().deb)
    }

    /// `bake SUBCOMMAND` using this archive, with its cache in the fixture folder.
    fn bake(&self, subcommand: &str) -> Bake {
        Bake::new(subcommand)
            .env("APT_CONFIG", self.root().join("apt.conf"))
            .env("XDG_CACHE_HOME", self.root().join("xdg"))
    }

    /// `bake build RECIPE` using this archive.
    fn build(&self, recipe: &Path) -> Bake {
        self.bake("build").arg(recipe)
    }

    fn cache(&self) -> PathBuf {
        self.root().join("xdg/bake/debs")
    }
}

/// tool → libthing (>= 1.0) | libother, with base as a Pre-Depends and tool-data (for any
/// architecture) as a plain dependency.
fn archive() -> Archive {
    let mut a = Archive::new();
    a.add(
        "tool",
        "2.0-1",
        "Source: tool-src (2.0)\nPre-Depends: base\nDepends: libthing (>= 1.0) | libother, tool-data\n",
        &[("/usr/bin/tool", b"#!/bin/sh\necho tool\n"), ("/usr/share/doc/tool/copyright", MIT_COPYRIGHT.as_bytes())],
    )
    .add("libthing", "1.0-1", "", &[("/usr/lib/libthing.so.1", b"thing 1.0")])
    .add("libother", "1.0-1", "", &[("/usr/lib/libother.so.1", b"other")])
    .add("base", "1:5", "Essential: yes\n", &[("/etc/base-release", b"base 5\n")])
    .add_for("all", "tool-data", "2.0-1", "", &[("/usr/share/tool/data", b"data")]);
    a.publish();
    a
}

const RECIPE: &str = "[image]\nname = \"pk\"\nepoch = 1700000000\n[initramfs]\ncompression = \"gzip\"\n\
[[layer]]\npackages = [\"tool\"]\n[[file]]\npath = \"/init\"\nsource = \"init\"\n";

fn recipe_in(dir: &Path) -> PathBuf {
    std::fs::write(dir.join("init"), "#!/bin/sh\necho hi\n").unwrap();
    write_recipe(dir, RECIPE)
}

fn lock_text(recipe: &Path) -> String {
    std::fs::read_to_string(recipe.with_extension("lock")).unwrap()
}

#[test]
fn lock_pins_the_closure_in_dependency_order_and_twice_gives_the_same_file() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    let out = a.bake("lock").arg(&recipe).ok();
    assert!(out.stdout().contains("written: 4 packages, 1 other inputs pinned"), "{}", out.stdout());
    let first = lock_text(&recipe);
    // Pre-Depends first, then the first satisfiable alternative, then the package itself.
    let names: Vec<&str> = first.lines().filter_map(|l| l.strip_prefix("name = ")).collect();
    assert_eq!(names, ["\"base\"", "\"libthing\"", "\"tool-data\"", "\"tool\""], "{first}");
    assert!(first.contains("architecture = \"all\""), "{first}");
    assert!(!first.contains("libother"), "the second alternative is not taken: {first}");
    assert!(first.contains(&format!("sha256 = \"{}\"", a.deb_sha256("tool"))), "{first}");
    assert!(first.contains("version = \"1:5\""), "{first}");
    assert!(
        first.contains(&format!(
            "kind = \"file\"\npath = \"init\"\nsha256 = \"{}\"",
            sha256_hex(b"#!/bin/sh\necho hi\n")
        ))
    );
    let out = a.bake("lock").arg(&recipe).ok();
    assert!(out.stdout().contains("unchanged"), "{}", out.stdout());
    assert_eq!(lock_text(&recipe), first);
    // The closure is laid in, and the recipe's own file.
    let built = tempfile::tempdir().unwrap();
    a.build(&recipe).arg("--locked").out(built.path()).ok();
    let names: Vec<String> = cpio_list(&decompress(&built.path().join("pk.cpio.gz")));
    for wanted in ["usr/bin/tool", "usr/lib/libthing.so.1", "etc/base-release", "usr/share/tool/data", "init"] {
        assert!(names.iter().any(|n| n.ends_with(wanted)), "`{wanted}` missing: {names:?}");
    }
    let manifest = manifest(built.path(), "pk");
    let inputs = manifest["inputs"].as_array().unwrap();
    assert!(inputs.iter().any(|i| i["type"] == "package" && i["path"] == "base_1:5_amd64.deb"), "{inputs:?}");
    // The cache keeps apt's file name, an epoch's `:` written `%3a`.
    assert!(a.cache().join("base_1%3a5_amd64.deb").is_file());
}

#[test]
fn a_lock_entry_the_recipe_no_longer_uses_is_stale() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let lock = lock_text(&recipe);
    // A second packages layer in the lock that the recipe does not have.
    let extra = lock.replace("[[layer]]\nlayer = 1\n", "[[layer]]\nlayer = 7\n");
    let layers = &extra[extra.find("[[layer]]").unwrap()..extra.find("[[input]]").unwrap()];
    std::fs::write(recipe.with_extension("lock"), lock.replace("[[input]]", &format!("{layers}[[input]]"))).unwrap();
    let out_dir = work.path().join("out");
    let err = a.build(&recipe).arg("--locked").out(&out_dir).fails(2).stderr();
    assert!(err.contains("pins packages for layer 7, which the recipe no longer asks for"), "{err}");
    let out = a.build(&recipe).out(&out_dir).ok();
    assert!(out.stderr().contains("pins packages for layer 7"), "{}", out.stderr());
    // `bake lock` drops it.
    a.bake("lock").arg(&recipe).ok();
    assert_eq!(lock_text(&recipe), lock);
}

#[test]
fn a_lock_that_names_a_path_or_an_option_is_refused_before_use() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let lock = lock_text(&recipe);
    for (from, to) in [
        ("name = \"libthing\"", "name = \"../../../../etc/passwd\""),
        ("name = \"libthing\"", "name = \"-oDir=/tmp\""),
        ("version = \"1.0-1\"", "version = \"1.0/../x\""),
    ] {
        std::fs::write(recipe.with_extension("lock"), lock.replacen(from, to, 1)).unwrap();
        let err = a.build(&recipe).out(work.path().join("out")).fails(2).stderr();
        assert!(err.contains("recipe.lock`: `") && err.contains("bake lock --update"), "{to}: {err}");
    }
    // A sha256 that is not the archive's is never downloaded as if it were.
    let wrong = lock.replacen(&a.deb_sha256("libthing"), &"0".repeat(64), 1);
    std::fs::write(recipe.with_extension("lock"), wrong).unwrap();
    let err = a.build(&recipe).out(work.path().join("out")).fails(2).stderr();
    assert!(err.contains("`libthing` 1.0-1 (amd64): the archive now has sha256"), "{err}");
}

#[test]
fn the_sbom_lists_every_package_and_output_and_is_reproducible() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let (one, two) = (work.path().join("one"), work.path().join("two/x"));
    a.build(&recipe).out(&one).ok();
    a.build(&recipe).out(&two).arg("-j1").env("TZ", "Asia/Kathmandu").ok();
    let sbom = std::fs::read(one.join("pk.spdx.json")).unwrap();
    assert_eq!(sbom, std::fs::read(two.join("pk.spdx.json")).unwrap(), "the SBOM differs between two builds");
    assert_eq!(files_of(&one), files_of(&two));
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&one));
    assert!(std::fs::read_to_string(one.join("SHA256SUMS")).unwrap().contains("  pk.spdx.json\n"));

    let doc: serde_json::Value = serde_json::from_slice(&sbom).unwrap();
    assert_eq!(doc["spdxVersion"], "SPDX-2.3");
    assert_eq!(doc["dataLicense"], "CC0-1.0");
    assert_eq!(doc["SPDXID"], "SPDXRef-DOCUMENT");
    assert_eq!(doc["creationInfo"]["created"], "2023-11-14T22:13:20Z", "the epoch, not the clock");
    assert!(doc["documentNamespace"].as_str().unwrap().starts_with("https://"));
    let packages = doc["packages"].as_array().unwrap();
    let find = |name: &str| packages.iter().find(|p| p["name"] == name).unwrap_or_else(|| panic!("{name}: {doc:#}"));
    let tool = find("tool");
    assert_eq!(tool["versionInfo"], "2.0-1");
    assert_eq!(tool["checksums"][0]["algorithm"], "SHA256");
    assert_eq!(tool["checksums"][0]["checksumValue"], a.deb_sha256("tool"));
    assert_eq!(tool["licenseDeclared"], "MIT", "Expat in a machine-readable copyright file is MIT");
    assert!(tool["sourceInfo"].as_str().unwrap().contains("tool-src"), "{tool:#}");
    let purl = tool["externalRefs"][0]["referenceLocator"].as_str().unwrap();
    assert_eq!(purl, "pkg:deb/debian/tool@2.0-1?arch=amd64");
    assert_eq!(find("libthing")["licenseDeclared"], "NOASSERTION", "no copyright file");
    let base = find("base");
    assert!(base["externalRefs"][0]["referenceLocator"].as_str().unwrap().contains("base@1:5"), "{base:#}");
    let image = find("pk.cpio.gz");
    let image_sha = sha256_hex(&std::fs::read(one.join("pk.cpio.gz")).unwrap());
    assert_eq!(image["checksums"][0]["checksumValue"], image_sha);
    for p in packages {
        for field in ["SPDXID", "name", "downloadLocation"] {
            assert!(p[field].is_string(), "package without `{field}`: {p:#}");
        }
    }
    assert!(!doc["relationships"].as_array().unwrap().is_empty());
}

#[test]
fn a_changed_input_is_refused_naming_the_file_and_locked_needs_a_lock() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    let out_dir = work.path().join("out");
    let err = a.build(&recipe).arg("--locked").out(&out_dir).fails(2).stderr();
    assert!(err.contains("recipe.lock` is missing") && err.contains("bake lock"), "{err}");
    a.bake("lock").arg(&recipe).ok();
    a.build(&recipe).arg("--locked").out(&out_dir).ok();
    let before = files_of(&out_dir);

    // One byte of one input.
    std::fs::write(work.path().join("init"), "#!/bin/sh\necho ho\n").unwrap();
    let err = a.build(&recipe).out(&out_dir).fails(2).stderr();
    assert!(err.contains("file `init` has sha256") && err.contains("recipe.lock` pins"), "{err}");
    assert_eq!(files_of(&out_dir), before, "a refused build leaves the outputs as they were");
    // Re-locking accepts the change.
    a.bake("lock").arg(&recipe).ok();
    a.build(&recipe).arg("--locked").out(&out_dir).ok();

    // A request the lock does not cover: a warning, or an error under --locked.
    std::fs::write(&recipe, RECIPE.replace("[\"tool\"]", "[\"tool\", \"libother\"]")).unwrap();
    let err = a.build(&recipe).arg("--locked").out(&out_dir).fails(2).stderr();
    assert!(err.contains("does not pin the packages of layer 1"), "{err}");
    let out = a.build(&recipe).out(&out_dir).ok();
    assert!(out.stderr().contains("does not pin the packages of layer 1"), "{}", out.stderr());
}

#[test]
fn a_version_the_archive_replaced_says_how_to_update_the_lock() {
    let mut a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    // The archive moves on (a point release), and this machine has never fetched the old one.
    a.add("libthing", "1.1-1", "", &[("/usr/lib/libthing.so.1", b"thing 1.1")]);
    a.publish();
    std::fs::remove_dir_all(a.cache()).ok();
    let err = a.build(&recipe).out(work.path().join("out")).fails(2).stderr();
    assert!(err.contains("`libthing` 1.0-1 (amd64) is no longer offered"), "{err}");
    assert!(err.contains("apt offers 1.1-1 now") && err.contains("bake lock --update"), "{err}");
    // `bake lock` keeps the pins of an unchanged request; `--update` moves them.
    a.bake("lock").arg(&recipe).run();
    assert!(lock_text(&recipe).contains("version = \"1.0-1\""));
    a.bake("lock").arg("--update").arg(&recipe).ok();
    let lock = lock_text(&recipe);
    assert!(lock.contains("version = \"1.1-1\"") && !lock.contains("1.0-1"), "{lock}");
    a.build(&recipe).arg("--locked").out(work.path().join("out")).ok();
}

#[test]
fn a_locked_recipe_builds_from_the_cache_without_apt() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let first = work.path().join("first");
    a.build(&recipe).out(&first).ok();
    // A cached file that was tampered with is fetched again, never used.
    let cached = a.cache().join("libthing_1.0-1_amd64.deb");
    std::fs::write(&cached, b"not a package").unwrap();
    a.build(&recipe).out(&first).ok();
    assert_eq!(sha256_hex(&std::fs::read(&cached).unwrap()), a.deb_sha256("libthing"));
    // No apt at all: an empty PATH.
    let second = work.path().join("second");
    a.build(&recipe).out(&second).env("PATH", "").ok();
    assert_eq!(files_of(&first), files_of(&second));
    // Without the cache, apt is needed, and its absence is a clear error.
    std::fs::remove_dir_all(a.cache()).unwrap();
    let err = a.build(&recipe).out(&second).env("PATH", "").fails(2).stderr();
    assert!(err.contains("cannot run `apt-config`") && err.contains("need apt"), "{err}");
}

#[test]
fn an_unresolvable_dependency_names_the_chain_and_the_recipe_line() {
    let mut a = archive();
    a.add("broken", "1", "Depends: tool, libmissing (>= 2)\n", &[("/usr/bin/broken", b"x")]);
    a.publish();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("init"), "x").unwrap();
    let recipe = write_recipe(
        work.path(),
        "[image]\nname = \"b\"\n[initramfs]\n[[layer]]\npackages = [\"broken\"]\n[[file]]\npath = \"/init\"\nsource = \"init\"\n",
    );
    let err = a.bake("lock").arg(&recipe).fails(2).stderr();
    assert!(err.contains("recipe.toml:5:"), "names the line of `packages`: {err}");
    assert!(err.contains("`broken`") && err.contains("libmissing"), "names the chain: {err}");
    assert!(!recipe.with_extension("lock").exists(), "no lock is written for an unresolvable recipe");
    let err = a.build(&recipe).out(work.path().join("out")).fails(2).stderr();
    assert!(err.contains("libmissing"), "{err}");
    assert!(!work.path().join("out").exists());
}

#[test]
fn verify_rebuilds_a_package_recipe_identically() {
    let a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let out = a.bake("verify").arg("--locked").arg(&recipe).ok();
    let stdout = out.stdout();
    assert!(stdout.contains("pk.spdx.json") && stdout.contains("reproducible: pk, 4 outputs identical"), "{stdout}");
    // The lock too is the same from another folder, another environment, another list order.
    let copy = tempfile::tempdir().unwrap();
    let moved = recipe_in(copy.path());
    let out = a.bake("lock").arg("recipe.toml").current_dir(copy.path()).env("TZ", "Asia/Kathmandu").ok();
    assert!(out.stdout().contains("written"));
    assert_eq!(lock_text(&moved), lock_text(&recipe));
}

#[test]
fn a_kernel_named_by_package_follows_its_metapackage_and_is_locked() {
    let mut a = archive();
    // As Debian ships them: a metapackage that depends on the versioned image package, whose own
    // dependencies (kmod, initramfs-tools) bake does not need and does not fetch.
    a.add("linux-image-fake", "9", "Depends: linux-image-1.0-fake (= 1.0-1)\n", &[]).add(
        "linux-image-1.0-fake",
        "1.0-1",
        "Depends: kmod, initramfs-tools | linux-initramfs-tool\n",
        &[
            ("/boot/vmlinuz-1.0-fake", b"fake kernel"),
            ("/lib/modules/1.0-fake/modules.builtin", b"kernel/fs/fakefs.ko\n"),
        ],
    );
    a.publish();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    let text = format!("{RECIPE}[kernel]\npackage = \"linux-image-fake\"\nmodules = [\"fakefs\"]\n");
    std::fs::write(&recipe, text).unwrap();
    a.bake("lock").arg(&recipe).ok();
    let lock = lock_text(&recipe);
    assert!(lock.contains("[kernel]\nrequest = \"linux-image-fake\""), "{lock}");
    assert!(lock.contains("[kernel.package]\nname = \"linux-image-1.0-fake\""), "{lock}");
    assert!(!lock.contains("kind = \"package\""), "packages are pinned as packages, not as other inputs: {lock}");
    let out = work.path().join("out");
    a.build(&recipe).arg("--locked").out(&out).ok();
    assert_eq!(std::fs::read(out.join("pk.vmlinuz")).unwrap(), b"fake kernel");
    let manifest = manifest(&out, "pk");
    assert_eq!(manifest["kernel"]["package"], "linux-image-1.0-fake_1.0-1_amd64.deb");
    assert_eq!(manifest["kernel"]["builtin"][0], "fakefs");
    let sbom: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("pk.spdx.json")).unwrap()).unwrap();
    let names: Vec<&str> = sbom["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"linux-image-1.0-fake") && names.contains(&"tool"), "{names:?}");
    // A `sha256` pins only a `deb`.
    std::fs::write(&recipe, format!("{RECIPE}[kernel]\npackage = \"linux-image-fake\"\nsha256 = \"00\"\n")).unwrap();
    let err = a.build(&recipe).out(&out).fails(2).stderr();
    assert!(err.contains("a kernel `package` is pinned in the lock file"), "{err}");
}

/// The build cache follows the lock: a package the lock moves to another version is a miss,
/// and the outputs after it are a fresh build's.
#[test]
fn a_lock_update_misses_the_build_cache() {
    let mut a = archive();
    let work = tempfile::tempdir().unwrap();
    let recipe = recipe_in(work.path());
    a.bake("lock").arg(&recipe).ok();
    let out = work.path().join("out");
    let cached = |a: &Archive| -> bool {
        let output = a.build(&recipe).allow_cache().arg("--json").out(&out).ok();
        output.json()["cached"].as_bool().unwrap()
    };
    assert!(!cached(&a));
    assert!(cached(&a));
    a.add("libthing", "1.1-1", "", &[("/usr/lib/libthing.so.1", b"thing 1.1")]);
    a.publish();
    // A new version in the archive changes nothing while the lock pins the old one.
    assert!(cached(&a));
    a.bake("lock").arg("--update").arg(&recipe).ok();
    assert!(!cached(&a), "the lock moved libthing to 1.1-1, yet the old image was served");
    let manifest = std::fs::read_to_string(out.join("pk.manifest.json")).unwrap();
    assert!(manifest.contains("libthing_1.1-1"), "{manifest}");
    let fresh = work.path().join("fresh");
    a.build(&recipe).arg("--no-cache").out(&fresh).ok();
    assert_eq!(
        std::fs::read_to_string(out.join("SHA256SUMS")).unwrap(),
        std::fs::read_to_string(fresh.join("SHA256SUMS")).unwrap()
    );
}

#[test]
fn resolutions_are_remembered_until_apt_lists_change() {
    let mut a = archive();
    let dir = tempfile::tempdir().unwrap();
    let recipe = recipe_in(dir.path());
    let build = |a: &Archive| a.build(&recipe).out(dir.path().join("out")).arg("-v").allow_cache().ok().stderr();
    let first = build(&a);
    assert!(first.contains("apt package lists") && first.contains("`tool` 2.0-1"), "{first}");
    // The same lists: the resolution is remembered, apt's lists are not read at all.
    let second = build(&a);
    assert!(!second.contains("apt package lists") && second.contains("`tool` 2.0-1"), "{second}");
    assert!(second.contains("layer 1: 1 packages resolve to 4"), "{second}");
    // `apt-get update` brings a new version: the lists changed, so they are read again.
    a.add("tool", "2.1-1", "Pre-Depends: base\nDepends: libthing, tool-data\n", &[("/usr/bin/tool", b"2.1")]);
    a.publish();
    let third = build(&a);
    assert!(third.contains("apt package lists") && third.contains("`tool` 2.1-1"), "{third}");
    // --no-cache never uses what was remembered.
    let fresh = a.build(&recipe).out(dir.path().join("fresh")).arg("-v").arg("--no-cache").allow_cache().ok().stderr();
    assert!(fresh.contains("apt package lists"), "{fresh}");
}
