//! A distribution's kernel package, read without depmod: the kernel image, every module with
//! what its `.modinfo` section says (`depends=`, `softdep=`), and `modules.builtin`.
//!
//! Stock kernels build most drivers as modules (Debian's: virtio_pci, virtio_blk, erofs, ...),
//! so an image that boots them must carry the modules it needs and their dependencies; which
//! ones, and how they are laid out, is the plan's work ([`crate::plan::modules`]). Modules are
//! kept decompressed, never stripped (they may be signed).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::content::{Content, Spool};
use super::store::Entry;
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, hex, parse_hex};
use crate::format::compress::{self, Compression};

/// Largest module file read into memory to find its `.modinfo` (the biggest real ones are a few
/// MiB).
const MAX_MODULE: u64 = 256 << 20;

/// What a module's `.modinfo` says about other modules.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModInfo {
    pub depends: Vec<String>,
    /// `softdep=pre: a b post: c`: load `a` and `b` before, `c` after, when they exist.
    pub pre: Vec<String>,
    pub post: Vec<String>,
    /// Every `alias=` value, in the section's order (depmod's `modules.alias`).
    pub aliases: Vec<String>,
    /// Every `softdep=` value as written (depmod's `modules.softdep`).
    pub softdeps: Vec<String>,
}

/// A module's symbols as depmod reads them: what it exports and what it needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Symbols {
    /// Exported names: the `__crc_NAME` symbols of `.symtab` (a kernel with symbol versions),
    /// else the strings of `__ksymtab_strings`, in the file's order.
    pub exports: Vec<String>,
    /// Undefined symbols of `.symtab`, in order.
    pub needs: Vec<String>,
}

/// Reads a module's exported and undefined symbols, as libkmod does for depmod.
pub fn read_symbols(elf: &[u8]) -> Result<Symbols> {
    use object::{Object, ObjectSection, ObjectSymbol};
    let file = object::File::parse(elf).map_err(|e| Error::input(format!("not an ELF module: {e}")))?;
    let mut symbols = Symbols::default();
    for symbol in file.symbols() {
        let Ok(name) = symbol.name() else { continue };
        if let Some(exported) = name.strip_prefix("__crc_") {
            symbols.exports.push(exported.to_string());
        }
        if symbol.is_undefined() && !name.is_empty() {
            symbols.needs.push(name.to_string());
        }
    }
    if let Some(section) = file.section_by_name("__ksymtab_strings").filter(|_| symbols.exports.is_empty()) {
        let data = section.data().map_err(|e| Error::input(format!("cannot read its __ksymtab_strings: {e}")))?;
        symbols.exports = data
            .split(|&b| b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect();
    }
    Ok(symbols)
}

/// One loadable module of the package.
#[derive(Debug, Clone)]
pub struct Module {
    pub name: String,
    /// Path below `/lib/modules/VERSION/`, with any compression suffix removed.
    pub path: String,
    pub content: Content,
    pub info: ModInfo,
}

/// The parts of a kernel package bake uses.
#[derive(Debug)]
pub struct KernelPackage {
    pub version: String,
    pub vmlinuz: Content,
    pub modules: BTreeMap<String, Module>,
    /// Names of the modules built into the kernel.
    pub builtin: BTreeSet<String>,
    /// `modules.builtin`, `modules.builtin.modinfo` and `modules.order`, kept as the package ships them.
    pub index_files: Vec<(String, Content)>,
}

/// The name modprobe uses for a module file: the file name without `.ko` and any compression
/// suffix, with `-` written `_`.
pub fn module_name(file: &str) -> Option<String> {
    let base = file.rsplit('/').next()?;
    let stem = [".ko", ".ko.xz", ".ko.zst", ".ko.gz"].iter().find_map(|s| base.strip_suffix(s))?;
    Some(stem.replace('-', "_"))
}

fn names(text: &str) -> Vec<String> {
    text.split([',', ' ']).filter(|s| !s.is_empty()).map(|s| s.replace('-', "_")).collect()
}

/// Reads the `.modinfo` section of a module (an ELF relocatable file).
pub fn parse_modinfo(elf: &[u8]) -> Result<ModInfo> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| Error::input(format!("not an ELF module: {e}")))?;
    let section = file.section_by_name(".modinfo").ok_or_else(|| Error::input("it has no .modinfo section"))?;
    let data = section.data().map_err(|e| Error::input(format!("cannot read its .modinfo: {e}")))?;
    Ok(ModInfo::from_records(data))
}

