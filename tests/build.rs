//! `bake build` end to end: the real binary on real recipes, its outputs read back by
//! independent tools (GNU cpio, zstd/gzip/xz/lz4, sha256sum).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use common::*;

/// The golden digests of `recipes/skeleton.toml`, a recipe with no external inputs: the same on
/// every machine. A change here changes every user's image bytes, so it must be deliberate
/// (the last: zstd frames of known size, for `frames`).
const SKELETON_CPIO_ZST_SHA256: &str = "df952594b5202fa8bfcaed616e5b6540ff621d0833403fd84c581fd9a554f9c9";
/// The uncompressed archive inside it: independent of the compressor's version.
const SKELETON_CPIO_SHA256: &str = "0f48d528ae65f5c612024debeaffe5d7aa88dab636bd30e292d156bffe8bdf15";

/// The same skeleton written as a disk (`[disk]` appended): bake's own EROFS writer and GPT
/// layout, pinned like the archive, so a layout change between versions cannot go unnoticed.
const SKELETON_EROFS_SHA256: &str = "e98216c6c9b016a3ca4805c283d8db5e629d416b062c12d7f48a5e8b0bbecc0a";
const SKELETON_IMG_SHA256: &str = "6dee2635b2d7182e3d00fdcbf5a0bc0f693d5d7c4e9c5dea3ce1d1b9a348d5b9";

const COMPRESSORS: [&str; 5] = ["zstd", "gzip", "xz", "lz4", "none"];

#[test]
fn skeleton_recipe_has_the_golden_digest() {
    let tmp = tempfile::tempdir().unwrap();
    Bake::build(repo().join("recipes/skeleton.toml")).out(tmp.path()).ok();
    let image = tmp.path().join("skeleton.cpio.zst");
    let bytes = std::fs::read(&image).unwrap();
    assert_eq!(sha256_hex(&decompress(&image)), SKELETON_CPIO_SHA256, "uncompressed archive changed");
    assert_eq!(sha256_hex(&bytes), SKELETON_CPIO_ZST_SHA256, "compressed image changed");
}

#[test]
fn skeleton_disk_has_the_golden_digests() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(repo().join("recipes/skeleton.toml")).unwrap();
    let recipe = write_recipe(tmp.path(), &format!("{text}\n[disk]\npartition-table = \"gpt\"\n"));
    let out = tmp.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let digest = |file: &str| sha256_hex(&std::fs::read(out.join(file)).unwrap());
    assert_eq!(digest("skeleton.erofs"), SKELETON_EROFS_SHA256, "the EROFS image changed");
    assert_eq!(digest("skeleton.img"), SKELETON_IMG_SHA256, "the GPT disk changed");
}

/// The inputs of the fixture recipe: a tar layer with devices, owners, a merged-/usr symlink and a
/// hard link; a Debian package that installs through that symlink; a host directory; a source
/// file. `reverse` creates the host files in the opposite order with other permission bits (as a
/// checkout under umask 077 would) and other mtimes.
struct Fixture {
    dir: PathBuf,
}

const FIXTURE_RECIPE: &str = r#"
[image]
name = "fixture"
epoch = 1234567890

[initramfs]
compression = "COMPRESSION"

[[layer]]
tar = "base.tar.gz"
sha256 = "BASE_SHA256"

[[layer]]
deb = "pkg.deb"

[[layer]]
dir = "rootfs"

[[file]]
path = "/init"
source = "init.sh"

[[file]]
path = "/etc/motd"
content = "hello\n"
mode = "0600"
uid = 5
gid = 6

[[dir]]
path = "/srv/data"
mode = "2775"
uid = 33
gid = 33

[[symlink]]
path = "/sbin"
target = "bin"

[[hardlink]]
path = "/usr/bin/tool-hard"
target = "/usr/bin/tool"

[[device]]
path = "/dev/kmsg"
type = "char"
major = 1
minor = 11
mode = "0644"

[remove]
paths = ["/usr/share/doc/**"]
"#;

