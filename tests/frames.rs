//! zstd, gzip and xz images are written as frames that each hold whole entries: the bytes do
//! not depend on the thread count or on the store, every decompressor reads them as one stream,
//! and a build after one file changed compresses only that file's frame again.

mod common;

use std::path::{Path, PathBuf};

use common::{Bake, TarMaker, cpio_list, decompress, image_in, noise};

/// 120 files of 40 KiB (4.8 MB: several frames) and a recipe that compresses them.
fn fixture(dir: &Path, compression: &str, level: u32) -> PathBuf {
    let root = dir.join("rootfs/srv");
    std::fs::create_dir_all(&root).unwrap();
    for i in 0..120u64 {
        // Half noise, half text, so that every compressor has something to do.
        let mut data = noise(20 << 10, i + 1);
        data.extend(format!("file {i} of the frames test\n").repeat(1000).as_bytes()[..20 << 10].iter());
        std::fs::write(root.join(format!("file-{i:03}")), data).unwrap();
    }
    let recipe = format!(
        "[image]\nname = \"framed\"\n\n[initramfs]\ncompression = \"{compression}\"\nlevel = {level}\n\n\
         [[layer]]\ndir = \"rootfs\"\n"
    );
    common::write_recipe(dir, &recipe)
}

/// The frames the store keeps.
fn kept_frames(cache: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(cache.join("store/frames"))
        .map(|dir| dir.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    names
}

fn build(recipe: &Path, out: &Path, cache: &Path, flags: &[&str]) -> String {
    Bake::build(recipe).allow_cache().args(["-q", "--cache"]).arg(cache).args(flags).out(out).ok();
    std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
}

fn fresh(recipe: &Path, out: &Path, jobs: &str) -> String {
    Bake::build(recipe).args(["-q", "--no-cache", "-j", jobs]).out(out).ok();
    std::fs::read_to_string(out.join("SHA256SUMS")).unwrap()
}

#[test]
fn a_changed_file_recompresses_only_its_frame() {
    for (compression, level) in [("zstd", 3), ("gzip", 1), ("xz", 0)] {
        let t = tempfile::tempdir().unwrap();
        let recipe = fixture(t.path(), compression, level);
        let cache = t.path().join("cache");
        let first = build(&recipe, &t.path().join("a"), &cache, &[]);
        let frames = kept_frames(&cache);
        assert!(frames.len() >= 3, "{compression}: {} frames for 4.8 MB", frames.len());
        // The same bytes with one thread or three and without the store; and the compressor's
        // own program reads every entry.
        assert_eq!(first, fresh(&recipe, &t.path().join("j1"), "1"), "{compression}");
        assert_eq!(first, fresh(&recipe, &t.path().join("j3"), "3"), "{compression}");
        let names = cpio_list(&decompress(&image_in(&t.path().join("a"))));
        assert_eq!(names.iter().filter(|line| line.contains("srv/file-")).count(), 120, "{compression}");

        // One file changes, keeping its size: one new frame.
        let changed = t.path().join("rootfs/srv/file-060");
        let mut data = std::fs::read(&changed).unwrap();
        data[100] ^= 0xff;
        std::fs::write(&changed, &data).unwrap();
        let second = build(&recipe, &t.path().join("b"), &cache, &[]);
        assert_ne!(first, second);
        assert_eq!(kept_frames(&cache).len(), frames.len() + 1, "{compression}: more than one frame changed");
        assert_eq!(second, fresh(&recipe, &t.path().join("f2"), "2"), "{compression}");

        // It grows by a few KiB: its frame changes, and the cuts after it come back within a
        // frame.
        data.extend(noise(3000, 9));
        std::fs::write(&changed, &data).unwrap();
        let before = kept_frames(&cache).len();
        let third = build(&recipe, &t.path().join("c"), &cache, &[]);
        let added = kept_frames(&cache).len() - before;
        assert!((1..=2).contains(&added), "{compression}: {added} frames changed");
        assert_eq!(third, fresh(&recipe, &t.path().join("f3"), "2"), "{compression}");
    }
}

/// The store's blob of each kept frame, by frame.
fn frame_blobs(cache: &Path) -> Vec<(String, u64)> {
    kept_frames(cache)
        .into_iter()
        .map(|name| {
            let dir = cache.join("store/frames").join(&name).join("blobs");
            let size = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.metadata().unwrap().len()).sum();
            (name, size)
        })
        .collect()
}

