//! Kernels and their modules, from a distribution's kernel package, without depmod.
//!
//! Stock kernels build most drivers as modules (Debian's: virtio_pci, virtio_blk, erofs, ...),
//! so an image that boots them must carry the modules it needs and their dependencies. bake
//! reads the package itself: the kernel image, every module's `.modinfo` section (`depends=`,
//! `softdep=`), and `modules.builtin`; it computes the closure of what the recipe asks for and
//! writes the modules (decompressed, never stripped: they may be signed) under
//! `/lib/modules/VERSION/` with a `modules.dep` in depmod's format, so busybox's `modprobe` works
//! in the guest, and `modules.load-order`, one module path per line in an order that loads every
//! module after what it needs, for inits without modprobe. (kmod's `modprobe` reads only
//! depmod's binary indexes, `modules.dep.bin`, which bake does not write.)

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::Path;

use crate::base::error::{Error, IoContext, Result};
use crate::source::content::{Content, Spool};

/// Largest module file read into memory to find its `.modinfo` (the biggest real ones are a few
/// MiB).
const MAX_MODULE: u64 = 256 << 20;

/// What a module's `.modinfo` says about other modules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModInfo {
    pub depends: Vec<String>,
    /// `softdep=pre: a b post: c`: load `a` and `b` before, `c` after, when they exist.
    pub pre: Vec<String>,
    pub post: Vec<String>,
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
pub fn parse_modinfo(elf: &[u8]) -> std::result::Result<ModInfo, String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(elf).map_err(|e| format!("not an ELF module: {e}"))?;
    let section = file.section_by_name(".modinfo").ok_or("it has no .modinfo section")?;
    let data = section.data().map_err(|e| format!("cannot read its .modinfo: {e}"))?;
    let mut info = ModInfo::default();
    for record in data.split(|&b| b == 0) {
        let Ok(record) = std::str::from_utf8(record) else { continue };
        let Some((key, value)) = record.split_once('=') else { continue };
        match key {
            "depends" => info.depends.extend(names(value)),
            "softdep" => {
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
    Ok(info)
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
    crate::source::deb::with_data(std::io::BufReader::new(file), &label, |data| {
        crate::source::tar::for_each_file(data, &label, |name, size, reader| {
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
                let info = parse_modinfo(&elf).map_err(bad)?;
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
        })
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

/// Decompresses a module shipped as `.ko.xz`, `.ko.zst` or `.ko.gz` (by its magic bytes).
fn decompress(raw: &[u8]) -> std::io::Result<Vec<u8>> {
    let (compression, mut reader) = crate::format::compress::decoder(raw)?;
    if compression == crate::recipe::Compression::None {
        return Ok(raw.to_vec());
    }
    let mut out = Vec::new();
    reader.by_ref().take(MAX_MODULE).read_to_end(&mut out)?;
    Ok(out)
}

/// The modules to install, in an order that loads each after everything it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Loadable modules, dependencies first.
    pub load_order: Vec<String>,
    /// Requested modules that are built into the kernel (nothing to install).
    pub builtin: Vec<String>,
    /// Soft dependencies the package does not have (skipped, as modprobe does).
    pub missing_softdeps: Vec<String>,
}

/// Computes the closure of `requested` over `depends` (required) and `softdep` (when present).
pub fn resolve(package: &KernelPackage, requested: &[String]) -> std::result::Result<Resolution, String> {
    let mut closure = Closure {
        package,
        stack: Vec::new(),
        done: BTreeSet::new(),
        out: Resolution { load_order: Vec::new(), builtin: Vec::new(), missing_softdeps: Vec::new() },
    };
    for name in requested {
        let name = name.replace('-', "_");
        if package.modules.contains_key(&name) {
            closure.visit(&name)?;
        } else if package.builtin.contains(&name) {
            closure.out.builtin.push(name);
        } else {
            let hint = suggest(&name, package.modules.keys().chain(&package.builtin));
            return Err(format!("unknown module `{name}`: the kernel {} has no such module{hint}", package.version));
        }
    }
    Ok(closure.out)
}

/// A depth-first walk over module dependencies that emits each module after what it needs.
struct Closure<'a> {
    package: &'a KernelPackage,
    /// The modules being visited, outermost first (to report cycles).
    stack: Vec<String>,
    done: BTreeSet<String>,
    out: Resolution,
}

impl Closure<'_> {
    fn visit(&mut self, name: &str) -> std::result::Result<(), String> {
        if self.done.contains(name) {
            return Ok(());
        }
        if let Some(at) = self.stack.iter().position(|s| s == name) {
            let cycle = self.stack[at..].iter().chain([&name.to_string()]).cloned().collect::<Vec<_>>().join(" -> ");
            return Err(format!("modules depend on each other in a cycle: {cycle}"));
        }
        let package = self.package;
        let module = &package.modules[name];
        self.stack.push(name.to_string());
        for soft in &module.info.pre {
            self.soft_visit(soft);
        }
        for dep in &module.info.depends {
            if package.modules.contains_key(dep) {
                self.visit(dep)?;
            } else if !package.builtin.contains(dep) {
                return Err(format!(
                    "module `{name}` depends on `{dep}`, which the kernel {} does not have",
                    package.version
                ));
            }
        }
        self.stack.pop();
        self.done.insert(name.to_string());
        self.out.load_order.push(name.to_string());
        for soft in &module.info.post {
            self.soft_visit(soft);
        }
        Ok(())
    }

    /// A soft dependency: loaded when the package has it; skipped, as modprobe skips it, when it
    /// does not, when it would close a cycle, or when it cannot be loaded itself.
    fn soft_visit(&mut self, name: &str) {
        let package = self.package;
        if package.modules.contains_key(name) && !self.stack.iter().any(|s| s == name) {
            let depth = self.stack.len();
            if self.visit(name).is_ok() {
                return;
            }
            self.stack.truncate(depth);
        } else if package.builtin.contains(name) {
            return;
        }
        if !self.out.missing_softdeps.iter().any(|m| m == name) {
            self.out.missing_softdeps.push(name.to_string());
        }
    }
}

/// `modules.dep` as depmod writes it, for the installed modules: `path: dep dep ...`, every
/// hard dependency (transitively), listed so that loading from the last to the first works,
/// which is how busybox `modprobe` reads it.
pub fn modules_dep(package: &KernelPackage, installed: &[String]) -> String {
    let mut lines: Vec<String> = installed
        .iter()
        .map(|name| {
            let mut order = Vec::new();
            hard_deps(package, name, &mut order);
            order.retain(|d| d != name);
            order.reverse();
            let deps: Vec<&str> = order.iter().map(|d| package.modules[d].path.as_str()).collect();
            let path = &package.modules[name].path;
            if deps.is_empty() { format!("{path}:") } else { format!("{path}: {}", deps.join(" ")) }
        })
        .collect();
    lines.sort();
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Every hard dependency of `name` below it, dependencies first.
fn hard_deps(package: &KernelPackage, name: &str, order: &mut Vec<String>) {
    if order.iter().any(|o| o == name) {
        return;
    }
    if let Some(module) = package.modules.get(name) {
        for dep in &module.info.depends {
            hard_deps(package, dep, order);
        }
        order.push(name.to_string());
    }
}

/// `modules.load-order`: the installed modules' paths, one per line, in load order.
pub fn load_order_file(package: &KernelPackage, order: &[String]) -> String {
    order.iter().map(|name| format!("{}\n", package.modules[name].path)).collect()
}

/// ` (did you mean `a`, `b`?)` with the closest known names, or nothing.
pub(crate) fn suggest<K: AsRef<str> + Ord>(name: &str, known: impl Iterator<Item = K>) -> String {
    let mut scored: Vec<(usize, K)> = known.map(|k| (distance(name, k.as_ref()), k)).collect();
    scored.sort();
    let close: Vec<String> = scored
        .iter()
        .take_while(|(d, _)| *d <= name.len().max(3) / 2)
        .take(3)
        .map(|(_, k)| format!("`{}`", k.as_ref()))
        .collect();
    if close.is_empty() { String::new() } else { format!(" (did you mean {}?)", close.join(", ")) }
}

/// Levenshtein distance.
fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb { previous } else { 1 + previous.min(row[j]).min(current) };
            previous = current;
        }
    }
    row[b.len()]
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

    fn package(modules: &[(&str, &[&str])], builtin: &[&str]) -> KernelPackage {
        let modules = modules
            .iter()
            .map(|(name, info)| {
                let elf = elf_module(info);
                let parsed = parse_modinfo(&elf).unwrap();
                let module = Module {
                    name: name.to_string(),
                    path: format!("kernel/{name}.ko"),
                    content: Content::inline(&elf),
                    info: parsed,
                };
                (name.to_string(), module)
            })
            .collect();
        KernelPackage {
            version: "6.1.0-test".into(),
            vmlinuz: Content::inline(b"kernel"),
            modules,
            builtin: builtin.iter().map(|s| s.to_string()).collect(),
            index_files: Vec::new(),
        }
    }

    fn req(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
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
        assert!(parse_modinfo(b"not an elf").unwrap_err().contains("not an ELF module"));
    }

    #[test]
    fn the_closure_loads_dependencies_first_and_soft_dependencies_around() {
        let pkg = package(
            &[
                ("virtio", &[]),
                ("virtio_ring", &["depends=virtio"]),
                ("virtio_blk", &["depends=virtio_ring,virtio"]),
                ("crc32c", &[]),
                ("ext4", &["depends=mbcache", "softdep=pre: crc32c post: absent"]),
                ("mbcache", &[]),
            ],
            &["sd_mod"],
        );
        let r = resolve(&pkg, &req(&["virtio_blk", "ext4", "sd_mod"])).unwrap();
        assert_eq!(r.load_order, ["virtio", "virtio_ring", "virtio_blk", "crc32c", "mbcache", "ext4"]);
        assert_eq!(r.builtin, ["sd_mod"]);
        assert_eq!(r.missing_softdeps, ["absent"]);
        let dep = modules_dep(&pkg, &r.load_order);
        assert!(dep.contains("kernel/virtio_blk.ko: kernel/virtio_ring.ko kernel/virtio.ko\n"), "{dep}");
        assert!(dep.contains("kernel/virtio.ko:\n"), "{dep}");
        assert!(dep.contains("kernel/ext4.ko: kernel/mbcache.ko\n"), "{dep}");
        assert_eq!(load_order_file(&pkg, &r.load_order[..2]), "kernel/virtio.ko\nkernel/virtio_ring.ko\n");
    }

    #[test]
    fn cycles_in_hard_dependencies_are_errors_and_in_soft_ones_are_cut() {
        let pkg = package(&[("a", &["depends=b"]), ("b", &["depends=a"])], &[]);
        assert!(resolve(&pkg, &req(&["a"])).unwrap_err().contains("cycle: a -> b -> a"));
        let pkg = package(&[("a", &["softdep=post: b"]), ("b", &["softdep=pre: a"])], &[]);
        assert_eq!(resolve(&pkg, &req(&["a"])).unwrap().load_order, ["a", "b"]);
    }

    #[test]
    fn unknown_names_suggest_the_closest_modules() {
        let pkg = package(&[("virtio_blk", &[]), ("virtio_net", &[]), ("erofs", &[])], &["ext4"]);
        let err = resolve(&pkg, &req(&["virtio_blkk"])).unwrap_err();
        assert!(err.contains("unknown module `virtio_blkk`") && err.contains("did you mean `virtio_blk`"), "{err}");
        let err = resolve(&pkg, &req(&["zzzzzzzzzz"])).unwrap_err();
        assert!(!err.contains("did you mean"), "{err}");
        let pkg = package(&[("a", &["depends=gone"])], &[]);
        assert!(resolve(&pkg, &req(&["a"])).unwrap_err().contains("depends on `gone`"));
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
        for compression in
            [crate::recipe::Compression::Xz, crate::recipe::Compression::Zstd, crate::recipe::Compression::Gzip]
        {
            use std::io::Write;
            let mut encoder = crate::format::compress::Encoder::new(Vec::new(), compression, None, 1).unwrap();
            encoder.write_all(&elf).unwrap();
            let packed = encoder.finish().unwrap();
            assert_eq!(decompress(&packed).unwrap(), elf);
        }
        assert_eq!(decompress(&elf).unwrap(), elf);
    }
}
