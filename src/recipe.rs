//! The recipe as written: TOML decoded strictly into structs that mirror it.
//!
//! Unknown keys are refused, and every value that is checked later keeps its place in the file
//! (a [`Spanned`] value) so that errors can say `recipe.toml:12:8: ...`. Nothing here touches the
//! host: turning a recipe into an image is the job of [`crate::plan`]. The reference for users is
//! `docs/recipe.md`; keep the two in step.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use toml::Spanned;

use crate::base::error::{Error, IoContext, Result};
use crate::format::FileType;
use crate::format::compress::Compression;

/// A whole recipe file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// `[image]`: what the image is called and when its files were made. Required.
    pub image: Image,
    /// `[initramfs]`: build `NAME.cpio.*`. Default: absent (no initramfs).
    pub initramfs: Option<Initramfs>,
    /// `[[layer]]`: trees laid into the image in order; later ones win. Default: none.
    #[serde(default, rename = "layer")]
    pub layers: Vec<Spanned<Layer>>,
    /// `[[file]]`: regular files. Default: none.
    #[serde(default, rename = "file")]
    pub files: Vec<Spanned<FileEntry>>,
    /// `[[dir]]`: directories. Default: none.
    #[serde(default, rename = "dir")]
    pub dirs: Vec<Spanned<DirEntry>>,
    /// `[[symlink]]`: symbolic links. Default: none.
    #[serde(default, rename = "symlink")]
    pub symlinks: Vec<Spanned<SymlinkEntry>>,
    /// `[[hardlink]]`: further names for regular files. Default: none.
    #[serde(default, rename = "hardlink")]
    pub hardlinks: Vec<Spanned<HardlinkEntry>>,
    /// `[[device]]`: character and block devices and FIFOs. Default: none.
    #[serde(default, rename = "device")]
    pub devices: Vec<Spanned<DeviceEntry>>,
    /// `[[group]]`: system groups the image gets, besides the packages'. Default: none.
    #[serde(default, rename = "group")]
    pub groups: Vec<Spanned<GroupEntry>>,
    /// `[[user]]`: system users the image gets, besides the packages'. Default: none.
    #[serde(default, rename = "user")]
    pub users: Vec<Spanned<UserEntry>>,
    /// `[remove]`: what to prune from the layers. Default: nothing.
    pub remove: Option<Remove>,
    /// `[systemd]`: units to enable, presets, the default target. Default: absent.
    pub systemd: Option<Spanned<Systemd>>,
    /// `[disk]`: build a read-only root file system (`NAME.erofs`) and a disk holding it
    /// (`NAME.img`). Default: absent (no disk).
    pub disk: Option<Spanned<Disk>>,
    /// `[kernel]`: the kernel to boot and the modules the image carries. Default: absent.
    pub kernel: Option<Spanned<KernelSection>>,
    /// `[test]`: what `bake test` checks when it boots the image. Default: absent (the recipe
    /// cannot be boot-tested).
    pub test: Option<Spanned<Test>>,
}

/// `[kernel]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSection {
    /// The kernel package (a Debian `linux-image-*` `.deb`), relative to the recipe's folder.
    /// Default: absent; exactly one of `deb` or `package` is required.
    pub deb: Option<Spanned<String>>,
    /// The kernel package by name (`linux-image-cloud-amd64`; a metapackage leads to the
    /// `linux-image-*` package it depends on), fetched through apt and pinned in the lock file.
    /// Default: absent.
    pub package: Option<Spanned<String>>,
    /// The expected sha256 of the `deb`. Default: not checked.
    pub sha256: Option<Spanned<String>>,
    /// Modules to install under `/lib/modules/VERSION/`, with everything they depend on.
    /// Default: none.
    pub modules: Option<Spanned<Vec<String>>>,
    /// Kernel command line for `bake test`, after bake's `console=ttyS0 panic=-1`.
    /// Default: `quiet`.
    pub cmdline: Option<String>,
}

