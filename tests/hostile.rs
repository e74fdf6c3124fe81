//! Hostile and broken inputs, interruptions and limits: bake refuses with a message naming the
//! input and the entry (exit 2), writes nothing outside its output folder, leaves no partial
//! output, and stops promptly and cleanly when interrupted.

mod common;

use std::collections::BTreeSet;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;

const HEAD: &str = "[image]\nname = \"bad\"\n[initramfs]\ncompression = \"none\"\n";

/// Every path below `dir`, to prove nothing was written where it should not be.
fn snapshot(dir: &Path) -> BTreeSet<PathBuf> {
    walkdir::WalkDir::new(dir).into_iter().map(|e| e.unwrap().path().to_path_buf()).collect()
}

/// Builds a recipe whose layer is the tar archive `tar`; checks the refusal.
fn refuse_tar(tar: &[u8], expected: &[&str]) {
    let t = tempfile::tempdir().unwrap();
    std::fs::write(t.path().join("in.tar"), tar).unwrap();
    let recipe = write_recipe(t.path(), &format!("{HEAD}[[layer]]\ntar = \"in.tar\"\n"));
    let before = snapshot(t.path());
    let out = t.path().join("out");
    let stderr = Bake::build(&recipe).out(&out).fails(2).stderr();
    for want in expected {
        assert!(stderr.contains(want), "expected `{want}` in {stderr}");
    }
    assert!(stderr.contains("in.tar`"), "the message names the archive: {stderr}");
    assert!(!out.exists(), "no output folder is left");
    assert_eq!(snapshot(t.path()), before, "nothing was written anywhere else");
}

/// A tar archive made by the `tar` crate's builder (which writes GNU long names itself).
fn tar_with(entries: &[(&str, tar::EntryType, &[u8], Option<&str>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, kind, data, link) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_mode(0o644);
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        match link {
            Some(target) => builder.append_link(&mut header, name, target).unwrap(),
            None => builder.append_data(&mut header, name, *data).unwrap(),
        }
    }
    builder.into_inner().unwrap()
}

#[test]
fn the_same_path_twice_as_different_kinds_is_refused() {
    let tar =
        tar_with(&[("etc/x", tar::EntryType::Regular, b"a", None), ("etc/x", tar::EntryType::Directory, b"", None)]);
    refuse_tar(&tar, &["entry `etc/x`", "twice, as a regular file and as a directory"]);
}

#[test]
fn a_symlink_loop_is_refused() {
    let tar = tar_with(&[
        ("a", tar::EntryType::Symlink, b"", Some("b")),
        ("b", tar::EntryType::Symlink, b"", Some("a")),
        ("a/x", tar::EntryType::Regular, b"x", None),
    ]);
    refuse_tar(&tar, &["`/a/x`", "too many levels of symlinks"]);
}

#[test]
fn a_symlink_out_of_the_image_then_an_entry_through_it_is_refused() {
    let tar = tar_with(&[
        ("evil", tar::EntryType::Symlink, b"", Some("../../../etc")),
        ("evil/passwd", tar::EntryType::Regular, b"x", None),
    ]);
    refuse_tar(&tar, &["`/evil/passwd`", "`/evil` is a symlink to `../../../etc`", "leads out of the image"]);
}

#[test]
fn a_10000_deep_path_is_refused() {
    let deep = vec!["d"; 10_000].join("/") + "/file";
    let tar = tar_with(&[(&deep, tar::EntryType::Regular, b"x", None)]);
    refuse_tar(&tar, &["is longer than the 4095 the kernel allows"]);
}

#[test]
fn a_name_over_255_bytes_is_refused() {
    let long = format!("etc/{}", "n".repeat(300));
    let tar = tar_with(&[(&long, tar::EntryType::Regular, b"x", None)]);
    refuse_tar(&tar, &["a name of 300 bytes is longer than the 255"]);
}

#[test]
fn a_size_field_larger_than_the_data_is_refused() {
    let mut tar = tar_with(&[("big", tar::EntryType::Regular, &noise(2000, 5), None)]);
    // The header claims 100000 bytes; the archive ends after 2000.
    let mut header = tar::Header::from_byte_slice(&tar[..512]).clone();
    header.set_size(100_000);
    header.set_cksum();
    tar[..512].copy_from_slice(header.as_bytes());
    tar.truncate(512 + 2048);
    refuse_tar(&tar, &["entry `big`", "short"]);
}

