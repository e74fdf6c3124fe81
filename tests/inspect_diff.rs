//! `bake inspect`, `bake diff` and `bake verify` on archives bake did not write (GNU cpio's,
//! plain and concatenated, with hard links), on every kind of difference, and on malformed
//! images.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A small tree on the host: files, a symlink, a hard link, an empty folder, a FIFO.
fn make_tree(dir: &Path) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("bin")).unwrap();
    std::fs::create_dir_all(dir.join("var/empty")).unwrap();
    std::fs::write(dir.join("etc/hostname"), "guest\n").unwrap();
    std::fs::write(dir.join("bin/tool"), noise(5000, 9)).unwrap();
    std::fs::set_permissions(dir.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::hard_link(dir.join("bin/tool"), dir.join("bin/tool-link")).unwrap();
    std::os::unix::fs::symlink("tool", dir.join("bin/sh")).unwrap();
    run_ok(Command::new("mkfifo").arg(dir.join("var/pipe")));
}

/// An archive of `dir` made by GNU cpio, entries in `find | sort` order (reversed if asked).
fn gnu_cpio(dir: &Path, reverse: bool, owner: &str) -> Vec<u8> {
    let out = run_ok(Command::new("sh").arg("-c").arg("find . -mindepth 1 | LC_ALL=C sort").current_dir(dir));
    let mut names: Vec<&str> = std::str::from_utf8(&out.stdout).unwrap().lines().collect();
    if reverse {
        names.reverse();
    }
    let list = names.join("\n") + "\n";
    pipe("cpio", &["-o", "-H", "newc", "--quiet", "-R", owner], list.as_bytes(), Some(dir))
}

fn inspect_json(image: &Path) -> serde_json::Value {
    Bake::new("inspect").arg("--json").arg(image).ok().json()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn inspect_lists_a_gnu_cpio_archive_completely() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let archive = gnu_cpio(&tree, false, "0:0");
    let image = write(t.path(), "gnu.cpio", &archive);
    let json = inspect_json(&image);
    let entries = json["archives"][0]["entries"].as_array().unwrap();
    let listed: Vec<String> =
        cpio_list(&archive).iter().map(|l| l.split_whitespace().last().unwrap().to_string()).collect();
    let names: Vec<&str> = entries.iter().map(|e| e["name"].as_str().unwrap()).collect();
    // GNU cpio's own listing has `sh -> tool` with the target last: compare names only.
    assert_eq!(names.len(), listed.len());
    assert!(names.contains(&"bin/sh") && names.contains(&"var/pipe") && names.contains(&"var/empty"), "{names:?}");
    let by_name = |n: &str| entries.iter().find(|e| e["name"] == n).unwrap();
    assert_eq!(by_name("bin/sh")["target"], "tool");
    assert_eq!(by_name("var/pipe")["type"], "fifo");
    assert_eq!(by_name("bin/tool")["nlink"], 2);
    assert_eq!(by_name("bin/tool")["ino"], by_name("bin/tool-link")["ino"]);
    // GNU cpio puts the data on the last name of the hard-link group.
    assert_eq!(by_name("bin/tool-link")["sha256"], sha256_hex(&noise(5000, 9)));
    assert_eq!(by_name("etc/hostname")["sha256"], sha256_hex(b"guest\n"));
    // The text listing has one line per entry, like `ls -l`.
    let text = Bake::new("inspect").arg(&image).ok().stdout();
    assert_eq!(text.lines().count(), entries.len());
    assert!(text.lines().any(|l| l.starts_with("lrwxrwxrwx") && l.ends_with(" bin/sh -> tool")), "{text}");
}

#[test]
fn inspect_shows_each_archive_of_a_concatenated_image() {
    let t = tempfile::tempdir().unwrap();
    let early = t.path().join("early");
    std::fs::create_dir_all(early.join("kernel/x86/microcode")).unwrap();
    std::fs::write(early.join("kernel/x86/microcode/GenuineIntel.bin"), noise(3000, 4)).unwrap();
    let main = t.path().join("main");
    make_tree(&main);
    let mut image = gnu_cpio(&early, false, "0:0");
    let main_archive = gnu_cpio(&main, false, "0:0");
    image.extend(pipe("zstd", &["-q", "-c"], &main_archive, None));
    image.extend(pipe("gzip", &["-n", "-c"], &gnu_cpio(&early, false, "0:0"), None));
    let path = write(t.path(), "initrd.img", &image);
    let json = inspect_json(&path);
    let archives = json["archives"].as_array().unwrap();
    let kinds: Vec<&str> = archives.iter().map(|a| a["compression"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["none", "zstd", "gzip"]);
    assert_eq!(archives[1]["entries"].as_array().unwrap().len(), cpio_list(&main_archive).len());
    assert!(archives[1]["offset"].as_u64().unwrap() > 0);
    let text = Bake::new("inspect").arg(&path).ok().stdout();
    assert!(text.contains("# archive 2 of 3: zstd, at byte "), "{text}");
}

/// Runs `bake diff` and returns the exit status and the output.
fn diff(a: &Path, b: &Path) -> (i32, String) {
    let out = Bake::new("diff").arg(a).arg(b).run();
    (out.code().unwrap(), out.stdout() + &out.stderr())
}

/// Two GNU cpio images of `tree` before and after `change`.
fn images(change: impl FnOnce(&Path)) -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let a = write(t.path(), "a.cpio", &gnu_cpio(&tree, false, "0:0"));
    change(&tree);
    let b = write(t.path(), "b.cpio", &gnu_cpio(&tree, false, "0:0"));
    (t, a, b)
}