fn base_tar() -> Vec<u8> {
    let mut tar = TarMaker::new();
    tar.dir("./", 0o755, 0, 0)
        .symlink("./bin", "usr/bin")
        .dir("./usr/", 0o755, 0, 0)
        .dir("./usr/bin/", 0o755, 0, 0)
        .file("./usr/bin/prog", 0o4755, 0, 0, &noise(70_000, 1))
        .hardlink("./usr/bin/prog2", "./usr/bin/prog")
        .dir("./dev/", 0o755, 0, 0)
        .device("./dev/ttyS0", tar::EntryType::Char, 4, 64, 0o660, 5)
        .device("./dev/sda", tar::EntryType::Block, 8, 0, 0o660, 6)
        .device("./dev/initctl", tar::EntryType::Fifo, 0, 0, 0o600, 0)
        .dir("./home/alice/", 0o700, 1001, 1001)
        .file("./home/alice/notes.txt", 0o640, 1001, 1001, b"alice's notes\n");
    gzip(&tar.finish())
}

fn pkg_deb() -> Vec<u8> {
    let mut data = TarMaker::new();
    data.dir("./", 0o755, 0, 0)
        .dir("./bin/", 0o755, 0, 0)
        .file("./bin/hello-deb", 0o755, 0, 0, b"#!/bin/sh\necho hello from a package\n")
        .dir("./usr/", 0o755, 0, 0)
        .dir("./usr/share/", 0o755, 0, 0)
        .dir("./usr/share/doc/", 0o755, 0, 0)
        .dir("./usr/share/doc/pkg/", 0o755, 0, 0)
        .file("./usr/share/doc/pkg/copyright", 0o644, 0, 0, b"public domain\n");
    deb(&data.finish())
}

/// A host file of a fixture: (path, content, executable); `None` content is a directory.
type HostFile<P> = (P, Option<Vec<u8>>, bool);

/// Host files of the `rootfs` dir layer.
fn rootfs_files() -> Vec<HostFile<&'static [u8]>> {
    vec![
        (b"etc", None, false),
        (b"etc/app.conf", Some(b"key = value\n".to_vec()), false),
        (b"usr/bin/tool", Some(noise(300_000, 7)), true),
        (b"usr/share/data", None, false),
        (b"usr/share/data/table.txt", Some(b"1 2 3\n".to_vec()), false),
        (b"var/empty", None, false),
        (b"caf\xe9.txt", Some(b"not utf-8 named\n".to_vec()), false),
    ]
}

impl Fixture {
    fn create(dir: &Path, compression: &str, reverse: bool) -> Fixture {
        use std::os::unix::ffi::OsStrExt;
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        let base = base_tar();
        let recipe = FIXTURE_RECIPE.replace("COMPRESSION", compression).replace("BASE_SHA256", &sha256_hex(&base));
        let mut files: Vec<HostFile<PathBuf>> = rootfs_files()
            .into_iter()
            .map(|(p, c, x)| (dir.join("rootfs").join(std::ffi::OsStr::from_bytes(p)), c, x))
            .collect();
        files.push((dir.join("base.tar.gz"), Some(base), false));
        files.push((dir.join("pkg.deb"), Some(pkg_deb()), false));
        files.push((dir.join("init.sh"), Some(b"#!/bin/sh\nexec /bin/sh\n".to_vec()), true));
        if reverse {
            files.reverse();
        }
        for (path, content, executable) in &files {
            match content {
                None => std::fs::create_dir_all(path).unwrap(),
                Some(bytes) => {
                    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                    std::fs::write(path, bytes).unwrap();
                    let mode = match (reverse, executable) {
                        (false, true) => 0o755,
                        (false, false) => 0o644,
                        (true, true) => 0o700,
                        (true, false) => 0o600,
                    };
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
                    let when = if reverse {
                        SystemTime::now()
                    } else {
                        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000)
                    };
                    std::fs::File::options().write(true).open(path).unwrap().set_modified(when).unwrap();
                }
            }
        }
        std::os::unix::fs::symlink("tool", dir.join("rootfs/usr/bin/tool-link")).unwrap();
        write_recipe(dir, &recipe);
        Fixture { dir: dir.to_path_buf() }
    }

    fn recipe(&self) -> PathBuf {
        self.dir.join("recipe.toml")
    }
}