/// `[disk]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disk {
    /// The file system. Default: `erofs` (the only one).
    #[serde(default)]
    pub format: DiskFormat,
    /// `gpt` for `NAME.img`, a GPT disk with the file system as its one partition, or `none` for
    /// only `NAME.erofs`. Default: `gpt`.
    #[serde(default, rename = "partition-table")]
    pub partition_table: PartitionTable,
    /// Whether to protect the file system with dm-verity: `NAME.verity`, its hash tree, and on a
    /// GPT disk a root-verity partition after the root partition. Default: false.
    #[serde(default)]
    pub verity: bool,
    /// `uefi`: an EFI system partition holding a unified kernel image, so the disk boots with
    /// firmware alone. Default: absent (the disk is booted by someone passing a kernel).
    pub boot: Option<Spanned<DiskBootMode>>,
    /// With `boot`: the recipe (relative to this one) of the stage-1 initramfs and kernel built
    /// into the unified kernel image. Default: absent; required with `boot`.
    #[serde(rename = "boot-recipe")]
    pub boot_recipe: Option<Spanned<String>>,
    /// With `boot`: a local `.deb` of systemd's EFI stub (`systemd-boot-efi`). Default: the
    /// package `systemd-boot-efi` by name, through apt, pinned in the lock file.
    #[serde(rename = "stub-deb")]
    pub stub_deb: Option<Spanned<String>>,
}

/// How a disk boots by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskBootMode {
    /// UEFI firmware loads `EFI/BOOT/BOOTX64.EFI` from the EFI system partition.
    Uefi,
}

/// The file systems `[disk]` can write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// The kernel's read-only file system, uncompressed.
    #[default]
    Erofs,
}

/// Whether the file system goes into a partitioned disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PartitionTable {
    #[default]
    Gpt,
    None,
}

/// `[test]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Test {
    /// Lines the guest must print on its console, in this order; each is found as a substring
    /// of one line. Default: none (the boot must still end cleanly).
    #[serde(default)]
    pub expect: Vec<String>,
    /// Seconds the whole boot may take, generous enough for software emulation. Default: 60.
    pub timeout: Option<Spanned<u64>>,
    /// Guest memory in MiB. Default: 256.
    pub memory: Option<Spanned<u32>>,
    /// MiB of blank disk attached to the guest as a virtio-blk device (`/dev/vda`). Default: none.
    #[serde(rename = "scratch-disk")]
    pub scratch_disk: Option<Spanned<u32>>,
    /// For a recipe with `[disk]`: a path in the image whose first byte `bake test` changes on
    /// a copy of the disk before booting it, to prove that a verity disk refuses to read a
    /// tampered file. Default: absent (the disk is booted as built).
    pub tamper: Option<Spanned<String>>,
    /// For a recipe with `[disk]`: the recipe (relative to this one) of the initramfs that boots
    /// it. `bake test` boots the kernel with that initramfs and attaches this recipe's disk,
    /// read-only, as the first virtio-blk device (`/dev/vda`). Default: absent.
    #[serde(rename = "boot-recipe")]
    pub boot_recipe: Option<Spanned<String>>,
    /// `[[test.http]]`: services the host checks over HTTP while the guest runs; once every
    /// check passed, `bake test` presses the ACPI power button and the guest must power off.
    /// Default: none (the guest powers itself off).
    #[serde(default)]
    pub http: Vec<Spanned<HttpCheck>>,
}

/// `[[test.http]]`: a `GET` from the host, through a forwarded port, of a service in the guest.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpCheck {
    /// The guest's TCP port, from 1 to 65535. Required.
    pub port: Spanned<i64>,
    /// The path to fetch, starting with `/`. Required.
    pub path: Spanned<String>,
    /// Text the body of the answer must contain. Required, not empty.
    pub expect: Spanned<String>,
    /// Text of a console line (found as a substring) after which the check starts. Default:
    /// absent (the check starts with the boot).
    pub after: Option<Spanned<String>>,
}

/// `[image]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Image {
    /// Output file stem: letters, digits, `.`, `_` and `-`. Required.
    pub name: Spanned<String>,
    /// Modification time of every entry, in seconds since 1970. Default: `SOURCE_DATE_EPOCH`
    /// from the environment if set, else 0.
    pub epoch: Option<Spanned<i64>>,
}

/// `[initramfs]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Initramfs {
    /// The compressor. Default: `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// Compressor-specific level: zstd 1-19, gzip 1-9, xz 0-9; lz4 and none take none.
    /// Default: zstd 19, gzip 9, xz 6.
    pub level: Option<Spanned<i64>>,
    /// Whether a zstd, gzip or xz image is written as frames that each hold whole entries (a
    /// rebuild compresses only the frames that changed) rather than one stream (a little
    /// smaller). Default: true; lz4 and none are always one stream.
    pub frames: Option<Spanned<bool>>,
}

