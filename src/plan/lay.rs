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
use crate::debian::accounts::Accounts;
use crate::debian::copyright;
use crate::recipe::InputKind;
use crate::source::content::Spool;
use crate::source::store::Store;
use crate::source::{Input, Node, deb, stored_archive, tar};

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
            store,
        } = self;
        let mut tree = Tree::with_file_limit(file_limit);
        let mut inputs: Vec<Input> = layers.iter().map(ReadyLayer::input).collect();
        inputs.extend(sources);
        if let Some(variant) = package_layers.iter().find(|l| l.variant.is_some()) {
            let arch = variant.resolved.iter().map(|p| p.architecture.as_str()).find(|a| *a != "all");
            merge_usr(&mut tree, arch.unwrap_or("all"))?;
        }
        let (mut packages, installed) = lay_layers(&mut tree, layers, spool, store.as_ref(), reporter)?;
        prune(&mut tree, &patterns, Some(reporter));
        // dpkg's database lists what `[remove]` left of each package (so `dpkg --verify` finds
        // nothing missing); it is pruned as well, so a recipe can still take it out.
        if place_dpkg_database(&mut tree, &installed)? {
            prune(&mut tree, &patterns, None);
        }
        let accounts = super::system::place_accounts(&mut tree, spool, recipe, epoch)?;
        super::system::place_shell(&mut tree)?;
        let scripts: Vec<(&str, Option<&[u8]>)> =
            installed.iter().map(|i| (i.package.name.as_str(), i.installed.postinst.as_deref())).collect();
        super::scripts::place(&mut tree, spool, accounts.as_ref(), &scripts)?;
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
        place_declared(&mut tree, declared, accounts.as_ref())?;
        super::systemd::apply(&mut tree, spool, recipe)?;
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

/// A package of a `packages` layer as dpkg would have installed it.
struct InstalledPackage {
    package: crate::lockfile::LockedPackage,
    installed: deb::Installed,
}

/// Lays each layer into `tree` in order; returns the packages laid in, each once, with the
/// licence its copyright file declares, and what dpkg would record of the packages of
/// `packages` layers.
fn lay_layers(
    tree: &mut Tree,
    layers: Vec<ReadyLayer>,
    spool: &mut Spool,
    store: Option<&Store>,
    reporter: &dyn Reporter,
) -> Result<(Vec<PlannedPackage>, Vec<InstalledPackage>)> {
    let mut packages: Vec<PlannedPackage> = Vec::new();
    let mut installed: Vec<InstalledPackage> = Vec::new();
    let total = layers.len();
    for (index, layer) in layers.into_iter().enumerate() {
        let label = layer.label();
        let origin = match layer.what {
            Ready::Dir(_) => tree.origin(label.clone()),
            Ready::Package(_) | Ready::Tar | Ready::Deb => tree.archive_origin(label.clone()),
        };
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
        let archive = Archive { host: &layer.host, sha256: &layer.sha256, is_tar, record: package.is_some() };
        let record = lay_archive(tree, &archive, spool, store, origin)?;
        // A package two layers name is laid in twice but listed once.
        if let Some(package) = package
            && !packages.iter().any(|p| p.package == package)
        {
            let license = declared_license(tree, spool, &package.name, origin)?;
            if let Some(record) = record {
                installed.push(InstalledPackage { package: package.clone(), installed: record });
            }
            packages.push(PlannedPackage { package, license });
        }
    }
    Ok((packages, installed))
}

/// dpkg's database for the packages of `packages` layers (see [`crate::debian::dpkg`]) in
/// `/var/lib/dpkg`: each package's list and md5sums hold only the paths still in `tree`.
/// Returns whether there was any package to record.
fn place_dpkg_database(tree: &mut Tree, installed: &[InstalledPackage]) -> Result<bool> {
    if installed.is_empty() {
        return Ok(false);
    }
    use crate::debian::dpkg;
    let origin = tree.origin("dpkg's database of the installed packages".to_string());
    let path = |p: &str| ImagePath::from_recipe(p).expect("a plain absolute path");
    for dir in ["/var", "/var/lib", "/var/lib/dpkg", "/var/lib/dpkg/info"] {
        if tree.get(&path(dir)).is_none() {
            tree.insert(&path(dir), Node::Dir, crate::source::Meta::root(0o755), origin)?;
        }
    }
    let packages: Vec<dpkg::Package<'_>> = installed
        .iter()
        .map(|i| dpkg::Package {
            name: &i.package.name,
            architecture: &i.package.architecture,
            control: &i.installed.control,
        })
        .collect();
    let status = dpkg::status(&packages).map_err(|e| Error::input(format!("dpkg's status: {e}")))?;
    let mut files = Vec::new();
    for i in installed {
        let name = dpkg::info_name(&i.package.name, &i.package.architecture, &i.installed.control);
        let kept: Vec<&ImagePath> = i.installed.paths.iter().filter(|p| tree.holds(p, origin)).collect();
        files.push((format!("{name}.list"), dpkg::list(kept.iter().map(|p| p.as_bytes()))));
        if let Some(sums) = &i.installed.md5sums {
            let kept =
                dpkg::md5sums_of(sums, |path| ImagePath::from_member(path).is_ok_and(|p| tree.holds(&p, origin)));
            files.push((format!("{name}.md5sums"), kept));
        }
        if let Some(conffiles) = &i.installed.conffiles {
            files.push((format!("{name}.conffiles"), conffiles.clone()));
        }
    }
    let mut put = |name: &str, bytes: &[u8]| {
        let node = Node::File { content: crate::source::content::Content::inline(bytes) };
        tree.insert(&path(name), node, crate::source::Meta::root(0o644), origin).map(|_| ())
    };
    put("/var/lib/dpkg/status", &status)?;
    put("/var/lib/dpkg/info/format", dpkg::INFO_FORMAT)?;
    for (name, bytes) in files {
        put(&format!("/var/lib/dpkg/info/{name}"), &bytes)?;
    }
    Ok(true)
}