#[test]
fn a_socket_in_a_dir_layer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("rootfs")).unwrap();
    let _socket = std::os::unix::net::UnixListener::bind(t.path().join("rootfs/control.sock")).unwrap();
    let recipe = write_recipe(t.path(), &format!("{HEAD}[[layer]]\ndir = \"rootfs\"\n"));
    let stderr = Bake::build(&recipe).out(t.path().join("out")).fails(2).stderr();
    assert!(stderr.contains("rootfs/control.sock` is a socket"), "{stderr}");
    assert!(!t.path().join("out").exists());
}

/// A recipe whose build takes seconds: 24 MiB of noise, at the compressor's slowest level (xz
/// 9, or zstd 19, whose multi-threaded encoder waits for its jobs when dropped).
fn slow_recipe(dir: &Path, compression: &str) -> PathBuf {
    std::fs::create_dir_all(dir.join("rootfs")).unwrap();
    std::fs::write(dir.join("rootfs/noise.bin"), noise(24 << 20, 11)).unwrap();
    let level = if compression == "xz" { 9 } else { 19 };
    write_recipe(
        dir,
        &format!(
            "[image]\nname = \"slow\"\n[initramfs]\ncompression = \"{compression}\"\nlevel = {level}\n[[layer]]\ndir = \"rootfs\"\n"
        ),
    )
}

/// The files and folders in `dir`: name and bytes (`None` for a folder).
fn listing(dir: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let bytes = e.file_type().unwrap().is_file().then(|| std::fs::read(e.path()).unwrap());
            (e.file_name().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// Builds a small image under the name `slow` so there are previous outputs to keep.
fn previous_outputs(out: &Path) -> Vec<(String, Option<Vec<u8>>)> {
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"slow\"\n[initramfs]\ncompression = \"xz\"\n[[dir]]\npath = \"/old\"\n",
    );
    Bake::build(&recipe).out(out).ok();
    listing(out)
}

/// Starts a slow build, waits until it is writing the image, sends `signal`, and returns how
/// long bake took to stop, its exit status and what it printed.
type Listing = Vec<(String, Option<Vec<u8>>)>;

fn interrupt_build(signal: i32, compression: &str) -> (Duration, Option<i32>, String, Listing, Listing) {
    let t = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(t.path(), compression);
    let out = t.path().join("out");
    let before = previous_outputs(&out);
    let mut child = Bake::build(&recipe)
        .out(&out)
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap();
    // Wait until the image is being written (its temporary file exists).
    let deadline = Instant::now() + Duration::from_secs(60);
    while !listing(&out).iter().any(|(n, _)| n.starts_with(".bake-") && n.ends_with(".part")) {
        assert!(Instant::now() < deadline, "the build never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(child.try_wait().unwrap().is_none(), "the build finished before it could be interrupted");
    let sent = Instant::now();
    // SAFETY: sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as i32, signal);
    }
    let output = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let after = listing(&out);
    (took, output.status.code(), text(&output.stderr), before, after)
}

#[test]
fn ctrl_c_stops_the_build_promptly_cleans_up_and_keeps_the_previous_outputs() {
    let (took, code, stderr, before, after) = interrupt_build(libc::SIGINT, "xz");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by Ctrl-C (SIGINT)"), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_eq!(after, before, "previous outputs changed or temporary files were left");
}

#[test]
fn sigterm_stops_the_build_the_same_way_even_inside_zstd() {
    let (took, code, stderr, before, after) = interrupt_build(libc::SIGTERM, "zstd");
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    assert_eq!(after, before);
}

#[test]
fn sigkill_leaves_no_partial_file_at_an_output_path() {
    let (_, code, _, before, after) = interrupt_build(libc::SIGKILL, "xz");
    assert_eq!(code, None, "killed by the signal");
    // Temporary files may stay (nothing can clean up after SIGKILL), but every output name still
    // holds the previous build's bytes.
    let outputs: Vec<_> = after.into_iter().filter(|(n, _)| !n.starts_with(".bake-")).collect();
    assert_eq!(outputs, before);
}

#[test]
fn a_full_disk_is_a_clear_error_with_no_partial_output() {
    let t = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(t.path(), "xz");
    let recipe_text = std::fs::read_to_string(&recipe).unwrap().replace("level = 9\n", "level = 0\n");
    std::fs::write(&recipe, recipe_text).unwrap();
    let out = t.path().join("out");
    let mut cmd = Bake::build(&recipe).out(&out).command();
    // The file size limit stands in for a full disk: writes past 4 MiB fail with EFBIG.
    // SAFETY: setrlimit and signal are async-signal-safe and only affect the child.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit { rlim_cur: 4 << 20, rlim_max: 4 << 20 };
            libc::setrlimit(libc::RLIMIT_FSIZE, &limit);
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            Ok(())
        });
    }
    let result = run(&mut cmd);
    let stderr = text(&result.stderr);
    assert_eq!(result.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("too large") || stderr.contains("No space"), "{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(!out.exists(), "a failed build left {:?}", out.exists().then(|| listing(&out)));
}