/// `[[layer]]`: exactly one of `dir`, `tar`, `deb` or `packages`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// A host directory, relative to the recipe's folder. Default: absent.
    pub dir: Option<Spanned<String>>,
    /// A tar archive (plain, gzip, xz or zstd), relative to the recipe's folder. Default: absent.
    pub tar: Option<Spanned<String>>,
    /// A Debian package whose data is laid in, relative to the recipe's folder. Default: absent.
    pub deb: Option<Spanned<String>>,
    /// The expected sha256 of the `tar` or `deb` file, as 64 hex digits. Default: not checked.
    pub sha256: Option<Spanned<String>>,
    /// Debian packages by name, laid in with their dependency closure, resolved from apt's
    /// package lists and pinned in the recipe's lock file. Default: absent.
    pub packages: Option<Spanned<Vec<String>>>,
    /// Packages to drop from the closure of `packages` (their own dependencies are not
    /// followed either). Default: none.
    pub exclude: Option<Spanned<Vec<String>>>,
    /// Whether the closure of `packages` also follows Recommends. Default: false.
    pub recommends: Option<bool>,
    /// A base system added to `packages`: `"essential"` (every Essential package) or
    /// `"minbase"` (also every `Priority: required` one, as debootstrap's minbase). Default:
    /// none.
    pub variant: Option<Spanned<String>>,
}

/// `[[file]]`: exactly one of `source` or `content`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// Where the file goes in the image. Required.
    pub path: Spanned<String>,
    /// A host file to copy, relative to the recipe's folder. Default: absent.
    pub source: Option<Spanned<String>>,
    /// The file's text, inline. Default: absent.
    pub content: Option<String>,
    /// Permission bits as an octal string. Default: `0755` for a `source` with an exec bit,
    /// else `0644`.
    pub mode: Option<Mode>,
    /// Owner. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Group. Default: 0.
    #[serde(default)]
    pub gid: u32,
    /// Owner by name: one of the image's own users (instead of `uid`). Default: absent.
    pub owner: Option<Spanned<String>>,
    /// Group by name: one of the image's own groups (instead of `gid`). Default: absent.
    pub group: Option<Spanned<String>>,
}

/// `[systemd]`: for an image whose init is systemd.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Systemd {
    /// Units to enable, as `systemctl enable --root` does. Default: none.
    #[serde(default)]
    pub enable: Vec<Spanned<String>>,
    /// Apply the image's preset files first, as `systemctl preset-all --root` does. Default:
    /// false.
    #[serde(default)]
    pub preset: bool,
    /// The unit `default.target` links to. Default: the image's own.
    pub default_target: Option<Spanned<String>>,
}

/// `[[group]]`: a system group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupEntry {
    /// The group's name. Required.
    pub name: String,
    /// Its id. Default: allocated as systemd-sysusers does (the highest free in 100..=999).
    pub gid: Option<u32>,
}

/// `[[user]]`: a system user.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserEntry {
    /// The user's name. Required.
    pub name: String,
    /// Its id. Default: allocated, the same as its own group's when that is free.
    pub uid: Option<u32>,
    /// Its primary group by name. Default: a group of the user's own name, made if missing.
    pub group: Option<String>,
    /// Its primary group by id (instead of `group`).
    pub gid: Option<u32>,
    /// The comment field. Default: empty.
    #[serde(default)]
    pub gecos: String,
    /// Its home directory (not created). Default: `/`.
    pub home: Option<String>,
    /// Its shell. Default: `/usr/sbin/nologin`.
    pub shell: Option<String>,
    /// Supplementary groups, which must exist. Default: none.
    #[serde(default)]
    pub groups: Vec<String>,
}

/// `[[dir]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirEntry {
    /// Where the directory goes in the image. Required.
    pub path: Spanned<String>,
    /// Permission bits as an octal string. Default: `0755`.
    pub mode: Option<Mode>,
    /// Owner. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Group. Default: 0.
    #[serde(default)]
    pub gid: u32,
    /// Owner by name: one of the image's own users (instead of `uid`). Default: absent.
    pub owner: Option<Spanned<String>>,
    /// Group by name: one of the image's own groups (instead of `gid`). Default: absent.
    pub group: Option<Spanned<String>>,
}

/// `[[symlink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SymlinkEntry {
    /// Where the link goes in the image. Required.
    pub path: Spanned<String>,
    /// What the link points to, stored as written (relative or absolute). Required.
    pub target: Spanned<String>,
    /// Owner. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Group. Default: 0.
    #[serde(default)]
    pub gid: u32,
    /// Owner by name: one of the image's own users (instead of `uid`). Default: absent.
    pub owner: Option<Spanned<String>>,
    /// Group by name: one of the image's own groups (instead of `gid`). Default: absent.
    pub group: Option<Spanned<String>>,
}