impl ModInfo {
    /// What the NUL-separated `key=value` records of a `.modinfo` section say.
    pub fn from_records(data: &[u8]) -> ModInfo {
        let mut info = ModInfo::default();
        for record in data.split(|&b| b == 0) {
            let Ok(record) = std::str::from_utf8(record) else { continue };
            let Some((key, value)) = record.split_once('=') else { continue };
            match key {
                "depends" => info.depends.extend(names(value)),
                "alias" => info.aliases.push(value.to_string()),
                "softdep" => {
                    info.softdeps.push(value.to_string());
                    // `pre: a b post: c` (either part may be missing).
                    let mut target = None;
                    for word in value.split_whitespace() {
                        match word {
                            "pre:" => target = Some(&mut info.pre),
                            "post:" => target = Some(&mut info.post),
                            name => {
                                if let Some(list) = target.as_deref_mut() {
                                    list.push(name.replace('-', "_"));
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        info
    }
}

/// `lib/modules/VERSION/rest` or `usr/lib/modules/VERSION/rest` -> (VERSION, rest).
fn under_modules(path: &str) -> Option<(&str, &str)> {
    let rest = path.strip_prefix("lib/modules/").or_else(|| path.strip_prefix("usr/lib/modules/"))?;
    rest.split_once('/')
}

/// Reads a kernel package (`.deb`): its kernel image, modules and module indexes.
pub fn read_package(path: &Path, spool: &mut Spool) -> Result<KernelPackage> {
    let label = path.display().to_string();
    let file = std::fs::File::open(path).reading(path)?;
    let mut vmlinuz: Option<(String, Content)> = None;
    let mut modules = BTreeMap::new();
    let mut index_files = Vec::new();
    let mut builtin = BTreeSet::new();
    let mut versions = BTreeSet::new();
    let (start, len) = super::deb::data_member(&file, &label)?;
    super::tar::for_each_file_at(&file, start, len, &label, |name, size, reader| {
        let bad = |what: String| Error::input(format!("`{label}`: entry `{name}`: {what}"));
        let store = |spool: &mut Spool, reader: &mut dyn Read, size: u64| {
            spool.store(reader, size).map_err(|e| e.into_error(bad))
        };
        if let Some(version) = name.strip_prefix("boot/vmlinuz-") {
            if vmlinuz.is_some() {
                return Err(bad("the package holds more than one kernel".into()));
            }
            vmlinuz = Some((version.to_string(), store(spool, reader, size)?));
            return Ok(());
        }
        let Some((version, rest)) = under_modules(name) else { return Ok(()) };
        versions.insert(version.to_string());
        if let Some(module) = module_name(rest) {
            if size > MAX_MODULE {
                return Err(bad(format!("a module of {size} bytes is not plausible")));
            }
            let mut raw = Vec::with_capacity(size as usize);
            reader.take(size).read_to_end(&mut raw).map_err(|e| bad(e.to_string()))?;
            let elf = decompress(&raw).map_err(|e| bad(format!("cannot decompress: {e}")))?;
            let info = parse_modinfo(&elf).map_err(|e| bad(e.to_string()))?;
            let content = store(spool, &mut &elf[..], elf.len() as u64)?;
            let plain = [".xz", ".zst", ".gz"].iter().find_map(|s| rest.strip_suffix(s)).unwrap_or(rest);
            modules.insert(module.clone(), Module { name: module, path: plain.to_string(), content, info });
        } else if matches!(rest, "modules.builtin" | "modules.builtin.modinfo" | "modules.order") {
            let mut text = Vec::new();
            reader.take(size).read_to_end(&mut text).map_err(|e| bad(e.to_string()))?;
            if rest == "modules.builtin" {
                builtin.extend(String::from_utf8_lossy(&text).lines().filter_map(module_name));
            }
            index_files.push((rest.to_string(), store(spool, &mut &text[..], text.len() as u64)?));
        }
        Ok(())
    })?;
    let (version, vmlinuz) =
        vmlinuz.ok_or_else(|| Error::input(format!("`{label}` holds no kernel (no `/boot/vmlinuz-*`)")))?;
    if versions.iter().any(|v| *v != version) {
        return Err(Error::input(format!(
            "`{label}`: its modules are for {versions:?}, but its kernel is {version}: one kernel per package"
        )));
    }
    Ok(KernelPackage { version, vmlinuz, modules, builtin, index_files })
}

/// A kernel package as the input store keeps it: everything [`read_package`] reads but the
/// bytes, which are blobs of the entry, named by digest.
#[derive(Serialize, Deserialize)]
struct Stored {
    version: String,
    vmlinuz: StoredFile,
    modules: Vec<StoredModule>,
    builtin: Vec<String>,
    index_files: Vec<(String, StoredFile)>,
}

#[derive(Serialize, Deserialize)]
struct StoredFile {
    sha256: String,
    size: u64,
}

#[derive(Serialize, Deserialize)]
struct StoredModule {
    name: String,
    path: String,
    file: StoredFile,
    info: ModInfo,
}

impl StoredFile {
    fn of(content: &Content) -> StoredFile {
        StoredFile { sha256: hex(&content.sha256), size: content.size }
    }

    fn content(&self, entry: &Entry) -> Option<Content> {
        let digest: Digest = parse_hex(&self.sha256)?;
        Some(Content::host(&entry.blob_path(&digest), self.size, digest))
    }
}

/// The package as the store's `entry` describes it, its files pointing at the entry's blobs
/// (which may not all be there: see [`stored_files_usable`]); `None` without an index.
pub fn from_store(entry: &Entry) -> Option<KernelPackage> {
    let stored: Stored = entry.read_index()?;
    let mut modules = BTreeMap::new();
    for m in stored.modules {
        let content = m.file.content(entry)?;
        modules.insert(m.name.clone(), Module { name: m.name, path: m.path, content, info: m.info });
    }
    let mut index_files = Vec::new();
    for (name, file) in stored.index_files {
        index_files.push((name, file.content(entry)?));
    }
    Some(KernelPackage {
        version: stored.version,
        vmlinuz: stored.vmlinuz.content(entry)?,
        modules,
        builtin: stored.builtin.into_iter().collect(),
        index_files,
    })
}

/// Whether the entry holds every one of `files` with its bytes (each hashed now).
pub fn stored_files_usable(entry: &Entry, files: &[&Content]) -> bool {
    let blobs: Vec<(Digest, u64)> = files.iter().map(|c| (c.sha256, c.size)).collect();
    entry.blobs_intact(&blobs)
}

/// Files `package` in the store's `entry`: its index, and the bytes of `files` (read from the
/// spool), the ones this build uses.
pub fn to_store(entry: &Entry, package: &KernelPackage, files: &[&Content], spool: &Spool) -> Result<()> {
    for content in files {
        let mut reader = content.open(spool)?;
        entry.put_blob(&content.sha256, &mut reader).map_err(|e| Error::input(format!("the input store: {e}")))?;
    }
    let stored = Stored {
        version: package.version.clone(),
        vmlinuz: StoredFile::of(&package.vmlinuz),
        modules: package
            .modules
            .values()
            .map(|m| StoredModule {
                name: m.name.clone(),
                path: m.path.clone(),
                file: StoredFile::of(&m.content),
                info: m.info.clone(),
            })
            .collect(),
        builtin: package.builtin.iter().cloned().collect(),
        index_files: package.index_files.iter().map(|(n, c)| (n.clone(), StoredFile::of(c))).collect(),
    };
    entry.write_index(&stored).map_err(|e| Error::input(format!("the input store: {e}")))
}

/// Decompresses a module shipped as `.ko.xz`, `.ko.zst` or `.ko.gz` (by its magic bytes).
fn decompress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let (compression, mut reader) = compress::decoder(raw)?;
    if compression == Compression::None {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    reader.by_ref().take(MAX_MODULE).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny relocatable ELF file with a `.modinfo` section, like a kernel module.
    fn elf_module(modinfo: &[&str]) -> Vec<u8> {
        use object::write::Object;
        let mut obj = Object::new(object::BinaryFormat::Elf, object::Architecture::X86_64, object::Endianness::Little);
        let section = obj.add_section(Vec::new(), b".modinfo".to_vec(), object::SectionKind::ReadOnlyData);
        let mut data = Vec::new();
        for record in modinfo {
            data.extend_from_slice(record.as_bytes());
            data.push(0);
        }
        obj.append_section_data(section, &data, 1);
        obj.write().unwrap()
    }

    #[test]
    fn modinfo_depends_and_softdeps_are_read_from_the_elf_section() {
        let elf =
            elf_module(&["license=GPL", "depends=virtio,virtio-ring", "softdep=pre: crc32c post: zstd", "name=x"]);
        let info = parse_modinfo(&elf).unwrap();
        assert_eq!(info.depends, ["virtio", "virtio_ring"]);
        assert_eq!(info.pre, ["crc32c"]);
        assert_eq!(info.post, ["zstd"]);
        assert_eq!(parse_modinfo(&elf_module(&["depends="])).unwrap(), ModInfo::default());
        assert!(parse_modinfo(b"not an elf").unwrap_err().message().contains("not an ELF module"));
    }

    #[test]
    fn names_follow_modprobe() {
        assert_eq!(module_name("kernel/drivers/char/hw_random/virtio-rng.ko").as_deref(), Some("virtio_rng"));
        assert_eq!(module_name("kernel/fs/erofs/erofs.ko.xz").as_deref(), Some("erofs"));
        assert_eq!(module_name("modules.dep"), None);
    }

    #[test]
    fn compressed_modules_are_decompressed_by_their_magic() {
        let elf = elf_module(&["depends=x"]);
        for compression in [Compression::Xz, Compression::Zstd, Compression::Gzip] {
            use std::io::Write;
            let mut encoder = compress::Encoder::unit(Vec::new(), compression, None, None).unwrap();
            encoder.write_all(&elf).unwrap();
            let packed = encoder.finish().unwrap();
            assert_eq!(decompress(&packed).unwrap(), elf);
        }
        assert_eq!(decompress(&elf).unwrap(), elf);
    }
}