/// The recipe's own entries never share a frame with what an archive laid: an edited inline
/// `[[file]]` between the files of a tar layer is compressed again alone, a frame of a few
/// hundred bytes, whatever the frames of the archive around it hold.
#[test]
fn an_edited_recipe_file_is_a_frame_of_its_own() {
    for (compression, level) in [("zstd", 19), ("gzip", 9), ("xz", 6)] {
        let t = tempfile::tempdir().unwrap();
        let mut tar = TarMaker::new();
        tar.dir("srv/", 0o755, 0, 0);
        for i in 0..120u64 {
            let mut data = noise(20 << 10, i + 1);
            data.extend(format!("file {i} of the frames test\n").repeat(1000).as_bytes()[..20 << 10].iter());
            tar.file(&format!("srv/file-{i:03}"), 0o644, 0, 0, &data);
        }
        std::fs::write(t.path().join("layer.tar"), tar.finish()).unwrap();
        // `/srv/file-060a` sorts between `file-060` and `file-061`, in the middle of a frame.
        let recipe_text = |content: &str| {
            format!(
                "[image]\nname = \"framed\"\n\n[initramfs]\ncompression = \"{compression}\"\nlevel = {level}\n\n\
                 [[layer]]\ntar = \"layer.tar\"\n\n[[file]]\npath = \"/srv/file-060a\"\ncontent = \"{content}\"\n"
            )
        };
        let recipe = common::write_recipe(t.path(), &recipe_text("one\\n"));
        let cache = t.path().join("cache");
        let first = build(&recipe, &t.path().join("a"), &cache, &[]);
        let before = frame_blobs(&cache);
        assert!(before.len() >= 5, "{compression}: {} frames", before.len());
        assert_eq!(first, fresh(&recipe, &t.path().join("f1"), "3"), "{compression}");

        std::fs::write(&recipe, recipe_text("two, a little longer\\n")).unwrap();
        let second = build(&recipe, &t.path().join("b"), &cache, &[]);
        assert_ne!(first, second);
        let after = frame_blobs(&cache);
        let added: Vec<&(String, u64)> = after.iter().filter(|frame| !before.contains(frame)).collect();
        assert_eq!(added.len(), 1, "{compression}: {added:?} changed");
        assert!(added[0].1 < 1024, "{compression}: the changed frame is {} bytes", added[0].1);
        assert_eq!(second, fresh(&recipe, &t.path().join("f2"), "1"), "{compression}");
        let names = cpio_list(&decompress(&image_in(&t.path().join("b"))));
        assert!(names.iter().any(|line| line.ends_with(" 21 Jan  1  1970 srv/file-060a")), "{compression}: {names:?}");
        assert_eq!(names.iter().filter(|line| line.contains(" srv/file-")).count(), 121, "{compression}");
    }
}

/// A kept frame whose bytes changed is not used: the frame is compressed again, the image is
/// the one a build without the store makes, and the store holds the frame whole again.
#[test]
fn a_damaged_frame_is_compressed_again() {
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "zstd", 3);
    let cache = t.path().join("cache");
    build(&recipe, &t.path().join("a"), &cache, &[]);
    let mut blobs: Vec<PathBuf> = walkdir::WalkDir::new(cache.join("store/frames"))
        .into_iter()
        .flatten()
        .filter(|e| e.file_type().is_file() && e.path().parent().unwrap().ends_with("blobs"))
        .map(|e| e.into_path())
        .collect();
    blobs.sort();
    let damaged = &blobs[blobs.len() / 2];
    let mut bytes = std::fs::read(damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 1;
    std::fs::write(damaged, &bytes).unwrap();
    // Without the build cache, which would answer with the whole image.
    std::fs::remove_dir_all(cache.join("builds")).unwrap();
    let built = build(&recipe, &t.path().join("b"), &cache, &[]);
    assert_eq!(built, fresh(&recipe, &t.path().join("f"), "2"));
    let repaired = std::fs::read(damaged).unwrap();
    assert_ne!(repaired, bytes, "the damaged frame {} is still in the store", damaged.display());
}

/// How many frames `zstd -l` counts in a zstd file.
fn zstd_frames(image: &Path) -> u64 {
    let out = std::process::Command::new("zstd").arg("-l").arg(image).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let row = listing.lines().nth(1).unwrap_or_else(|| panic!("zstd -l printed {listing}"));
    row.split_whitespace().next().unwrap().parse().unwrap()
}

/// `frames = false` writes one stream: one zstd frame, a little smaller, nothing kept.
#[test]
fn frames_false_writes_one_stream() {
    let t = tempfile::tempdir().unwrap();
    let recipe = fixture(t.path(), "zstd", 3);
    let cache = t.path().join("cache");
    build(&recipe, &t.path().join("framed"), &cache, &[]);
    let framed = image_in(&t.path().join("framed"));
    assert!(zstd_frames(&framed) >= 3);
    let text = std::fs::read_to_string(&recipe).unwrap().replace("level = 3\n", "level = 3\nframes = false\n");
    std::fs::write(&recipe, text).unwrap();
    std::fs::remove_dir_all(cache.join("store")).unwrap();
    build(&recipe, &t.path().join("stream"), &cache, &[]);
    let stream = image_in(&t.path().join("stream"));
    assert_eq!(zstd_frames(&stream), 1);
    assert!(!cache.join("store/frames").exists(), "a stream keeps no frames");
    assert_eq!(decompress(&stream), decompress(&framed), "the same archive inside");
    assert!(std::fs::metadata(&stream).unwrap().len() <= std::fs::metadata(&framed).unwrap().len());
}

#[test]
fn frames_with_a_format_that_has_none_is_refused_by_line() {
    let t = tempfile::tempdir().unwrap();
    let recipe =
        common::write_recipe(t.path(), "[image]\nname = \"x\"\n\n[initramfs]\ncompression = \"lz4\"\nframes = true\n");
    let out = Bake::build(&recipe).out(t.path().join("out")).fails(2);
    let stderr = out.stderr();
    assert!(
        stderr.contains("recipe.toml:6")
            && stderr.contains("`lz4` images are always one stream: remove `frames` (it applies to zstd, gzip and xz)"),
        "{stderr}"
    );
    assert!(!t.path().join("out").exists(), "a refused recipe wrote something");
}