/// `[[hardlink]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HardlinkEntry {
    /// The new name. Required.
    pub path: Spanned<String>,
    /// An existing regular file in the image that the new name shares. Required.
    pub target: Spanned<String>,
}

/// `[[device]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceEntry {
    /// Where the node goes in the image. Required.
    pub path: Spanned<String>,
    /// `char`, `block` or `fifo`. Required.
    #[serde(rename = "type")]
    pub kind: DeviceKind,
    /// Major number; required for `char` and `block`, refused for `fifo`.
    pub major: Option<u32>,
    /// Minor number; required for `char` and `block`, refused for `fifo`.
    pub minor: Option<u32>,
    /// Permission bits as an octal string. Default: `0600`.
    pub mode: Option<Mode>,
    /// Owner. Default: 0.
    #[serde(default)]
    pub uid: u32,
    /// Group. Default: 0.
    #[serde(default)]
    pub gid: u32,
    /// Owner by name: one of the image's own users (instead of `uid`). Default: absent.
    pub owner: Option<Spanned<String>>,
    /// Group by name: one of the image's own groups (instead of `gid`). Default: absent.
    pub group: Option<Spanned<String>>,
}

/// The kinds of special file a `[[device]]` can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

impl DeviceKind {
    pub fn file_type(self) -> FileType {
        match self {
            DeviceKind::Char => FileType::Char,
            DeviceKind::Block => FileType::Block,
            DeviceKind::Fifo => FileType::Fifo,
        }
    }
}

/// The kinds of input a recipe names, as manifests and lock files record them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputKind {
    /// A `[[layer]] dir`.
    Dir,
    /// A `[[layer]] tar`.
    Tar,
    /// A `[[layer]] deb`.
    Deb,
    /// One package of a `[[layer]] packages`, a `.deb` in the cache.
    Package,
    /// The `[kernel] deb` (a `[kernel] package` is a `Package`).
    Kernel,
    /// A `[[file]] source`.
    File,
}

impl InputKind {
    /// The word manifests and lock files use.
    pub fn name(self) -> &'static str {
        match self {
            InputKind::Dir => "dir",
            InputKind::Tar => "tar",
            InputKind::Deb => "deb",
            InputKind::Package => "package",
            InputKind::Kernel => "kernel",
            InputKind::File => "file",
        }
    }
}

/// `[remove]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Remove {
    /// Glob patterns of image paths to prune after all layers (`*` stays within one name,
    /// `**` crosses directories); a matching directory goes with everything below it.
    /// Default: none.
    #[serde(default)]
    pub paths: Vec<Spanned<String>>,
}

/// Permission bits, written in a recipe as an octal string such as `"0755"` or `"4755"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mode(pub u32);

impl Mode {
    /// Parses `"0755"`, `"755"` or `"0o755"`: octal digits, at most `7777`.
    pub fn parse(text: &str) -> Option<Mode> {
        let digits = text.strip_prefix("0o").unwrap_or(text);
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        let value = u32::from_str_radix(digits, 8).ok()?;
        (value <= 0o7777).then_some(Mode(value))
    }
}

impl<'de> Deserialize<'de> for Mode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Mode, D::Error> {
        struct ModeVisitor;
        const EXPECTED: &str = "an octal mode string such as \"0755\"";

        impl Visitor<'_> for ModeVisitor {
            type Value = Mode;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(EXPECTED)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> std::result::Result<Mode, E> {
                Mode::parse(text)
                    .ok_or_else(|| E::custom(format!("invalid mode `{text}`: expected {EXPECTED}, at most \"7777\"")))
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> std::result::Result<Mode, E> {
                Err(E::custom(format!(
                    "invalid mode {value}: write modes as strings, such as \"0755\", \
                     so that octal cannot be mistaken for decimal"
                )))
            }
        }

        deserializer.deserialize_any(ModeVisitor)
    }
}

/// A recipe file read from disk, with what is needed to point at a place in it.
pub struct RecipeFile {
    /// The path as the user gave it, for messages.
    pub path: PathBuf,
    /// The folder relative paths in the recipe resolve against.
    pub base: PathBuf,
    /// The file's text.
    pub text: String,
    /// The decoded recipe.
    pub recipe: Recipe,
}