/// Lays a tar archive, or a Debian package's data, into `tree`, and for an installed package
/// (`record`) returns what dpkg keeps of it. Archives are read a second time to lay them in
/// (the first hashed them): this checks it is still the same file.
fn lay_archive(
    tree: &mut Tree,
    archive: &Archive,
    spool: &mut Spool,
    store: Option<&Store>,
    origin: Origin,
) -> Result<Option<deb::Installed>> {
    let &Archive { host, sha256, is_tar, record } = archive;
    let label = host.display().to_string();
    let entry = store.map(|s| s.entry(if is_tar { "tar" } else { "deb" }, sha256));
    // From the input store: what reading it laid in before, and what dpkg keeps of it.
    if let Some(entry) = &entry {
        let mut sink = tree.sink(origin);
        if let Some(installed) = stored_archive::replay(entry, &label, &mut sink, record)? {
            return Ok(installed);
        }
    }
    let file = std::fs::File::open(host).reading(host)?;
    let mut reader = HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
    let mut tree_sink = tree.sink(origin);
    let mut sink = stored_archive::Recorder::new(&mut tree_sink);
    let installed = if is_tar {
        tar::read(&mut reader, &label, &mut sink, spool)?;
        None
    } else if record {
        Some(deb::read_installed(&mut reader, &label, &mut sink, spool)?)
    } else {
        deb::read(&mut reader, &label, &mut sink, spool)?;
        None
    };
    if reader.finish().reading(host)? != *sha256 {
        return Err(Error::input(format!("`{label}` changed while it was being read")));
    }
    if let Some(entry) = &entry {
        // Best effort: a store that cannot be written costs the next build a read.
        let _ = sink.store(entry, installed.as_ref(), spool);
    }
    Ok(installed)
}

/// An archive layer to lay in: a tar archive, or a Debian package (`record`: an installed one,
/// whose dpkg record is kept).
struct Archive<'a> {
    host: &'a Path,
    sha256: &'a crate::base::hash::Digest,
    is_tar: bool,
    record: bool,
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
fn prune(tree: &mut Tree, patterns: &[Pattern], reporter: Option<&dyn Reporter>) {
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
        if count == 0
            && let Some(reporter) = reporter
        {
            reporter.report(Event::Warning(format!("`[remove]` pattern `{}` matched nothing", pattern.text)));
        }
    }
}

/// The id of the user (`user`) or group `name` the recipe gives at `at`, from the image's own
/// accounts.
fn owner_id(accounts: Option<&Accounts>, name: &str, at: &str, user: bool) -> Result<u32> {
    let (key, kind) = if user { ("owner", "user") } else { ("group", "group") };
    let Some(accounts) = accounts else {
        return Err(Error::input(format!(
            "{at}: `{key} = \"{name}\"`: the image has no accounts (no base-passwd, sysusers.d or `[[{kind}]]`); give a number"
        )));
    };
    let id = if user { accounts.user(name).map(|u| u.uid) } else { accounts.group(name).map(|g| g.gid) };
    id.ok_or_else(|| {
        let names: Vec<&str> = if user {
            accounts.users.iter().map(|u| u.name.as_str()).collect()
        } else {
            accounts.groups.iter().map(|g| g.name.as_str()).collect()
        };
        Error::input(format!(
            "{at}: `{key} = \"{name}\"`: the image has no such {kind}{}",
            crate::base::suggest::did_you_mean(name, names.into_iter())
        ))
    })
}

/// Places the recipe's own entries, in the order they were checked.
fn place_declared(tree: &mut Tree, declared: Vec<Declared>, accounts: Option<&Accounts>) -> Result<()> {
    for item in declared {
        let origin = tree.origin(item.label);
        match item.what {
            Declaration::Entry(node, mut meta) => {
                if let Some((name, at)) = &item.names.owner {
                    meta.uid = owner_id(accounts, name, at, true)?;
                }
                if let Some((name, at)) = &item.names.group {
                    meta.gid = owner_id(accounts, name, at, false)?;
                }
                tree.insert(&item.path, node, meta, origin)?
            }
            Declaration::Hardlink(target) => tree.link(&item.path, &target, origin)?,
        };
    }
    Ok(())
}
