//! Which of a kernel package's modules an image carries, and how they are laid out: the closure
//! of what the recipe asks for over `depends=` (required) and `softdep=` (when present), written
//! under `/lib/modules/VERSION/` with what depmod would write for them ([`super::depmod`]: the
//! text `modules.dep` busybox's `modprobe` reads and the binary indexes libkmod reads, so udev,
//! kmod's `modprobe` and `systemd-modules-load` work in the guest), and `modules.load-order`,
//! one module path per line in an order that loads every module after what it needs, for inits
//! without modprobe.

use std::collections::BTreeSet;
use std::io::Read;

use toml::Spanned;

use super::KernelPlan;
use super::depmod;
use super::prepare::KernelSource;
use super::tree::Tree;
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::base::progress::{Event, Reporter};
use crate::base::suggest::did_you_mean;
use crate::recipe::{InputKind, KernelSection, RecipeFile};
use crate::source::content::{Content, Spool};
use crate::source::kernel::{self, KernelPackage};
use crate::source::{Input, Meta, Node};

/// Reads the `[kernel]` package, resolves its modules and lays them into `tree` under
/// `/lib/modules/VERSION/` with depmod's files and `modules.load-order`.
pub(super) fn lay(
    recipe: &RecipeFile,
    section: &Spanned<KernelSection>,
    source: &KernelSource,
    tree: &mut Tree,
    spool: &mut Spool,
    reporter: &dyn Reporter,
) -> Result<(KernelPlan, Input)> {
    let k = section.get_ref();
    let requested: &[String] = k.modules.as_ref().map_or(&[], |m| m.get_ref());
    let resolve_here = |package: &KernelPackage| {
        resolve(package, requested).map_err(|e| match &k.modules {
            Some(span) => recipe.error(span, e),
            None => recipe.error(section, e),
        })
    };
    let entry = source.store.as_ref().map(|s| s.entry("kernel", &source.sha256));
    // From the input store when it has the index and every file this build needs; else from
    // the package, which then goes into the store.
    let mut found = None;
    if let Some(package) = entry.as_ref().and_then(kernel::from_store) {
        let resolution = resolve_here(&package)?;
        let usable = kernel::stored_files_usable(entry.as_ref().expect("read"), &used_files(&package, &resolution));
        if usable {
            reporter.report(Event::Info(format!("the kernel package `{}` from the input store", source.written)));
            found = Some((package, resolution));
        }
    }
    let (package, resolution) = match found {
        Some(found) => found,
        None => {
            reporter.report(Event::Info(format!("reading the kernel package `{}`", source.written)));
            let package = kernel::read_package(&source.host, spool)?;
            let resolution = resolve_here(&package)?;
            if let (Some(entry), Some(store)) = (&entry, &source.store) {
                if let Err(e) = kernel::to_store(entry, &package, &used_files(&package, &resolution), spool) {
                    reporter.report(Event::Warning(format!("{e} (the next build reads the package again)")));
                }
                store.evict(crate::source::store::BUDGET);
            }
            (package, resolution)
        }
    };
    for missing in &resolution.missing_softdeps {
        reporter.report(Event::Warning(format!(
            "soft dependency `{missing}` skipped: the kernel package has no module of that name (aliases are not followed), or it cannot be loaded"
        )));
    }
    let origin = tree.archive_origin(format!("the kernel package (`{}`)", source.written));
    let base = format!("/lib/modules/{}", package.version);
    let host = &source.host;
    let place = |tree: &mut Tree, relative: &str, content: Content| -> Result<()> {
        let path = ImagePath::from_recipe(&format!("{base}/{relative}"))
            .map_err(|e| Error::input(format!("`{}`: module path `{relative}`: {e}", host.display())))?;
        tree.insert(&path, Node::File { content }, Meta::root(0o644), origin).map(|_| ())
    };
    for name in &resolution.load_order {
        let module = &package.modules[name];
        place(tree, &module.path, module.content.clone())?;
    }
    for (name, content) in &package.index_files {
        place(tree, name, content.clone())?;
    }
    for (name, bytes) in depmod_files(&package, &resolution.load_order, spool)? {
        place(tree, name, Content::inline(&bytes))?;
    }
    let order = load_order_file(&package, &resolution.load_order);
    place(tree, "modules.load-order", Content::inline(order.as_bytes()))?;
    let plan = KernelPlan {
        version: package.version.clone(),
        vmlinuz: package.vmlinuz.clone(),
        package: source.written.clone(),
        modules: resolution.load_order,
        builtin: resolution.builtin,
        cmdline: k.cmdline.clone(),
    };
    let kind = if source.package.is_some() { InputKind::Package } else { InputKind::Kernel };
    Ok((plan, Input { kind, path: source.written.clone(), sha256: source.sha256 }))
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
pub fn resolve(package: &KernelPackage, requested: &[String]) -> Result<Resolution> {
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
            let hint = did_you_mean(&name, package.modules.keys().chain(&package.builtin));
            return Err(Error::input(format!(
                "unknown module `{name}`: the kernel {} has no such module{hint}",
                package.version
            )));
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
    fn visit(&mut self, name: &str) -> Result<()> {
        if self.done.contains(name) {
            return Ok(());
        }
        if let Some(at) = self.stack.iter().position(|s| s == name) {
            let cycle = self.stack[at..].iter().chain([&name.to_string()]).cloned().collect::<Vec<_>>().join(" -> ");
            return Err(Error::input(format!("modules depend on each other in a cycle: {cycle}")));
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
                return Err(Error::input(format!(
                    "module `{name}` depends on `{dep}`, which the kernel {} does not have",
                    package.version
                )));
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

/// The package's files a build with `resolution` reads: the kernel, the modules it installs and
/// the package's lists.
fn used_files<'p>(package: &'p KernelPackage, resolution: &Resolution) -> Vec<&'p Content> {
    let modules = resolution.load_order.iter().map(|name| &package.modules[name].content);
    let lists = package.index_files.iter().map(|(_, c)| c);
    std::iter::once(&package.vmlinuz).chain(modules).chain(lists).collect()
}

/// depmod's files for the installed modules, reading each one's symbols.
fn depmod_files(package: &KernelPackage, installed: &[String], spool: &Spool) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let read = |content: &Content| -> Result<Vec<u8>> {
        let mut bytes = Vec::with_capacity(content.size as usize);
        content.open(spool)?.read_to_end(&mut bytes).map_err(|e| Error::input(e.to_string()))?;
        Ok(bytes)
    };
    let mut modules = Vec::with_capacity(installed.len());
    for name in installed {
        let module = &package.modules[name];
        let symbols = kernel::read_symbols(&read(&module.content)?)
            .map_err(|e| Error::input(format!("module `{}`: {e}", module.path)))?;
        modules.push(depmod::Module { name, path: &module.path, info: &module.info, symbols });
    }
    let list = |file: &str| -> Result<Vec<u8>> {
        package.index_files.iter().find(|(n, _)| n == file).map_or(Ok(Vec::new()), |(_, c)| read(c))
    };
    let (order, builtin, builtin_modinfo) =
        (list("modules.order")?, list("modules.builtin")?, list("modules.builtin.modinfo")?);
    depmod::files(modules, depmod::KernelLists { order: &order, builtin: &builtin, builtin_modinfo: &builtin_modinfo })
}

/// `modules.load-order`: the installed modules' paths, one per line, in load order.
pub fn load_order_file(package: &KernelPackage, order: &[String]) -> String {
    order.iter().map(|name| format!("{}\n", package.modules[name].path)).collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::source::kernel::{ModInfo, Module};

    /// A kernel package whose modules say what `modinfo` gives (`depends=a,b`, `softdep=...`).
    fn package(modules: &[(&str, &[&str])], builtin: &[&str]) -> KernelPackage {
        let modules: BTreeMap<String, Module> = modules
            .iter()
            .map(|(name, records)| {
                let module = Module {
                    name: name.to_string(),
                    path: format!("kernel/{name}.ko"),
                    content: Content::inline(name.as_bytes()),
                    info: ModInfo::from_records(records.join("\0").as_bytes()),
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
        assert_eq!(load_order_file(&pkg, &r.load_order[..2]), "kernel/virtio.ko\nkernel/virtio_ring.ko\n");
    }

    #[test]
    fn cycles_in_hard_dependencies_are_errors_and_in_soft_ones_are_cut() {
        let pkg = package(&[("a", &["depends=b"]), ("b", &["depends=a"])], &[]);
        assert!(resolve(&pkg, &req(&["a"])).unwrap_err().message().contains("cycle: a -> b -> a"));
        let pkg = package(&[("a", &["softdep=post: b"]), ("b", &["softdep=pre: a"])], &[]);
        assert_eq!(resolve(&pkg, &req(&["a"])).unwrap().load_order, ["a", "b"]);
    }

    #[test]
    fn unknown_names_suggest_the_closest_modules() {
        let pkg = package(&[("virtio_blk", &[]), ("virtio_net", &[]), ("erofs", &[])], &["ext4"]);
        let err = resolve(&pkg, &req(&["virtio_blkk"])).unwrap_err().to_string();
        assert!(err.contains("unknown module `virtio_blkk`") && err.contains("did you mean `virtio_blk`"), "{err}");
        let err = resolve(&pkg, &req(&["zzzzzzzzzz"])).unwrap_err().to_string();
        assert!(!err.contains("did you mean"), "{err}");
        let pkg = package(&[("a", &["depends=gone"])], &[]);
        assert!(resolve(&pkg, &req(&["a"])).unwrap_err().message().contains("depends on `gone`"));
    }
}