/// Builds with a deliberately different environment: umask, time zone, locale, worker count,
/// working directory, and a relative rather than absolute recipe path.
fn build_under(recipe: &Path, out: &Path, variant: bool) {
    use std::os::unix::process::CommandExt;
    let (umask, tz, lc, jobs) =
        if variant { (0o077, "Asia/Kathmandu", "C.UTF-8", "3") } else { (0o022, "UTC", "C", "1") };
    let (dir, recipe) = if variant {
        (recipe.parent().unwrap().to_path_buf(), recipe.file_name().unwrap())
    } else {
        (std::env::temp_dir(), recipe.as_os_str())
    };
    let bake = Bake::new("build").args(["--no-cache", "-j", jobs]).out(out).arg(recipe);
    let mut cmd = bake.env("TZ", tz).env("LC_ALL", lc).current_dir(dir).command();
    // SAFETY: umask(2) is async-signal-safe and only changes the child's file mode mask.
    unsafe {
        cmd.pre_exec(move || {
            libc::umask(umask);
            Ok(())
        });
    }
    run_ok(&mut cmd);
}

#[test]
fn same_inputs_under_different_conditions_give_the_same_bytes_for_every_compressor() {
    for compression in COMPRESSORS {
        let tmp = tempfile::tempdir().unwrap();
        let a = Fixture::create(&tmp.path().join("copy-a"), compression, false);
        let b = Fixture::create(&tmp.path().join("second copy/b"), compression, true);
        let (out_a, out_b) = (tmp.path().join("out-a"), tmp.path().join("elsewhere/out-b"));
        build_under(&a.recipe(), &out_a, false);
        build_under(&b.recipe(), &out_b, true);
        let (files_a, files_b) = (files_of(&out_a), files_of(&out_b));
        assert_eq!(files_a.len(), 3, "{compression}: image, manifest, SHA256SUMS");
        for ((name_a, bytes_a), (name_b, bytes_b)) in files_a.iter().zip(&files_b) {
            assert_eq!(name_a, name_b);
            assert!(bytes_a == bytes_b, "{compression}: `{name_a}` differs between the two builds");
        }
    }
}

/// `-rwsr-xr-x` from a manifest entry, as `ls -l` and GNU cpio print it.
fn mode_string(kind: &str, mode: u32) -> String {
    let type_char = match kind {
        "dir" => 'd',
        "file" => '-',
        "symlink" => 'l',
        "char" => 'c',
        "block" => 'b',
        "fifo" => 'p',
        other => panic!("unknown type {other}"),
    };
    let mut s = String::from(type_char);
    for (shift, special, set_char) in [(6, 0o4000, 's'), (3, 0o2000, 's'), (0, 0o1000, 't')] {
        let bits = (mode >> shift) & 7;
        s.push(if bits & 4 != 0 { 'r' } else { '-' });
        s.push(if bits & 2 != 0 { 'w' } else { '-' });
        let exec = bits & 1 != 0;
        s.push(match (mode & special != 0, exec) {
            (true, true) => set_char,
            (true, false) => set_char.to_ascii_uppercase(),
            (false, true) => 'x',
            (false, false) => '-',
        });
    }
    s
}

/// One line of `cpio -itv --numeric-uid-gid`, reduced to what the manifest also says.
fn listing_line(line: &str) -> (String, String, String, String, String, Option<String>) {
    let mut words = line.split_whitespace();
    let mode = words.next().unwrap().to_string();
    let _nlink = words.next().unwrap();
    let uid = words.next().unwrap().to_string();
    let gid = words.next().unwrap().to_string();
    let size = if mode.starts_with('c') || mode.starts_with('b') {
        format!("{} {}", words.next().unwrap(), words.next().unwrap())
    } else {
        words.next().unwrap().to_string()
    };
    let _date: Vec<&str> = (0..3).map(|_| words.next().unwrap()).collect();
    let rest: Vec<&str> = words.collect();
    let rest = rest.join(" ");
    let (name, target) = match rest.split_once(" -> ") {
        Some((n, t)) => (n.to_string(), Some(t.to_string())),
        None => (rest, None),
    };
    (mode, uid, gid, size, name, target)
}

