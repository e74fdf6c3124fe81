//! Bad recipes and bad inputs: each one exits with status 2, says what is wrong and where (the
//! recipe file and line, the input and the entry), and leaves no output behind.

mod common;

use std::path::Path;

use common::*;

const HEAD: &str = "[image]\nname = \"bad\"\n[initramfs]\ncompression = \"none\"\n";

/// Builds `recipe` (written into `dir`) and checks it fails with status 2, a message holding
/// every one of `expected`, and no output folder.
fn refused(dir: &Path, recipe: &str, expected: &[&str]) {
    let path = write_recipe(dir, recipe);
    let out = dir.join("out");
    let stderr = Bake::build(&path).out(&out).fails(2).stderr();
    for want in expected {
        assert!(stderr.contains(want), "expected `{want}` in:\n{stderr}");
    }
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error: ")).count(), 1, "one error, printed once:\n{stderr}");
    assert!(!out.exists(), "a refused build left {}", out.display());
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[test]
fn an_unknown_key_names_the_file_line_and_column() {
    let t = tmp();
    refused(
        t.path(),
        "[image]\nname = \"x\"\ncolour = \"red\"\n",
        &["recipe.toml:3:1:", "unknown field `colour`", "expected"],
    );
}

#[test]
fn a_toml_syntax_error_names_the_line() {
    let t = tmp();
    refused(t.path(), "[image]\nname = \"x\n", &["recipe.toml:2:"]);
}

#[test]
fn a_bad_mode_string_names_the_line() {
    let t = tmp();
    let recipe = format!("{HEAD}[[dir]]\npath = \"/a\"\nmode = \"0789\"\n");
    refused(t.path(), &recipe, &["recipe.toml:7:8:", "invalid mode `0789`"]);
}

#[test]
fn a_missing_source_names_the_source_and_the_line() {
    let t = tmp();
    let recipe = format!("{HEAD}[[file]]\npath = \"/init\"\nsource = \"missing.sh\"\n");
    refused(t.path(), &recipe, &["recipe.toml:7:10:", "missing.sh", "no such file or directory"]);
}

#[test]
fn a_sha256_mismatch_names_the_file_and_builds_nothing() {
    let t = tmp();
    std::fs::write(t.path().join("base.tar"), TarMaker::new().file("a", 0o644, 0, 0, b"a").finish_clone()).unwrap();
    let recipe = format!("{HEAD}[[layer]]\ntar = \"base.tar\"\nsha256 = \"{}\"\n", "ab".repeat(32));
    refused(t.path(), &recipe, &["recipe.toml:7:10:", "base.tar", "but the recipe pins"]);
}

#[test]
fn a_tar_entry_escaping_the_root_names_the_archive_and_the_entry() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("etc/ok", 0o644, 0, 0, b"ok").file("../etc/passwd", 0o644, 0, 0, b"root::0:0::/:/bin/sh\n");
    std::fs::write(t.path().join("evil.tar"), tar.finish()).unwrap();
    let recipe = format!("{HEAD}[[layer]]\ntar = \"evil.tar\"\n");
    refused(t.path(), &recipe, &["evil.tar`: entry `../etc/passwd`", "`..`"]);
}

#[test]
fn an_absolute_tar_entry_is_refused() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("/etc/passwd", 0o644, 0, 0, b"x");
    std::fs::write(t.path().join("abs.tar"), tar.finish()).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"abs.tar\"\n"), &["abs.tar`: entry `/etc/passwd`", "absolute"]);
}

#[test]
fn an_absolute_hard_link_target_outside_the_image_is_refused() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.hardlink("shadow", "/etc/shadow");
    std::fs::write(t.path().join("link.tar"), tar.finish()).unwrap();
    refused(
        t.path(),
        &format!("{HEAD}[[layer]]\ntar = \"link.tar\"\n"),
        &["link.tar`: entry `shadow`", "hard-link target `/etc/shadow`"],
    );
}