#[test]
fn diff_finds_a_changed_content_with_both_digests_and_the_size_change() {
    let (_t, a, b) = images(|tree| std::fs::write(tree.join("etc/hostname"), "another-guest\n").unwrap());
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1, "{out}");
    let expected = format!(
        "~ /etc/hostname: content: 6 B, sha256 {} -> 14 B, sha256 {}",
        sha256_hex(b"guest\n"),
        sha256_hex(b"another-guest\n")
    );
    assert!(out.contains(&expected), "{out}");
}

#[test]
fn diff_finds_added_and_removed_entries() {
    let (_t, a, b) = images(|tree| {
        std::fs::remove_file(tree.join("etc/hostname")).unwrap();
        std::fs::write(tree.join("etc/motd"), "hi\n").unwrap();
    });
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("- /etc/hostname") && out.contains("+ /etc/motd"), "{out}");
}

#[test]
fn diff_finds_a_mode_change() {
    let (_t, a, b) = images(|tree| {
        std::fs::set_permissions(tree.join("etc/hostname"), std::fs::Permissions::from_mode(0o600)).unwrap()
    });
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("~ /etc/hostname: mode: 0644 -> 0600"), "{out}");
}

#[test]
fn diff_finds_an_owner_change() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let a = write(t.path(), "a.cpio", &gnu_cpio(&tree, false, "0:0"));
    let b = write(t.path(), "b.cpio", &gnu_cpio(&tree, false, "1000:100"));
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("~ /etc/hostname: owner: 0:0 -> 1000:100"), "{out}");
}

#[test]
fn diff_finds_an_mtime_change() {
    let (_t, a, b) = images(|tree| {
        run_ok(Command::new("touch").args(["-d", "2001-09-09 01:46:40 UTC"]).arg(tree.join("etc/hostname")));
    });
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("~ /etc/hostname: mtime: ") && out.contains("-> 1000000000 (2001-09-09 01:46 UTC)"), "{out}");
}

#[test]
fn diff_finds_a_changed_link_target() {
    let (_t, a, b) = images(|tree| {
        std::fs::remove_file(tree.join("bin/sh")).unwrap();
        std::os::unix::fs::symlink("tool-link", tree.join("bin/sh")).unwrap();
    });
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("~ /bin/sh: target: tool -> tool-link"), "{out}");
}

#[test]
fn diff_finds_a_change_in_hard_link_grouping() {
    let (_t, a, b) = images(|tree| {
        // Same bytes, but no longer the same file.
        std::fs::remove_file(tree.join("bin/tool-link")).unwrap();
        std::fs::copy(tree.join("bin/tool"), tree.join("bin/tool-link")).unwrap();
    });
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 1);
    assert!(out.contains("~ /bin/tool: hard links: /bin/tool-link -> none"), "{out}");
    assert!(!out.contains("content"), "the bytes are the same: {out}");
}

#[test]
fn diff_finds_changed_device_numbers() {
    // GNU cpio needs real device nodes (root); bake's own images hold them without root.
    let t = tempfile::tempdir().unwrap();
    let recipe = |minor: u32| {
        format!(
            "[image]\nname = \"d\"\n[initramfs]\ncompression = \"none\"\n[[device]]\npath = \"/dev/ttyS0\"\ntype = \"char\"\nmajor = 4\nminor = {minor}\n"
        )
    };
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    Bake::build(write_recipe(&a, &recipe(64))).out(a.join("out")).ok();
    Bake::build(write_recipe(&b, &recipe(65))).out(b.join("out")).ok();
    let (code, out) = diff(&a.join("out/d.cpio"), &b.join("out/d.cpio"));
    assert_eq!(code, 1);
    assert!(out.contains("~ /dev/ttyS0: device: 4,64 -> 4,65"), "{out}");
}

#[test]
fn diff_says_when_only_the_entry_order_differs() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let a = write(t.path(), "a.cpio", &gnu_cpio(&tree, false, "0:0"));
    let b = write(t.path(), "b.cpio", &gnu_cpio(&tree, true, "0:0"));
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 0, "same content: {out}");
    assert!(out.contains("unpack to the same files, but their bytes differ"), "{out}");
    assert!(out.contains("the entries come in another order"), "{out}");
}