#[test]
fn gnu_cpio_lists_exactly_the_manifest_and_extracts_the_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Fixture::create(&tmp.path().join("in"), "zstd", false);
    let out = tmp.path().join("out");
    Bake::build(fixture.recipe()).out(&out).ok();
    let archive = decompress(&out.join("fixture.cpio.zst"));
    let manifest = manifest(&out, "fixture");
    let entries = manifest["entries"].as_array().unwrap();

    // Which name of each hard-linked file carries its data: the last, as GNU cpio writes.
    let mut last_of_group: HashMap<String, String> = HashMap::new();
    for e in entries {
        if let Some(first) = e["hardlink"].as_str() {
            last_of_group.insert(first.to_string(), e["path"].as_str().unwrap().to_string());
        }
    }
    let expected: Vec<_> = entries
        .iter()
        .map(|e| {
            let path = e["path"].as_str().unwrap();
            let kind = e["type"].as_str().unwrap();
            let mode = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
            let group = e["hardlink"].as_str().unwrap_or(path);
            let carries = last_of_group.get(group).is_none_or(|last| last == path);
            let size = match kind {
                "char" | "block" => format!("{}, {}", e["major"], e["minor"]),
                "file" if !carries => "0".to_string(),
                _ => e["size"].to_string(),
            };
            (
                mode_string(kind, mode),
                e["uid"].to_string(),
                e["gid"].to_string(),
                size,
                path.trim_start_matches('/').to_string(),
                e["target"].as_str().map(str::to_string),
            )
        })
        .collect();
    let listed: Vec<_> = cpio_list(&archive).iter().map(|l| listing_line(l)).collect();
    assert_eq!(listed, expected);

    // Spot checks of what the recipe and layers say, so the comparison above is not vacuous.
    let by_path: BTreeMap<&str, &serde_json::Value> =
        entries.iter().map(|e| (e["path"].as_str().unwrap(), e)).collect();
    assert_eq!(by_path["/usr/bin/prog"]["mode"], "4755");
    assert_eq!(by_path["/usr/bin/hello-deb"]["type"], "file", "the package installed through /bin -> usr/bin");
    assert_eq!(by_path["/bin"]["target"], "usr/bin");
    assert_eq!(by_path["/home/alice/notes.txt"]["uid"], 1001);
    assert_eq!(by_path["/dev/ttyS0"]["major"], 4);
    assert_eq!(by_path["/dev/sda"]["type"], "block");
    assert_eq!(by_path["/dev/initctl"]["type"], "fifo");
    assert_eq!(by_path["/srv/data"]["mode"], "2775");
    assert_eq!(by_path["/etc/motd"]["mode"], "0600");
    assert_eq!(by_path["/usr/bin/tool"]["mode"], "0755");
    assert_eq!(by_path["/etc/app.conf"]["mode"], "0644");
    assert_eq!(by_path["/usr/bin/tool-link"]["target"], "tool");
    assert!(by_path.contains_key("/usr/share/doc"), "`/usr/share/doc/**` keeps the folder itself");
    assert!(!by_path.contains_key("/usr/share/doc/pkg"));
    assert!(entries.iter().all(|e| e["mtime"] == 1234567890));
    let non_utf8 = entries.iter().find(|e| e["path_hex"].is_string()).expect("the non-UTF-8 name");
    assert_eq!(non_utf8["path_hex"], "636166e92e747874");

    // Extract with GNU cpio and compare the contents with the inputs.
    let root = tmp.path().join("extracted");
    cpio_extract(&archive, &root);
    for e in entries.iter().filter(|e| e["type"] == "file") {
        let bytes = match e["path_hex"].as_str() {
            Some(_) => std::fs::read(root.join(std::ffi::OsStr::new(&*unsafe_path(b"caf\xe9.txt")))).unwrap(),
            None => std::fs::read(root.join(e["path"].as_str().unwrap().trim_start_matches('/'))).unwrap(),
        };
        assert_eq!(sha256_hex(&bytes), e["sha256"].as_str().unwrap(), "{}", e["path"]);
    }
    let input = |p: &str| std::fs::read(fixture.dir.join(p)).unwrap();
    assert_eq!(std::fs::read(root.join("usr/bin/tool")).unwrap(), input("rootfs/usr/bin/tool"));
    assert_eq!(std::fs::read(root.join("init")).unwrap(), input("init.sh"));
    assert_eq!(std::fs::read(root.join("usr/bin/prog")).unwrap(), noise(70_000, 1));
    assert_eq!(std::fs::read(root.join("usr/bin/hello-deb")).unwrap(), b"#!/bin/sh\necho hello from a package\n");
}

