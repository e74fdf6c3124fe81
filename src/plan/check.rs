//! The recipe checked against itself and the host files it names, before any input is read:
//! names, the epoch, levels, which layers it has, its own entries and its `[remove]` patterns.
//! A typo is reported in a moment, with the file, line and column, not after minutes of
//! unpacking. Each check is a function of the recipe (and, for `source` files, of their bytes).

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use toml::Spanned;

use crate::base::error::{Error, Result, io_cause};
use crate::base::hash::{Digest, digest_file, hex, parse_hex};
use crate::base::path::ImagePath;
use crate::debian::resolve::Variant;
use crate::format::compress::Compression;
use crate::format::limits::{check_device_numbers, check_symlink_target};
use crate::recipe::{DeviceKind, InputKind, Mode, RecipeFile};
use crate::source::content::Content;
use crate::source::packages::PackagesLayer;
use crate::source::{Input, Meta, Node, check_file_size};

/// A `[[file]]`, `[[dir]]`, ... of the recipe, checked but not yet placed.
pub(super) struct Declared {
    pub path: ImagePath,
    /// Where the recipe declares it (`recipe.toml:12:8`), for messages.
    pub label: String,
    pub what: Declaration,
    /// Owner and group by name, resolved against the image's accounts when it is placed.
    pub names: OwnerNames,
}

/// An owner and a group given by name, each with where the recipe gives it.
#[derive(Default)]
pub(super) struct OwnerNames {
    pub owner: Option<(String, String)>,
    pub group: Option<(String, String)>,
}

/// The names an entry gives for its owner and group; an error when it also gives the number.
fn owner_names(
    recipe: &RecipeFile,
    (uid, gid): (u32, u32),
    owner: &Option<Spanned<String>>,
    group: &Option<Spanned<String>>,
) -> Result<OwnerNames> {
    let name = |value: &Option<Spanned<String>>, number: u32, key: &str, numeric: &str| match value {
        Some(v) if number != 0 => Err(recipe.error(v, format!("give `{key}` or `{numeric}`, not both"))),
        Some(v) => Ok(Some((v.get_ref().clone(), recipe.at(v.span().start)))),
        None => Ok(None),
    };
    Ok(OwnerNames { owner: name(owner, uid, "owner", "uid")?, group: name(group, gid, "group", "gid")? })
}

pub(super) enum Declaration {
    Entry(Node, Meta),
    Hardlink(ImagePath),
}

/// An input layer, checked but not yet read.
pub(super) struct LayerInput<'r> {
    /// The layer's number in the recipe, from 1 (the packages of one `packages` layer share it).
    pub number: usize,
    pub source: LayerSource<'r>,
}

/// Where a layer's contents come from.
pub(super) enum LayerSource<'r> {
    /// A host folder, tar archive or Debian package the recipe names, with the recipe's pin.
    Host { kind: InputKind, written: String, host: PathBuf, pin: Option<&'r Spanned<String>> },
    /// One package of a `packages` layer, fetched into the cache (its digest checked then).
    /// Boxed: a pinned package is large beside the other variants.
    Package { package: Box<crate::lockfile::LockedPackage>, host: PathBuf, sha256: Digest },
    /// A `packages` request, not yet resolved.
    Packages(PackagesLayer<'r>),
}

impl LayerInput<'_> {
    /// `layer 2 (`base.tar`)`, `layer 3 (package `jq` 1.6-2.1 (amd64))`, for messages.
    pub fn label(&self) -> String {
        match &self.source {
            LayerSource::Host { written, .. } => format!("layer {} (`{written}`)", self.number),
            LayerSource::Package { package, .. } => format!("layer {} (package {})", self.number, package.label()),
            LayerSource::Packages(_) => format!("layer {} (packages)", self.number),
        }
    }
}

/// The image name: the stem of every output file.
pub(super) fn name(recipe: &RecipeFile) -> Result<String> {
    let name = &recipe.recipe.image.name;
    let text = name.get_ref();
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if text.is_empty() || text.starts_with('.') || !text.chars().all(allowed) {
        return Err(recipe.error(
            name,
            format!(
                "image name `{text}` must be letters, digits, `.`, `_` and `-`, not starting \
                 with `.` (it is the stem of the output files)"
            ),
        ));
    }
    Ok(text.clone())
}