#[test]
fn diff_says_when_only_the_compression_differs_and_when_nothing_does() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let archive = gnu_cpio(&tree, false, "0:0");
    let a = write(t.path(), "a.cpio.gz", &pipe("gzip", &["-n", "-c"], &archive, None));
    let b = write(t.path(), "b.cpio.zst", &pipe("zstd", &["-q", "-c"], &archive, None));
    let c = write(t.path(), "c.cpio.gz", &pipe("gzip", &["-n", "-1", "-c"], &archive, None));
    let (code, out) = diff(&a, &b);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("compressed differently: gzip and zstd"), "{out}");
    let (code, out) = diff(&a, &c);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("the bytes differ in the compression"), "{out}");
    let (code, out) = diff(&a, &a);
    assert_eq!(code, 0);
    assert!(out.contains("identical, byte for byte"), "{out}");
    let json = Bake::new("diff").arg("--json").arg(&a).arg(&b).run().json();
    assert_eq!(json["same_content"], true);
    assert_eq!(json["same_bytes"], false);
}

#[test]
fn malformed_images_exit_2_with_a_message() {
    let t = tempfile::tempdir().unwrap();
    let tree = t.path().join("tree");
    make_tree(&tree);
    let archive = gnu_cpio(&tree, false, "0:0");
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", archive[..archive.len() / 3].to_vec()),
        ("bad magic", [b"071701".as_slice(), &archive[6..]].concat()),
        ("empty", Vec::new()),
        ("garbage", b"this is not an image at all".to_vec()),
        ("truncated zstd", pipe("zstd", &["-q", "-c"], &archive, None)[..200].to_vec()),
    ];
    let mut huge = archive.clone();
    huge[6 + 6 * 8..14 + 6 * 8].copy_from_slice(b"fffffff0"); // the first entry claims ~4 GiB
    cases.push(("huge size", huge));
    let mut huge_name = archive.clone();
    huge_name[6 + 11 * 8..14 + 11 * 8].copy_from_slice(b"7fffffff");
    cases.push(("huge name", huge_name));
    for (what, bytes) in cases {
        let path = write(t.path(), "bad.img", &bytes);
        for args in [&["inspect"][..], &["diff", path.to_str().unwrap()]] {
            let out = Bake::new(args[0]).args(&args[1..]).arg(&path).run();
            let stderr = out.stderr();
            assert_eq!(out.code(), Some(2), "{what} {args:?}: {stderr}");
            assert!(stderr.starts_with("error: ") && stderr.contains("bad.img"), "{what}: {stderr}");
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        }
    }
}

#[test]
fn verify_passes_for_every_recipe_and_boot_case() {
    // Regression: the boot case with a `[kernel]` failed, its package missing from the copy.
    let recipes = all_recipes();
    assert!(recipes.iter().any(|r| r.ends_with("modules.toml")));
    for recipe in recipes {
        let stdout = Bake::new("verify").arg(&recipe).ok().stdout();
        assert!(stdout.contains("reproducible: ") && stdout.contains("outputs identical"), "{stdout}");
    }
}

/// `bake verify` copies the inputs for its second build without group and other permission
/// bits, so a file only others may execute is 0755 in the first image and 0644 in the second.
#[test]
fn verify_fails_with_a_useful_diff_when_a_host_permission_bit_reaches_the_image() {
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"leak\"\n[initramfs]\ncompression = \"gzip\"\n[[layer]]\ndir = \"rootfs\"\n",
    );
    std::fs::create_dir_all(t.path().join("rootfs/bin")).unwrap();
    write(&t.path().join("rootfs/bin"), "tool", b"#!/bin/sh\n");
    std::fs::set_permissions(t.path().join("rootfs/bin/tool"), std::fs::Permissions::from_mode(0o645)).unwrap();
    let stdout = Bake::new("verify").arg(&recipe).fails(1).stdout();
    let image_line = stdout.lines().find(|l| l.trim_start().starts_with("leak.cpio.gz "));
    assert!(image_line.is_some_and(|l| l.contains("DIFFERENT: second build")), "{stdout}");
    assert!(stdout.contains("~ /bin/tool: mode: 0755 -> 0644"), "the diff names the entry and the field: {stdout}");
    assert!(stdout.contains("not reproducible: leak, 3 of 3 outputs differ"), "{stdout}");
    let json = Bake::new("verify").arg("--json").arg(&recipe).fails(1).json();
    assert_eq!(json["reproducible"], false);
    assert_eq!(json["outputs"][0]["file"], "leak.cpio.gz");
    assert_eq!(json["outputs"][0]["identical"], false);
    let changed = &json["diffs"]["leak.cpio.gz"]["changed"][0];
    assert_eq!(changed["path"], "/bin/tool");
    assert_eq!(changed["changes"][0]["field"], "mode");
}