fn unsafe_path(bytes: &[u8]) -> std::ffi::OsString {
    use std::os::unix::ffi::OsStrExt;
    std::ffi::OsStr::from_bytes(bytes).to_os_string()
}

#[test]
fn hard_links_extract_as_hard_links() {
    let tmp = tempfile::tempdir().unwrap();
    let fixture = Fixture::create(&tmp.path().join("in"), "none", false);
    let out = tmp.path().join("out");
    Bake::build(fixture.recipe()).out(&out).ok();
    let archive = std::fs::read(out.join("fixture.cpio")).unwrap();
    let root = tmp.path().join("x");
    cpio_extract(&archive, &root);
    for (a, b) in [("usr/bin/prog", "usr/bin/prog2"), ("usr/bin/tool", "usr/bin/tool-hard")] {
        let (ma, mb) = (std::fs::metadata(root.join(a)).unwrap(), std::fs::metadata(root.join(b)).unwrap());
        assert_eq!(ma.ino(), mb.ino(), "`{a}` and `{b}` are one file");
        assert_eq!(ma.nlink(), 2);
    }
    // The data is stored once: the archive is smaller than the two copies would be.
    assert!(archive.len() < 2 * 70_000 + 2 * 300_000, "hard-linked data stored twice");
}

#[test]
fn sha256sums_is_accepted_by_sha256sum_and_names_every_output() {
    require_tool("sha256sum");
    let tmp = tempfile::tempdir().unwrap();
    Bake::build(repo().join("recipes/skeleton.toml")).out(tmp.path()).ok();
    let sums = std::fs::read_to_string(tmp.path().join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  skeleton.cpio.zst\n") && sums.contains("  skeleton.manifest.json\n"), "{sums}");
    run_ok(std::process::Command::new("sha256sum").arg("-c").arg("SHA256SUMS").current_dir(tmp.path()));
    let manifest = manifest(tmp.path(), "skeleton");
    let image = std::fs::read(tmp.path().join("skeleton.cpio.zst")).unwrap();
    assert_eq!(manifest["outputs"][0]["sha256"], sha256_hex(&image));
}

#[test]
fn every_recipe_and_boot_case_builds_reproducibly() {
    let recipes = all_recipes();
    assert!(recipes.len() >= 7, "{recipes:?}");
    for deb in ["busybox-static.deb", "linux-image-cloud-amd64.deb"] {
        let path = repo().join("cache/debs").join(deb);
        assert!(path.exists(), "the examples need `{deb}`: run scripts/fetch-debs.sh and scripts/fetch-kernel.sh");
    }
    for recipe in recipes {
        let tmp = tempfile::tempdir().unwrap();
        let (a, b) = (tmp.path().join("a"), tmp.path().join("b/c"));
        build_under(&recipe, &a, false);
        build_under(&recipe, &b, true);
        assert_eq!(files_of(&a), files_of(&b), "{} is not reproducible", recipe.display());
        run_ok(std::process::Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&a));
        // Every disk an example writes is checked by the independent tools.
        for (file, _) in files_of(&a) {
            let path = a.join(&file);
            if file.ends_with(".erofs") {
                let out = run_ok(std::process::Command::new("fsck.erofs").arg(&path));
                assert!(!text(&out.stderr).contains("<E>") && !text(&out.stdout).contains("<E>"), "{file}");
            } else if file.ends_with(".img") {
                let out = run_ok(std::process::Command::new("sgdisk").arg("-v").arg(&path));
                assert!(text(&out.stdout).contains("No problems found"), "{file}: {}", text(&out.stdout));
            }
        }
    }
}

#[test]
fn hello_holds_busybox_and_its_init() {
    let tmp = tempfile::tempdir().unwrap();
    let debs = repo().join("cache/debs/busybox-static.deb");
    assert!(debs.exists(), "run scripts/fetch-debs.sh first");
    Bake::build(repo().join("recipes/hello.toml")).out(tmp.path()).ok();
    let listing = cpio_list(&decompress(&tmp.path().join("hello.cpio.zst")));
    let names: Vec<String> = listing.iter().map(|l| listing_line(l).4).collect();
    for wanted in ["bin/busybox", "bin/sh", "init", "dev/console"] {
        assert!(names.iter().any(|n| n == wanted), "`{wanted}` missing from {names:?}");
    }
    assert!(!names.iter().any(|n| n.starts_with("usr")), "`[remove]` left {names:?}");
}