#[test]
fn a_parent_that_is_a_file_names_both_entries() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("etc", 0o644, 0, 0, b"not a directory");
    std::fs::write(t.path().join("base.tar"), tar.finish()).unwrap();
    let recipe = format!("{HEAD}[[layer]]\ntar = \"base.tar\"\n[[file]]\npath = \"/etc/passwd\"\ncontent = \"\"\n");
    refused(
        t.path(),
        &recipe,
        &["`/etc/passwd` from `", "recipe.toml:8:8", "its parent `/etc` is a regular file from layer 1 (`base.tar`)"],
    );
}

#[test]
fn a_parent_symlink_leading_out_of_the_image_names_both_entries() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.symlink("up", "../..");
    std::fs::write(t.path().join("base.tar"), tar.finish()).unwrap();
    let recipe = format!("{HEAD}[[layer]]\ntar = \"base.tar\"\n[[file]]\npath = \"/up/x\"\ncontent = \"\"\n");
    refused(
        t.path(),
        &recipe,
        &["`/up/x` from `", "`/up` is a symlink to `../..` from layer 1 (`base.tar`)", "leads out of the image"],
    );
}

#[test]
fn a_fifo_in_a_dir_layer_is_refused() {
    let t = tmp();
    std::fs::create_dir(t.path().join("rootfs")).unwrap();
    run_ok(std::process::Command::new("mkfifo").arg(t.path().join("rootfs/pipe")));
    refused(t.path(), &format!("{HEAD}[[layer]]\ndir = \"rootfs\"\n"), &["rootfs/pipe` is a fifo", "[[device]]"]);
}

#[test]
fn a_source_that_is_a_fifo_or_a_device_is_refused() {
    let t = tmp();
    run_ok(std::process::Command::new("mkfifo").arg(t.path().join("pipe")));
    refused(t.path(), &format!("{HEAD}[[file]]\npath = \"/p\"\nsource = \"pipe\"\n"), &["pipe` is not a regular file"]);
    refused(
        t.path(),
        &format!("{HEAD}[[file]]\npath = \"/z\"\nsource = \"/dev/zero\"\n"),
        &["`/dev/zero` is not a regular file"],
    );
}

#[test]
fn a_file_of_4_gib_is_refused_before_it_is_read() {
    let t = tmp();
    std::fs::create_dir(t.path().join("rootfs")).unwrap();
    let big = std::fs::File::create(t.path().join("rootfs/big")).unwrap();
    big.set_len(4 << 30).unwrap(); // sparse: no disk space, and bake must not read it
    refused(t.path(), &format!("{HEAD}[[layer]]\ndir = \"rootfs\"\n"), &["rootfs/big` is 4294967296 bytes", "4 GiB"]);
}

#[test]
fn an_epoch_past_2106_is_refused() {
    let t = tmp();
    let recipe = "[image]\nname = \"x\"\nepoch = 4294967296\n[initramfs]\n";
    refused(t.path(), recipe, &["2106"]);
}

