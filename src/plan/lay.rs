//! The second half of planning: the inputs unpacked into the tree in recipe order, pruned by
//! `[remove]`, the kernel's modules and the recipe's own entries added, and the tree frozen
//! into a [`Plan`].

use std::ffi::OsStr;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::check::{Declaration, Declared, Pattern};
use super::prepare::{BootSource, Prepared, Ready, ReadyLayer};
use super::tree::{Entry, Origin, Tree};
use super::{BootPlan, Plan, PlannedPackage};
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::HashingReader;
use crate::base::path::ImagePath;
use crate::base::progress::{Event, Reporter};
use crate::debian::copyright;
use crate::recipe::InputKind;
use crate::source::content::Spool;
use crate::source::{Input, Node, deb, tar};

impl Prepared<'_> {
    /// Unpacks the archives and lays every input and entry into the image's tree.
    pub fn lay(self, spool: &mut Spool, reporter: &dyn Reporter) -> Result<Plan> {
        let Prepared {
            recipe,
            name,
            epoch,
            initramfs,
            disk,
            file_limit,
            layers,
            package_layers,
            kernel,
            boot,
            declared,
            inputs: sources,
            patterns,
            lock,
        } = self;
        let mut tree = Tree::with_file_limit(file_limit);
        let mut inputs: Vec<Input> = layers.iter().map(ReadyLayer::input).collect();
        inputs.extend(sources);
        if let Some(variant) = package_layers.iter().find(|l| l.variant.is_some()) {
            let arch = variant.resolved.iter().map(|p| p.architecture.as_str()).find(|a| *a != "all");
            merge_usr(&mut tree, arch.unwrap_or("all"))?;
        }
        let mut packages = lay_layers(&mut tree, layers, spool, reporter)?;
        prune(&mut tree, &patterns, reporter);
        // The kernel's modules go in after pruning, so no `[remove]` pattern takes away a module
        // the recipe asked for.
        let (kernel, kernel_package) = match (&recipe.recipe.kernel, kernel) {
            (Some(section), Some(source)) => {
                let (plan, input) = super::modules::lay(recipe, section, &source, &mut tree, spool, reporter)?;
                inputs.push(input);
                (Some(plan), source.package)
            }
            _ => (None, None),
        };
        if let Some(locked) = &kernel_package {
            // Its licence is not read: bake lays in modules, not the package's documentation.
            packages.push(PlannedPackage { package: locked.package.clone(), license: None });
        }
        let boot = match boot {
            Some(source) => {
                let (plan, input) = read_stub(source, reporter)?;
                inputs.push(input);
                if let Some(locked) = &plan.stub_package {
                    packages.push(PlannedPackage { package: locked.package.clone(), license: None });
                }
                Some(plan)
            }
            None => None,
        };
        place_declared(&mut tree, declared)?;
        let stub_package = boot.as_ref().and_then(|b| b.stub_package.as_ref());
        lock.check_coverage(recipe, &inputs, &package_layers, kernel_package.as_ref(), stub_package, reporter)?;
        let entries = tree.freeze();
        Ok(Plan {
            name,
            epoch,
            initramfs,
            disk,
            kernel,
            entries,
            inputs,
            package_layers,
            kernel_package,
            boot,
            packages,
        })
    }
}

/// The directories a merged-/usr system keeps only below `/usr`, with a link to each at the
/// root, as debootstrap lays them out for `arch`.
pub fn merged_dirs(arch: &str) -> Vec<&'static str> {
    let mut dirs = vec!["bin", "sbin", "lib"];
    match arch {
        "amd64" => dirs.extend(["lib32", "lib64", "libx32"]),
        "i386" => dirs.extend(["lib64", "libx32"]),
        _ => {}
    }
    dirs
}

/// Makes the image merged-/usr before any layer is laid (for a `variant` layer, as debootstrap
/// does): `/usr/DIR` directories and `/DIR -> usr/DIR` links, so what a package ships in `/bin`
/// lands in `/usr/bin` through the link, as dpkg would place it on such a system.
fn merge_usr(tree: &mut Tree, arch: &str) -> Result<()> {
    let origin = tree.origin("the merged /usr of a `variant` layer".to_string());
    let path = |p: &str| ImagePath::from_recipe(p).expect("a plain absolute path");
    let dir = || (Node::Dir, crate::source::Meta::root(0o755));
    tree.insert(&path("/usr"), dir().0, dir().1, origin)?;
    for name in merged_dirs(arch) {
        tree.insert(&path(&format!("/usr/{name}")), dir().0, dir().1, origin)?;
        let link = Node::Symlink { target: format!("usr/{name}").into_bytes() };
        tree.insert(&path(&format!("/{name}")), link, crate::source::Meta::root(0o777), origin)?;
    }
    Ok(())
}