#[test]
fn source_date_epoch_sets_the_time_when_the_recipe_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        tmp.path(),
        "[image]\nname = \"t\"\n[initramfs]\ncompression = \"none\"\n[[file]]\npath = \"/a\"\ncontent = \"a\"\n",
    );
    let out = tmp.path().join("out");
    Bake::build(&recipe).arg("-q").out(&out).env("SOURCE_DATE_EPOCH", "1700000000").ok();
    assert_eq!(manifest(&out, "t")["entries"][0]["mtime"], 1700000000);
    let listing = cpio_list(&std::fs::read(out.join("t.cpio")).unwrap());
    assert!(listing[0].contains("2023"), "{listing:?}");
    Bake::build(&recipe).arg("-q").out(&out).ok();
    assert_eq!(manifest(&out, "t")["entries"][0]["mtime"], 0);
}

#[test]
fn quiet_prints_nothing_and_json_prints_the_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/skeleton.toml");
    let out = Bake::build(&recipe).args(["-q", "--json"]).out(tmp.path()).ok();
    assert!(out.stderr().is_empty(), "{}", out.stderr());
    let summary = out.json();
    assert_eq!(summary["outputs"][0]["sha256"], SKELETON_CPIO_ZST_SHA256);
    assert_eq!(summary["outputs"].as_array().unwrap().len(), 3);
    // Without a terminal, progress is plain lines on standard error.
    let out = Bake::build(&recipe).out(tmp.path()).ok();
    assert!(out.stderr().contains("writing skeleton.cpio.zst"), "{}", out.stderr());
    assert!(out.stdout().contains(SKELETON_CPIO_ZST_SHA256));
}

/// Regression: GNU tar leaves a FIFO's device fields empty, which was read as a bad number.
#[test]
fn a_fifo_archived_by_gnu_tar_is_laid_in() {
    require_tool("tar");
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir(&src).unwrap();
    run_ok(std::process::Command::new("mkfifo").arg(src.join("pipe")));
    run_ok(
        std::process::Command::new("tar").arg("-cf").arg(tmp.path().join("fifo.tar")).arg("-C").arg(&src).arg("pipe"),
    );
    let recipe = write_recipe(
        tmp.path(),
        "[image]\nname = \"f\"\n[initramfs]\ncompression = \"none\"\n[[layer]]\ntar = \"fifo.tar\"\n",
    );
    let out = tmp.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    assert_eq!(manifest(&out, "f")["entries"][0]["type"], "fifo");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    let names: Vec<&str> = sums.lines().map(|l| l.split_once("  ").unwrap().1).collect();
    assert_eq!(names, ["f.cpio", "f.manifest.json"], "SHA256SUMS is sorted by file name");
}

#[test]
fn recipe_accounts_are_written_and_owners_by_name_resolve_against_them() {
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"accounts\"\n\n[initramfs]\ncompression = \"none\"\n\n\
         [[group]]\nname = \"web\"\ngid = 2000\n\n\
         [[user]]\nname = \"www\"\ngroups = [\"web\"]\nhome = \"/srv/www\"\n\n\
         [[dir]]\npath = \"/srv/www\"\nowner = \"www\"\ngroup = \"web\"\nmode = \"0750\"\n",
    );
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let archive = std::fs::read(out.join("accounts.cpio")).unwrap();
    let listing = text(&pipe("cpio", &["-tv", "--numeric-uid-gid", "--quiet"], &archive, None));
    let srv = listing.lines().find(|l| l.ends_with(" srv/www")).unwrap();
    let fields: Vec<&str> = srv.split_whitespace().collect();
    assert_eq!((fields[0], fields[2], fields[3]), ("drwxr-x---", "999", "2000"), "{srv}");
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    cpio_extract(&archive, &root);
    let read = |f: &str| std::fs::read_to_string(root.join("etc").join(f)).unwrap();
    assert_eq!(read("passwd"), "www:x:999:999::/srv/www:/usr/sbin/nologin\n");
    assert_eq!(read("group"), "web:x:2000:www\nwww:x:999:\n");
    assert_eq!(read("shadow"), "www:!*:::::::\n");
    assert_eq!(read("gshadow"), "web:!*::www\nwww:!*::\n");
}