/// The image epoch: the recipe's `epoch`, else `SOURCE_DATE_EPOCH`, else 0.
pub(super) fn epoch(recipe: &RecipeFile, source_date_epoch: Option<&str>) -> Result<u64> {
    if let Some(epoch) = &recipe.recipe.image.epoch {
        return u64::try_from(*epoch.get_ref())
            .map_err(|_| recipe.error(epoch, "`epoch` is seconds since 1970 and cannot be negative"));
    }
    match source_date_epoch {
        None => Ok(0),
        Some(text) => text.trim().parse::<u64>().map_err(|_| {
            Error::input(format!(
                "SOURCE_DATE_EPOCH=`{text}` is not a whole number of seconds since 1970; fix or \
                 unset it, or set `epoch` in `[image]` of `{}`",
                recipe.path.display()
            ))
        }),
    }
}

/// The compression level, when the recipe gives one the compressor has.
pub(super) fn level(
    recipe: &RecipeFile,
    compression: Compression,
    level: Option<&Spanned<i64>>,
) -> Result<Option<i64>> {
    let Some(level) = level else { return Ok(None) };
    match compression.levels() {
        None => Err(recipe.error(level, format!("`{}` compression has no levels: remove `level`", compression.name()))),
        Some((low, high, _)) if !(low..=high).contains(level.get_ref()) => Err(recipe
            .error(level, format!("`{}` levels go from {low} to {high}, not {}", compression.name(), level.get_ref()))),
        Some(_) => Ok(Some(*level.get_ref())),
    }
}

/// Whether the image is written as frames: by default for zstd, gzip and xz; `frames` with
/// `lz4` or `none`, which are always one stream, is a mistake worth naming.
pub(super) fn frames(recipe: &RecipeFile, compression: Compression, frames: Option<&Spanned<bool>>) -> Result<bool> {
    let framed = matches!(compression, Compression::Zstd | Compression::Gzip | Compression::Xz);
    match frames {
        None => Ok(framed),
        Some(frames) if !framed => Err(recipe.error(
            frames,
            format!(
                "`{}` images are always one stream: remove `frames` (it applies to zstd, gzip and xz)",
                compression.name()
            ),
        )),
        Some(frames) => Ok(*frames.get_ref()),
    }
}

/// Every `[[layer]]`: which one kind of input it is, and that a host input is there.
pub(super) fn layers(recipe: &RecipeFile) -> Result<Vec<LayerInput<'_>>> {
    recipe.recipe.layers.iter().enumerate().map(|(index, layer)| self::layer(recipe, index + 1, layer)).collect()
}

fn layer<'r>(
    recipe: &'r RecipeFile,
    number: usize,
    layer: &'r Spanned<crate::recipe::Layer>,
) -> Result<LayerInput<'r>> {
    let l = layer.get_ref();
    let given: Vec<(InputKind, &Spanned<String>)> =
        [(InputKind::Dir, &l.dir), (InputKind::Tar, &l.tar), (InputKind::Deb, &l.deb)]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect();
    match given.len() + usize::from(l.packages.is_some()) {
        0 => return Err(recipe.error(layer, "a `[[layer]]` needs one of `dir`, `tar`, `deb` or `packages`")),
        1 => {}
        _ => {
            return Err(recipe.error(
                layer,
                "a `[[layer]]` takes only one of `dir`, `tar`, `deb` or `packages`; use one layer each",
            ));
        }
    }
    if let Some(names) = &l.packages {
        if let Some(pin) = &l.sha256 {
            return Err(recipe.error(pin, "`sha256` pins a `tar` or `deb` file; packages are pinned by `bake lock`"));
        }
        let exclude = l.exclude.as_ref().map_or_else(Vec::new, |e| e.get_ref().clone());
        let variant = match &l.variant {
            Some(v) => Some(Variant::parse(v.get_ref()).ok_or_else(|| {
                recipe.error(v, format!("`variant` is `\"essential\"` or `\"minbase\"`, not `{:?}`", v.get_ref()))
            })?),
            None => None,
        };
        let recommends = l.recommends.unwrap_or(false);
        let request = PackagesLayer { layer: number, names, exclude, recommends, variant };
        return Ok(LayerInput { number, source: LayerSource::Packages(request) });
    }
    if let Some(exclude) = &l.exclude {
        return Err(recipe.error(exclude, "`exclude` drops packages from a `packages` layer; this layer has none"));
    }
    if l.recommends.is_some() {
        return Err(recipe.error(layer, "`recommends` applies to a `packages` layer; this layer has none"));
    }
    if let Some(variant) = &l.variant {
        return Err(recipe.error(variant, "`variant` applies to a `packages` layer; this layer has none"));
    }
    let (kind, value) = given[0];
    let is_dir = kind == InputKind::Dir;
    if is_dir && let Some(pin) = &l.sha256 {
        return Err(recipe.error(pin, "`sha256` pins a `tar` or `deb` file; a `dir` layer cannot be pinned"));
    }
    let host = recipe.host_path(value.get_ref());
    let meta = std::fs::metadata(&host)
        .map_err(|e| recipe.error(value, format!("cannot read `{}`: {}", host.display(), io_cause(&e))))?;
    if meta.is_dir() != is_dir || (!is_dir && !meta.is_file()) {
        let want = if is_dir { "a directory" } else { "a regular file" };
        return Err(recipe.error(value, format!("`{}` is not {want}", host.display())));
    }
    let written = value.get_ref().clone();
    Ok(LayerInput { number, source: LayerSource::Host { kind, written, host, pin: l.sha256.as_ref() } })
}