#[test]
fn an_image_larger_than_the_test_memory_is_refused_before_booting() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(t.path().join("rootfs")).unwrap();
    std::fs::write(t.path().join("rootfs/blob"), noise(24 << 20, 3)).unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"big\"\n[initramfs]\ncompression = \"lz4\"\n[[layer]]\ndir = \"rootfs\"\n[test]\nexpect = [\"x\"]\nmemory = 64\n",
    );
    // The kernel is never booted: any file will do.
    let stderr = Bake::new("test").arg(&recipe).env("BAKE_KERNEL", &recipe).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:9:10: the image needs about"), "{stderr}");
    assert!(stderr.contains("but `[test] memory` is 64 MiB"), "{stderr}");
}

#[test]
fn a_device_node_in_a_dir_layer_is_refused() {
    let t = tempfile::tempdir().unwrap();
    std::fs::create_dir(t.path().join("rootfs")).unwrap();
    let node = t.path().join("rootfs/null");
    // Making the node needs root (CI has it); bake never needs root to refuse it.
    let made = std::process::Command::new("mknod").arg(&node).args(["c", "1", "3"]).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("skipped: mknod needs root here");
        return;
    }
    let recipe = write_recipe(t.path(), &format!("{HEAD}[[layer]]\ndir = \"rootfs\"\n"));
    let stderr = Bake::build(&recipe).out(t.path().join("out")).fails(2).stderr();
    assert!(stderr.contains("rootfs/null` is a character device"), "{stderr}");
    assert!(!t.path().join("out").exists());
}

/// Regression: verify waited for its second build to finish before it noticed SIGTERM.
#[test]
fn sigterm_stops_verify_and_its_second_build() {
    let t = tempfile::tempdir().unwrap();
    let recipe = slow_recipe(t.path(), "xz");
    let scratch = t.path().join("tmp");
    std::fs::create_dir(&scratch).unwrap();
    let child = Bake::new("verify")
        .arg(&recipe)
        .env("TMPDIR", &scratch)
        .command()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until the second build is writing its image.
    let deadline = Instant::now() + Duration::from_secs(120);
    let second_writing = || {
        walkdir::WalkDir::new(&scratch).into_iter().filter_map(|e| e.ok()).any(|e| {
            e.path().to_string_lossy().contains("second/out/.bake-") && e.path().to_string_lossy().ends_with(".part")
        })
    };
    while !second_writing() {
        assert!(Instant::now() < deadline, "the second build never started writing");
        std::thread::sleep(Duration::from_millis(20));
    }
    let sent = Instant::now();
    // SAFETY: sends a signal to the child we started.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let output = child.wait_with_output().unwrap();
    let took = sent.elapsed();
    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("interrupted by SIGTERM"), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?} to stop");
    // The second build was stopped too: nothing is left in the scratch folder.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(std::fs::read_dir(&scratch).unwrap().count(), 0, "{:?}", snapshot(&scratch));
}