impl RecipeFile {
    /// Reads and decodes a recipe; a syntax error or unknown key names the file, line and column.
    pub fn load(path: &Path) -> Result<RecipeFile> {
        let bytes = std::fs::read(path).reading(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| Error::input(format!("`{}`: a recipe must be UTF-8 text", path.display())))?;
        let recipe =
            parse(&text).map_err(|e| Error::input(format!("{}: {}", location(path, &text, e.offset), e.message)))?;
        let base = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(RecipeFile { path: path.to_path_buf(), base, text, recipe })
    }

    /// `recipe.toml:LINE:COLUMN` for a byte offset in the recipe.
    pub fn at(&self, offset: usize) -> String {
        location(&self.path, &self.text, offset)
    }

    /// An input error at a place in the recipe: `recipe.toml:3:8: message`.
    pub fn error<T>(&self, span: &Spanned<T>, message: impl fmt::Display) -> Error {
        Error::input(format!("{}: {message}", self.at(span.span().start)))
    }

    /// A path named in the recipe, resolved against the recipe's folder.
    pub fn host_path(&self, relative: &str) -> PathBuf {
        self.base.join(relative)
    }
}

/// Why recipe text does not decode, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    /// The byte offset in the text the error is about.
    pub offset: usize,
    /// One line, lower-case as TOML words it.
    pub message: String,
}

/// Decodes recipe text.
pub fn parse(text: &str) -> std::result::Result<Recipe, ParseError> {
    toml::from_str::<Recipe>(text).map_err(|e| ParseError {
        offset: e.span().map(|span| span.start).unwrap_or(0),
        message: one_line(e.message()),
    })
}

/// `path:LINE:COLUMN`, both counted from 1, the column in characters.
fn location(path: &Path, text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.bytes().filter(|&b| b == b'\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let column = text[line_start..offset].chars().count() + 1;
    format!("{}:{line}:{column}", path.display())
}

/// TOML messages can span lines; errors here are one line each.
fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> std::result::Result<Recipe, String> {
        toml::from_str::<Recipe>(text).map_err(|e| e.message().to_string())
    }

    #[test]
    fn modes_are_octal_strings() {
        assert_eq!(Mode::parse("0755"), Some(Mode(0o755)));
        assert_eq!(Mode::parse("4755"), Some(Mode(0o4755)));
        assert_eq!(Mode::parse("0o644"), Some(Mode(0o644)));
        assert_eq!(Mode::parse("0788"), None);
        assert_eq!(Mode::parse("17777"), None);
        assert_eq!(Mode::parse(""), None);
        assert_eq!(Mode::parse("rwx"), None);
    }

    #[test]
    fn a_mode_written_as_a_number_is_refused_with_a_hint() {
        let err = parse("[image]\nname = \"x\"\n[[dir]]\npath = \"/a\"\nmode = 755\n").unwrap_err();
        assert!(err.contains("write modes as strings"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = parse("[image]\nname = \"x\"\ncolour = \"red\"\n").unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
        let err = parse("[image]\nname = \"x\"\n[[layer]]\nfolder = \"a\"\n").unwrap_err();
        assert!(err.contains("unknown field `folder`"), "{err}");
    }

    #[test]
    fn locations_count_lines_and_characters_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(location(Path::new("r.toml"), text, 0), "r.toml:1:1");
        let at = text.find('=').unwrap();
        assert_eq!(location(Path::new("r.toml"), text, at), "r.toml:1:3");
        let at = text.rfind('=').unwrap();
        assert_eq!(location(Path::new("r.toml"), text, at), "r.toml:2:4");
    }

    #[test]
    fn a_full_recipe_decodes() {
        let recipe = parse(
            r##"
            [image]
            name = "hello"
            epoch = 1700000000
            [initramfs]
            compression = "xz"
            level = 9
            [[layer]]
            deb = "busybox.deb"
            sha256 = "00"
            [[file]]
            path = "/init"
            mode = "0755"
            content = "#!/bin/sh\n"
            [[device]]
            path = "/dev/console"
            type = "char"
            major = 5
            minor = 1
            [remove]
            paths = ["/usr/share/doc/**"]
            "##,
        )
        .unwrap();
        assert_eq!(recipe.initramfs.unwrap().compression, Compression::Xz);
        assert_eq!(recipe.layers.len(), 1);
        assert_eq!(recipe.files[0].get_ref().mode, Some(Mode(0o755)));
        assert_eq!(recipe.devices[0].get_ref().kind, DeviceKind::Char);
        assert_eq!(recipe.remove.unwrap().paths.len(), 1);
    }
}