fn image_path(recipe: &RecipeFile, path: &Spanned<String>) -> Result<ImagePath> {
    ImagePath::from_recipe(path.get_ref()).map_err(|e| recipe.error(path, format!("`{}`: {e}", path.get_ref())))
}

fn mode_or(mode: Option<Mode>, default: u32) -> u32 {
    mode.map_or(default, |m| m.0)
}

/// The recipe's own entries, checked, with their sources read; returned in the order they are
/// applied (directories, symlinks, files, devices, hard links: so each can rely on the ones
/// before), and the source files as inputs.
pub(super) fn declared(recipe: &RecipeFile, file_limit: u64) -> Result<(Vec<Declared>, Vec<Input>)> {
    let r = &recipe.recipe;
    let mut out = Vec::new();
    let mut inputs = Vec::new();
    let mut seen: HashMap<ImagePath, String> = HashMap::new();
    let mut add =
        |path: &Spanned<String>, what: Declaration, names: OwnerNames, out: &mut Vec<Declared>| -> Result<()> {
            let image = image_path(recipe, path)?;
            let label = format!("`{}`", recipe.at(path.span().start));
            if let Some(first) = seen.get(&image) {
                return Err(recipe.error(path, format!("`{image}` is declared twice: first at {first}")));
            }
            seen.insert(image.clone(), label.clone());
            out.push(Declared { path: image, label, what, names });
            Ok(())
        };
    for d in &r.dirs {
        let d = d.get_ref();
        let meta = Meta { mode: mode_or(d.mode, 0o755), uid: d.uid, gid: d.gid };
        let names = owner_names(recipe, (d.uid, d.gid), &d.owner, &d.group)?;
        add(&d.path, Declaration::Entry(Node::Dir, meta), names, &mut out)?;
    }
    for s in &r.symlinks {
        let s = s.get_ref();
        check_symlink_target(s.target.get_ref().as_bytes()).map_err(|e| recipe.error(&s.target, e))?;
        let meta = Meta { mode: 0o777, uid: s.uid, gid: s.gid };
        let node = Node::Symlink { target: s.target.get_ref().as_bytes().to_vec() };
        let names = owner_names(recipe, (s.uid, s.gid), &s.owner, &s.group)?;
        add(&s.path, Declaration::Entry(node, meta), names, &mut out)?;
    }
    for f in &r.files {
        let entry = f.get_ref();
        let (content, default_mode) = match (&entry.source, &entry.content) {
            (Some(source), None) => {
                let host = recipe.host_path(source.get_ref());
                let (content, executable) = read_source(&host, file_limit).map_err(|e| recipe.error(source, e))?;
                inputs.push(Input { kind: InputKind::File, path: source.get_ref().clone(), sha256: content.sha256 });
                (content, if executable { 0o755 } else { 0o644 })
            }
            (None, Some(text)) => (Content::inline(text.as_bytes()), 0o644),
            _ => return Err(recipe.error(f, "a `[[file]]` needs exactly one of `source` or `content`")),
        };
        let meta = Meta { mode: mode_or(entry.mode, default_mode), uid: entry.uid, gid: entry.gid };
        let names = owner_names(recipe, (entry.uid, entry.gid), &entry.owner, &entry.group)?;
        add(&entry.path, Declaration::Entry(Node::File { content }, meta), names, &mut out)?;
    }
    for d in &r.devices {
        let entry = d.get_ref();
        let meta = Meta { mode: mode_or(entry.mode, 0o600), uid: entry.uid, gid: entry.gid };
        let names = owner_names(recipe, (entry.uid, entry.gid), &entry.owner, &entry.group)?;
        add(&entry.path, Declaration::Entry(device(recipe, d)?, meta), names, &mut out)?;
    }
    for h in &r.hardlinks {
        let entry = h.get_ref();
        let target = image_path(recipe, &entry.target)?;
        add(&entry.path, Declaration::Hardlink(target), OwnerNames::default(), &mut out)?;
    }
    Ok((out, inputs))
}