#[test]
fn bad_numbers_and_shapes_are_refused_with_their_line() {
    let t = tmp();
    refused(t.path(), "[image]\nname = \"x\"\nepoch = -1\n", &["recipe.toml:3:9:", "negative"]);
    refused(t.path(), "[image]\nname = \"x\"\n[initramfs]\nlevel = 22\n", &["recipe.toml:4:9:", "from 1 to 19"]);
    refused(
        t.path(),
        "[image]\nname = \"x\"\n[initramfs]\ncompression = \"lz4\"\nlevel = 2\n",
        &["recipe.toml:5:9:", "no levels"],
    );
    refused(
        t.path(),
        "[image]\nname = \"x\"\n[initramfs]\ncompression = \"bzip2\"\n",
        &["recipe.toml:4:15:", "unknown variant `bzip2`"],
    );
    refused(t.path(), "[image]\nname = \"../x\"\n", &["recipe.toml:2:8:", "image name"]);
    std::fs::create_dir_all(t.path().join("d")).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ndir = \"d\"\ntar = \"d\"\n"), &["recipe.toml:5:1:", "only one of"]);
    refused(
        t.path(),
        &format!("{HEAD}[[device]]\npath = \"/dev/x\"\ntype = \"char\"\n"),
        &["recipe.toml:5:1:", "both `major` and `minor`"],
    );
    refused(
        t.path(),
        &format!("{HEAD}[[dir]]\npath = \"/a\"\n[[symlink]]\npath = \"/a/\"\ntarget = \"b\"\n"),
        &["recipe.toml:8:8:", "`/a` is declared twice: first at `", "recipe.toml:6:8`"],
    );
    refused(
        t.path(),
        &format!("{HEAD}[[file]]\npath = \"/../etc/x\"\ncontent = \"\"\n"),
        &["recipe.toml:6:8:", "`..`"],
    );
}

#[test]
fn a_bad_source_date_epoch_is_refused() {
    let t = tmp();
    let path = write_recipe(t.path(), "[image]\nname = \"x\"\n");
    let stderr = Bake::build(&path).out(t.path().join("out")).env("SOURCE_DATE_EPOCH", "yesterday").fails(2).stderr();
    assert!(stderr.contains("SOURCE_DATE_EPOCH=`yesterday`"), "{stderr}");
}

#[test]
fn truncated_and_unsupported_archives_name_the_archive() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("big", 0o644, 0, 0, &noise(100_000, 3));
    let whole = gzip(&tar.finish());
    std::fs::write(t.path().join("cut.tar.gz"), &whole[..whole.len() / 2]).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"cut.tar.gz\"\n"), &["cut.tar.gz`"]);
    std::fs::write(t.path().join("b.tar.bz2"), b"BZh91AY&SY").unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"b.tar.bz2\"\n"), &["b.tar.bz2`", "bzip2"]);
    std::fs::write(t.path().join("not.deb"), b"this is not an ar archive").unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ndeb = \"not.deb\"\n"), &["not.deb`", "not a Debian package"]);
}

#[test]
fn a_failed_build_keeps_the_previous_outputs_and_leaves_no_temporary_files() {
    let t = tmp();
    let good = format!("{HEAD}[[file]]\npath = \"/a\"\ncontent = \"a\"\n");
    let path = write_recipe(t.path(), &good);
    let out = t.path().join("out");
    Bake::build(&path).out(&out).ok();
    let before = files_of(&out);
    std::fs::write(&path, format!("{good}[[file]]\npath = \"/b\"\nsource = \"gone\"\n")).unwrap();
    Bake::build(&path).out(&out).fails(2);
    assert_eq!(files_of(&out), before, "outputs changed or temporary files left behind");
}

#[test]
fn device_numbers_beyond_what_linux_holds_are_refused() {
    let t = tmp();
    refused(
        t.path(),
        &format!("{HEAD}[[device]]\npath = \"/dev/x\"\ntype = \"char\"\nmajor = 4096\nminor = 0\n"),
        &["recipe.toml:5:1:", "device 4096:0 is out of range"],
    );
    let mut tar = TarMaker::new();
    tar.device("dev/big", tar::EntryType::Block, 1, 1 << 20, 0o600, 0);
    std::fs::write(t.path().join("dev.tar"), tar.finish()).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"dev.tar\"\n"), &["dev.tar`: entry `dev/big`", "out of range"]);
}

#[test]
fn an_lz4_frame_archive_is_refused_by_name() {
    let t = tmp();
    std::fs::write(t.path().join("a.tar.lz4"), [0x04, 0x22, 0x4d, 0x18, 0, 0, 0, 0]).unwrap();
    refused(
        t.path(),
        &format!("{HEAD}[[layer]]\ntar = \"a.tar.lz4\"\n"),
        &["a.tar.lz4`", "LZ4 frame format is not supported"],
    );
}