/// Reads systemd's EFI stub from its package, hashed again as it is read; returns it with the
/// input the manifest lists (`deb` for `stub-deb`, else `package`).
fn read_stub(source: BootSource, reporter: &dyn Reporter) -> Result<(BootPlan, Input)> {
    let BootSource { recipe_written, recipe_host, stub } = source;
    reporter.report(Event::Info(format!("reading the EFI stub package `{}`", stub.written)));
    let (digest, _) = crate::base::hash::digest_file(&stub.host)?;
    if digest != stub.sha256 {
        return Err(Error::input(format!("`{}` changed while the build was reading it", stub.host.display())));
    }
    let bytes = crate::source::stub::read_package(&stub.host)?;
    let sections = crate::format::pe::UKI_SECTIONS.len();
    crate::format::pe::check_stub(&bytes, sections)
        .map_err(|e| e.context(format!("the EFI stub in `{}`", stub.written)))?;
    let kind = if stub.package.is_some() { InputKind::Package } else { InputKind::Deb };
    let input = Input { kind, path: stub.written, sha256: stub.sha256 };
    let plan = BootPlan { recipe: recipe_host, written: recipe_written, stub: bytes, stub_package: stub.package };
    Ok((plan, input))
}

/// Lays each layer into `tree` in order; returns the packages laid in, each once, with the
/// licence its copyright file declares.
fn lay_layers(
    tree: &mut Tree,
    layers: Vec<ReadyLayer>,
    spool: &mut Spool,
    reporter: &dyn Reporter,
) -> Result<Vec<PlannedPackage>> {
    let mut packages: Vec<PlannedPackage> = Vec::new();
    let total = layers.len();
    for (index, layer) in layers.into_iter().enumerate() {
        let label = layer.label();
        let origin = tree.origin(label.clone());
        let is_tar = matches!(layer.what, Ready::Tar);
        let package = match layer.what {
            Ready::Dir(dir) => {
                dir.lay(&mut tree.sink(origin))?;
                continue;
            }
            Ready::Package(package) => Some(package),
            Ready::Tar | Ready::Deb => None,
        };
        reporter.report(Event::Input { index: index + 1, total, label });
        lay_archive(tree, &layer.host, &layer.sha256, is_tar, spool, origin)?;
        // A package two layers name is laid in twice but listed once.
        if let Some(package) = package
            && !packages.iter().any(|p| p.package == package)
        {
            let license = declared_license(tree, spool, &package.name, origin)?;
            packages.push(PlannedPackage { package, license });
        }
    }
    Ok(packages)
}

/// Lays a tar archive, or a Debian package's data, into `tree`. Archives are read a second
/// time to lay them in (the first hashed them): this checks it is still the same file.
fn lay_archive(
    tree: &mut Tree,
    host: &Path,
    sha256: &crate::base::hash::Digest,
    is_tar: bool,
    spool: &mut Spool,
    origin: Origin,
) -> Result<()> {
    let file = std::fs::File::open(host).reading(host)?;
    let mut reader = HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    let label = host.display().to_string();
    let mut sink = tree.sink(origin);
    if is_tar {
        tar::read(&mut reader, &label, &mut sink, spool)?;
    } else {
        deb::read(&mut reader, &label, &mut sink, spool)?;
    }
    if reader.finish().reading(host)? != *sha256 {
        return Err(Error::input(format!("`{label}` changed while it was being read")));
    }
    Ok(())
}

/// The licence a package's machine-readable copyright file declares, read from what the
/// package itself laid into `tree` (before `[remove]` prunes documentation).
fn declared_license(tree: &Tree, spool: &Spool, name: &str, origin: Origin) -> Result<Option<copyright::Declared>> {
    let Ok(path) = ImagePath::from_recipe(&format!("/usr/share/doc/{name}/copyright")) else { return Ok(None) };
    let Some(Entry { node: Node::File { content }, origin: from, .. }) = tree.get(&path) else { return Ok(None) };
    if *from != origin || content.size > 1 << 20 {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    content
        .open(spool)?
        .read_to_end(&mut bytes)
        .map_err(|e| Error::failure(format!("cannot read the copyright file of `{name}`: {e}")))?;
    Ok(copyright::declared_license(&String::from_utf8_lossy(&bytes)))
}

/// Applies the `[remove]` patterns: a matching directory goes with everything below it.
fn prune(tree: &mut Tree, patterns: &[Pattern], reporter: &dyn Reporter) {
    if patterns.is_empty() {
        return;
    }
    let mut matched = vec![0usize; patterns.len()];
    let mut doomed = Vec::new();
    for (path, _) in tree.iter() {
        let absolute = [b"/", path.as_bytes()].concat();
        let candidate = Path::new(OsStr::from_bytes(&absolute));
        let mut hit = false;
        for (i, pattern) in patterns.iter().enumerate() {
            if pattern.matcher.is_match(candidate) {
                matched[i] += 1;
                hit = true;
            }
        }
        if hit {
            doomed.push(path.clone());
        }
    }
    for path in doomed {
        tree.remove(&path);
    }
    for (pattern, count) in patterns.iter().zip(matched) {
        if count == 0 {
            reporter.report(Event::Warning(format!("`[remove]` pattern `{}` matched nothing", pattern.text)));
        }
    }
}

/// Places the recipe's own entries, in the order they were checked.
fn place_declared(tree: &mut Tree, declared: Vec<Declared>) -> Result<()> {
    for item in declared {
        let origin = tree.origin(item.label);
        match item.what {
            Declaration::Entry(node, meta) => tree.insert(&item.path, node, meta, origin)?,
            Declaration::Hardlink(target) => tree.link(&item.path, &target, origin)?,
        };
    }
    Ok(())
}