/// A `[[device]]`'s node: a FIFO has no numbers, a device both.
fn device(recipe: &RecipeFile, d: &Spanned<crate::recipe::DeviceEntry>) -> Result<Node> {
    let entry = d.get_ref();
    let (major, minor) = match (entry.kind, entry.major, entry.minor) {
        (DeviceKind::Fifo, None, None) => (0, 0),
        (DeviceKind::Fifo, _, _) => return Err(recipe.error(d, "a `fifo` has no `major` or `minor` numbers")),
        (_, Some(major), Some(minor)) => {
            check_device_numbers(major, minor).map_err(|e| recipe.error(d, e))?;
            (major, minor)
        }
        _ => return Err(recipe.error(d, "a `char` or `block` device needs both `major` and `minor`")),
    };
    Ok(Node::Device { kind: entry.kind, major, minor })
}

/// Reads a recipe `source` file: it must be a regular file (a FIFO or `/dev/zero` would never
/// end). Returns its content and whether any exec bit is set.
fn read_source(host: &Path, file_limit: u64) -> Result<(Content, bool)> {
    let meta = std::fs::metadata(host)
        .map_err(|e| Error::input(format!("cannot read `{}`: {}", host.display(), io_cause(&e))))?;
    if !meta.is_file() {
        return Err(Error::input(format!("`{}` is not a regular file", host.display())));
    }
    check_file_size(&format!("`{}`", host.display()), meta.len(), file_limit)?;
    let (sha256, size) = digest_file(host)?;
    Ok((Content::host(host, size, sha256), meta.permissions().mode() & 0o111 != 0))
}

/// A `[remove]` pattern, compiled.
pub(super) struct Pattern {
    pub text: String,
    pub matcher: globset::GlobMatcher,
}

/// The `[remove]` patterns, compiled: anchored at the image root, `*` within one name.
pub(super) fn patterns(recipe: &RecipeFile) -> Result<Vec<Pattern>> {
    let Some(remove) = &recipe.recipe.remove else { return Ok(Vec::new()) };
    remove
        .paths
        .iter()
        .map(|p| {
            let text = p.get_ref();
            let anchored = if text.starts_with('/') { text.clone() } else { format!("/{text}") };
            let glob = globset::GlobBuilder::new(&anchored)
                .literal_separator(true)
                .backslash_escape(true)
                .build()
                .map_err(|e| recipe.error(p, format!("bad pattern `{text}`: {}", e.kind())))?;
            Ok(Pattern { text: text.clone(), matcher: glob.compile_matcher() })
        })
        .collect()
}