/// Regression: the tar crate ends quietly at an end of file between two members.
#[test]
fn an_archive_cut_between_two_members_is_refused() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("a", 0o644, 0, 0, &noise(1000, 1)).file("b", 0o644, 0, 0, b"b");
    let whole = tar.finish();
    // header (512) + data (1000, padded to 1024): the cut falls exactly before `b`'s header.
    std::fs::write(t.path().join("cut.tar"), &whole[..1536]).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"cut.tar\"\n"), &["cut.tar`", "truncated"]);
}

/// Regression: the compressed stream was not read to its end, so its checksum went unchecked.
#[test]
fn a_corrupt_gzip_checksum_is_refused() {
    let t = tmp();
    let mut tar = TarMaker::new();
    tar.file("a", 0o644, 0, 0, b"some data");
    let mut packed = gzip(&tar.finish());
    let crc = packed.len() - 8;
    packed[crc] ^= 0xff;
    std::fs::write(t.path().join("bad.tar.gz"), &packed).unwrap();
    refused(t.path(), &format!("{HEAD}[[layer]]\ntar = \"bad.tar.gz\"\n"), &["bad.tar.gz`", "end of the archive"]);
}

#[test]
fn a_bad_variant_names_the_line() {
    let t = tmp();
    let recipe = format!("{HEAD}[[layer]]\npackages = []\nvariant = \"maxbase\"\n");
    refused(t.path(), &recipe, &["recipe.toml:7:11:", "`variant` is `\"essential\"` or `\"minbase\"`", "maxbase"]);
    let recipe = format!("{HEAD}[[layer]]\ndir = \".\"\nvariant = \"minbase\"\n");
    refused(t.path(), &recipe, &["recipe.toml:7:11:", "`variant` applies to a `packages` layer"]);
    let recipe = format!("{HEAD}[[layer]]\npackages = []\n");
    refused(t.path(), &recipe, &["recipe.toml:6:12:", "names no package"]);
}

#[test]
fn clashing_or_unknown_accounts_name_the_recipe_line() {
    let t = tmp();
    let recipe = format!("{HEAD}[[user]]\nname = \"a\"\nuid = 5\n\n[[user]]\nname = \"b\"\nuid = 5\n");
    refused(t.path(), &recipe, &["recipe.toml:9:1:", "user `b`: uid 5 is taken by user `a`"]);
    let recipe = format!("{HEAD}[[user]]\nname = \"a\"\ngroups = [\"nope\"]\n");
    refused(t.path(), &recipe, &["recipe.toml:5:1:", "user `a`: there is no group `nope`"]);
    let recipe = format!("{HEAD}[[group]]\nname = \"g\"\n\n[[group]]\nname = \"g\"\n");
    refused(t.path(), &recipe, &["recipe.toml:8:1:", "group `g` is defined already, by the recipe"]);
    let recipe = format!("{HEAD}[[user]]\nname = \"a\"\ngroup = \"missing\"\n");
    refused(t.path(), &recipe, &["recipe.toml:5:1:", "there is no group `missing`"]);
}

#[test]
fn an_owner_by_name_must_be_one_of_the_images_accounts() {
    let t = tmp();
    let recipe = format!("{HEAD}[[file]]\npath = \"/a\"\ncontent = \"x\"\nowner = \"www\"\n");
    refused(t.path(), &recipe, &["recipe.toml:8:9:", "`owner = \"www\"`: the image has no accounts"]);
    let recipe = format!("{HEAD}[[user]]\nname = \"www\"\n\n[[dir]]\npath = \"/srv\"\ngroup = \"wwww\"\n");
    refused(t.path(), &recipe, &["recipe.toml:10:9:", "the image has no such group", "`www`"]);
    let recipe = format!("{HEAD}[[dir]]\npath = \"/srv\"\nuid = 3\nowner = \"www\"\n");
    refused(t.path(), &recipe, &["recipe.toml:8:9:", "give `owner` or `uid`, not both"]);
}