/// Refuses an input whose digest is not the `sha256` the recipe pins for it.
pub(super) fn pin(recipe: &RecipeFile, pin: &Spanned<String>, host: &Path, sha256: &Digest) -> Result<()> {
    let expected = parse_hex(pin.get_ref())
        .ok_or_else(|| recipe.error(pin, format!("`sha256` must be 64 hex digits, not `{}`", pin.get_ref())))?;
    if expected != *sha256 {
        return Err(recipe.error(
            pin,
            format!(
                "`{}` has sha256 {}, but the recipe pins {}: the file is not the one the recipe was written for",
                host.display(),
                hex(sha256),
                pin.get_ref()
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error of a result that must be one.
    fn err<T>(result: Result<T>) -> Error {
        match result {
            Err(e) => e,
            Ok(_) => panic!("expected an error"),
        }
    }

    fn recipe(dir: &Path, text: &str) -> RecipeFile {
        let path = dir.join("r.toml");
        std::fs::write(&path, text).unwrap();
        RecipeFile::load(&path).unwrap()
    }

    #[test]
    fn names_are_output_stems() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(name(&recipe(dir.path(), "[image]\nname = \"a-1.b_c\"\n")).unwrap(), "a-1.b_c");
        for bad in [".hidden", "a/b", "", "spa ce"] {
            let err = name(&recipe(dir.path(), &format!("[image]\nname = {bad:?}\n"))).unwrap_err();
            assert!(err.message().contains("r.toml:2:8: image name"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_epoch_comes_from_the_recipe_then_the_environment_then_zero() {
        let dir = tempfile::tempdir().unwrap();
        let with = recipe(dir.path(), "[image]\nname = \"x\"\nepoch = 7\n");
        assert_eq!(epoch(&with, Some("9")).unwrap(), 7);
        let without = recipe(dir.path(), "[image]\nname = \"x\"\n");
        assert_eq!(epoch(&without, Some(" 9\n")).unwrap(), 9);
        assert_eq!(epoch(&without, None).unwrap(), 0);
        assert!(epoch(&without, Some("yesterday")).unwrap_err().message().contains("SOURCE_DATE_EPOCH=`yesterday`"));
        let negative = recipe(dir.path(), "[image]\nname = \"x\"\nepoch = -1\n");
        assert!(epoch(&negative, None).unwrap_err().message().contains("r.toml:3:9: `epoch` is seconds"));
    }

    #[test]
    fn levels_are_checked_against_the_compressor() {
        let dir = tempfile::tempdir().unwrap();
        let r = recipe(dir.path(), "[image]\nname = \"x\"\n[initramfs]\nlevel = 20\n");
        let level_of = |c| level(&r, c, r.recipe.initramfs.as_ref().unwrap().level.as_ref());
        assert!(level_of(Compression::Zstd).unwrap_err().message().contains("levels go from 1 to 19, not 20"));
        assert!(level_of(Compression::Lz4).unwrap_err().message().contains("has no levels"));
        assert_eq!(level(&r, Compression::Zstd, None).unwrap(), None);
    }

    #[test]
    fn a_layer_names_exactly_one_kind_of_input() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("root")).unwrap();
        let two = recipe(dir.path(), "[image]\nname = \"x\"\n[[layer]]\ndir = \"root\"\ntar = \"a.tar\"\n");
        assert!(err(layers(&two)).message().contains("takes only one of"));
        let pinned = recipe(dir.path(), "[image]\nname = \"x\"\n[[layer]]\ndir = \"root\"\nsha256 = \"00\"\n");
        assert!(err(layers(&pinned)).message().contains("a `dir` layer cannot be pinned"));
        let not_a_file = recipe(dir.path(), "[image]\nname = \"x\"\n[[layer]]\ntar = \"root\"\n");
        assert!(err(layers(&not_a_file)).message().contains("is not a regular file"));
        let good = recipe(dir.path(), "[image]\nname = \"x\"\n[[layer]]\ndir = \"root\"\n");
        let layers = layers(&good).unwrap();
        assert!(
            matches!(&layers[0].source, LayerSource::Host { kind: InputKind::Dir, written, .. } if written == "root")
        );
        assert_eq!(layers[0].label(), "layer 1 (`root`)");
    }

    #[test]
    fn entries_are_applied_directories_first_and_declared_once() {
        let dir = tempfile::tempdir().unwrap();
        let r = recipe(
            dir.path(),
            "[image]\nname = \"x\"\n[[hardlink]]\npath = \"/b\"\ntarget = \"/a\"\n[[file]]\npath = \"/a\"\n\
             content = \"x\"\n[[dir]]\npath = \"/d\"\n",
        );
        let (declared, inputs) = declared(&r, u64::MAX).unwrap();
        let order: Vec<String> = declared.iter().map(|d| d.path.to_string()).collect();
        assert_eq!(order, ["/d", "/a", "/b"]);
        assert!(inputs.is_empty());
        let twice = recipe(dir.path(), "[image]\nname = \"x\"\n[[dir]]\npath = \"/d\"\n[[dir]]\npath = \"d/\"\n");
        let err = err(self::declared(&twice, u64::MAX));
        assert!(err.message().contains("`/d` is declared twice: first at `"), "{err}");
    }

    #[test]
    fn a_pin_must_be_the_inputs_digest() {
        let dir = tempfile::tempdir().unwrap();
        let r = recipe(dir.path(), "[image]\nname = \"x\"\n");
        let pinned = Spanned::new(0..1, "ab".repeat(32));
        let err = pin(&r, &pinned, Path::new("a.tar"), &[0; 32]).unwrap_err();
        assert!(err.message().contains("`a.tar` has sha256 0000"), "{err}");
        assert!(pin(&r, &pinned, Path::new("a.tar"), &[0xab; 32]).is_ok());
        let short = Spanned::new(0..1, "ab".to_string());
        assert!(pin(&r, &short, Path::new("a.tar"), &[0; 32]).unwrap_err().message().contains("64 hex digits"));
    }
}