#[test]
fn units_to_enable_must_be_in_the_image_with_something_to_install() {
    let t = tmp();
    let recipe = format!("{HEAD}[systemd]\nenable = [\"x.service\"]\n");
    refused(t.path(), &recipe, &["recipe.toml:5:1:", "the image has no systemd"]);
    let systemd = format!(
        "{HEAD}[[file]]\npath = \"/lib/systemd/systemd\"\ncontent = \"\"\n\n\
         [[file]]\npath = \"/lib/systemd/system/static.service\"\ncontent = \"[Service]\\nExecStart=/bin/true\\n\"\n\n"
    );
    let recipe = format!("{systemd}[systemd]\nenable = [\"nope.service\"]\n");
    refused(t.path(), &recipe, &["recipe.toml:14:11:", "`enable`: the image has no unit `nope.service`"]);
    let recipe = format!("{systemd}[systemd]\nenable = [\"static.service\"]\n");
    refused(t.path(), &recipe, &["recipe.toml:14:11:", "`static.service` has no `[Install]` section"]);
    let recipe = format!("{systemd}[systemd]\ndefault-target = \"graphical.target\"\n");
    refused(t.path(), &recipe, &["recipe.toml:14:18:", "`default-target`: the image has no unit `graphical.target`"]);
}

/// Runs `bake test` on `recipe` (written into `dir`) and checks it is refused with status 2 and
/// a message holding every one of `expected`, before anything is built.
fn test_refused(dir: &Path, recipe: &str, expected: &[&str]) {
    let path = write_recipe(dir, recipe);
    // Any file passes for a kernel: the recipe is refused before anything boots.
    let stderr = Bake::new("test").arg("--kernel").arg(&path).arg(&path).fails(2).stderr();
    for want in expected {
        assert!(stderr.contains(want), "expected `{want}` in:\n{stderr}");
    }
    assert!(!stderr.contains("writing "), "nothing is built:\n{stderr}");
}

#[test]
fn bad_http_checks_name_the_line() {
    let t = tmp();
    let check = |keys: &str| format!("{HEAD}[test]\nexpect = [\"x\"]\n[[test.http]]\n{keys}");
    test_refused(
        t.path(),
        &check("port = 0\npath = \"/\"\nexpect = \"ok\"\n"),
        &["recipe.toml:8:8:", "`port` is a TCP port, from 1 to 65535"],
    );
    test_refused(
        t.path(),
        &check("port = 65536\npath = \"/\"\nexpect = \"ok\"\n"),
        &["recipe.toml:8:8:", "from 1 to 65535"],
    );
    test_refused(
        t.path(),
        &check("port = 80\npath = \"health\"\nexpect = \"ok\"\n"),
        &["recipe.toml:9:8:", "`path` `health` must start with `/`"],
    );
    test_refused(
        t.path(),
        &check("port = 80\npath = \"/a b\"\nexpect = \"ok\"\n"),
        &["recipe.toml:9:8:", "no spaces or control characters"],
    );
    test_refused(
        t.path(),
        &check("port = 80\npath = \"/\"\nexpect = \"\"\n"),
        &["recipe.toml:10:10:", "`expect` is the text the answer must hold, and may not be empty"],
    );
    test_refused(
        t.path(),
        &check("port = 80\npath = \"/\"\nexpect = \"ok\"\nafter = \"\"\n"),
        &["recipe.toml:11:9:", "`after` is a console line to wait for"],
    );
    test_refused(t.path(), &check("port = 80\nexpect = \"ok\"\n"), &["recipe.toml:7:", "missing field `path`"]);
    test_refused(
        t.path(),
        &check("port = 80\npath = \"/\"\nexpect = \"ok\"\nurl = \"http://x/\"\n"),
        &["recipe.toml:11:1:", "unknown field `url`", "`after`"],
    );
}
