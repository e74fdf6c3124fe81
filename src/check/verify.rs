//! `bake verify`, and the second build of `bake test --twice`: build a recipe twice under
//! deliberately different conditions and compare every output byte for byte.
//!
//! The first build runs here, as usual. The second runs in a separate bake process from a copy
//! of the recipe and its inputs, made in reverse order with other mtimes and permission bits as
//! a checkout under umask 077 would have, in another folder with another TMPDIR, umask 077,
//! another time zone and locale, and one worker thread. Whatever of the host leaks into an
//! output shows up as a difference, which `bake diff` then explains.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{Digest, digest_file};
use crate::base::process::{self, Waited};
use crate::base::progress::Reporter;
use crate::output::Output;
use crate::output::build::{self, Options};
use crate::plan::Settings;
use crate::recipe::RecipeFile;
use crate::source::packages::{LockPolicy, PackageSettings};

/// Two builds of one recipe.
#[derive(Debug)]
pub struct Twice {
    pub name: String,
    /// Bytes of regular file data in the image (of the first build).
    pub data_bytes: u64,
    pub first_dir: PathBuf,
    pub second_dir: PathBuf,
    /// Every output of the first build, with the second build's digest of the same file
    /// (`None` when the second build did not make it).
    pub outputs: Vec<(Output, Option<Digest>)>,
}

impl Twice {
    pub fn identical(&self) -> bool {
        self.outputs.iter().all(|(o, b)| *b == Some(o.sha256))
    }
}

/// Builds `recipe` twice below `scratch` (see the module documentation), the first time with
/// `threads` compression threads.
pub fn build_twice(
    recipe_path: &Path,
    scratch: &Path,
    threads: u32,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<Twice> {
    let recipe = RecipeFile::load(recipe_path)?;
    let first_dir = scratch.join("first");
    let options =
        Options { out_dir: first_dir.clone(), threads, settings: settings.clone(), use_cache: false, remote: None };
    let built = build::build(recipe_path, &options, reporter)?;

    let copy_root = scratch.join("second/inputs copy");
    let copied_recipe = copy_inputs(&recipe, &copy_root)?;
    let second_dir = scratch.join("second/out");
    let tmpdir = scratch.join("second/tmp");
    std::fs::create_dir_all(&tmpdir).writing(&tmpdir)?;
    build_in_other_process(&copied_recipe, &second_dir, &tmpdir, &settings.packages)?;

    let outputs = built
        .outputs
        .into_iter()
        .map(|o| {
            let other = second_dir.join(&o.file);
            let digest = other.exists().then(|| digest_file(&other).map(|(d, _)| d)).transpose()?;
            Ok((o, digest))
        })
        .collect::<Result<_>>()?;
    Ok(Twice { name: built.name, data_bytes: built.data_bytes, first_dir, second_dir, outputs })
}

/// The host files a recipe reads, as the recipe names them: its own inputs and, for a disk that
/// boots by itself, the EFI stub `.deb`, the stage-1 recipe, its lock and its inputs (named
/// from the recipe's folder).
fn inputs_of(recipe: &RecipeFile) -> Result<Vec<String>> {
    let mut all = own_inputs(recipe);
    if let Some(disk) = &recipe.recipe.disk {
        let disk = disk.get_ref();
        all.extend(disk.stub_deb.as_ref().map(|s| s.get_ref().clone()));
        if let Some(stage1) = crate::plan::stage1_recipe(recipe)? {
            let written = disk.boot_recipe.as_ref().map(|b| b.get_ref().clone()).unwrap_or_default();
            let folder = Path::new(&written).parent().unwrap_or(Path::new("")).to_path_buf();
            let lock = crate::lockfile::path_for(Path::new(&written));
            if recipe.base.join(&lock).exists() {
                all.push(lock.to_string_lossy().into_owned());
            }
            all.push(written);
            for input in own_inputs(&stage1) {
                let named = if Path::new(&input).is_absolute() {
                    input
                } else {
                    folder.join(input).to_string_lossy().into_owned()
                };
                all.push(named);
            }
        }
    }
    all.dedup();
    Ok(all)
}

/// The host files a recipe's own layers, files and kernel read, as the recipe names them.
fn own_inputs(recipe: &RecipeFile) -> Vec<String> {
    let r = &recipe.recipe;
    let layers = r.layers.iter().filter_map(|l| {
        let l = l.get_ref();
        l.dir.as_ref().or(l.tar.as_ref()).or(l.deb.as_ref()).map(|v| v.get_ref().clone())
    });
    let sources = r.files.iter().filter_map(|f| f.get_ref().source.as_ref().map(|s| s.get_ref().clone()));
    let kernel = r.kernel.iter().filter_map(|k| k.get_ref().deb.as_ref().map(|d| d.get_ref().clone()));
    let mut all: Vec<String> = layers.chain(sources).chain(kernel).collect();
    all.dedup();
    all
}

/// Copies the recipe and its inputs below `root`, keeping their places relative to each other,
/// and returns the copied recipe's path. Inputs named by absolute paths are left where they
/// are (the recipe names them the same way from anywhere).
fn copy_inputs(recipe: &RecipeFile, root: &Path) -> Result<PathBuf> {
    let canonical = |p: &Path| std::fs::canonicalize(p).reading(p);
    let recipe_dir = canonical(&recipe.base)?;
    let relative: Vec<String> = inputs_of(recipe)?.into_iter().filter(|p| !Path::new(p).is_absolute()).collect();
    // The folder holding the recipe and every relative input: inputs named `../x` keep that
    // name in the copy.
    let mut top = recipe_dir.clone();
    for input in &relative {
        let lexical = lexical_join(&recipe_dir, Path::new(input));
        while !lexical.starts_with(&top) && top.pop() {}
    }
    let place = |host: &Path| -> Result<PathBuf> {
        // Never write outside the copy: an input that climbs above `top` by a later `..` is not
        // copied but refused.
        host.strip_prefix(&top).map(|rest| root.join(rest)).map_err(|_| {
            Error::input(format!("`{}`: cannot copy an input that lies outside `{}`", host.display(), top.display()))
        })
    };
    let recipe_copy = place(&recipe_dir)?.join(recipe.path.file_name().unwrap_or_default());
    // Reverse order: the copy is made in the opposite order of the original listing.
    for input in relative.iter().rev() {
        let host = recipe.base.join(input);
        let lexical = lexical_join(&recipe_dir, Path::new(input));
        copy_tree(&host, &place(&lexical)?)?;
    }
    std::fs::create_dir_all(recipe_copy.parent().unwrap_or(root)).writing(root)?;
    std::fs::write(&recipe_copy, &recipe.text).writing(&recipe_copy)?;
    set_other_mtime(&recipe_copy)?;
    let lock = crate::lockfile::path_for(&recipe.path);
    if lock.exists() {
        let lock_copy = crate::lockfile::path_for(&recipe_copy);
        std::fs::copy(&lock, &lock_copy).writing(&lock_copy)?;
        set_other_mtime(&lock_copy)?;
    }
    Ok(recipe_copy)
}

/// `base/relative` with `..` resolved by name (not through symlinks), as the recipe means it.
fn lexical_join(base: &Path, relative: &Path) -> PathBuf {
    let mut out = base.to_path_buf();
    for component in relative.components() {
        match component {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// An mtime unlike any a checkout has: 2001-09-09 01:46:40 UTC.
const OTHER_MTIME: u64 = 1_000_000_000;

/// Copies a file or a folder tree (symlinks inside a folder stay symlinks) in reverse name order,
/// with other mtimes and with group and other permission bits cleared.
fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(from).reading(from)?;
    if meta.is_file() {
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).writing(parent)?;
        }
        std::fs::copy(from, to).writing(to)?;
        set_other_mtime(to)?;
        let mode = meta.permissions().mode() & 0o700;
        return std::fs::set_permissions(to, std::fs::Permissions::from_mode(mode)).writing(to);
    }
    let mut items: Vec<walkdir::DirEntry> = walkdir::WalkDir::new(from)
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::input(format!("cannot read `{}`: {e}", from.display())))?;
    // Parents must exist first: create every folder, then the rest in reverse order.
    for item in items.iter().filter(|i| i.file_type().is_dir()) {
        let target = to.join(item.path().strip_prefix(from).unwrap_or(item.path()));
        std::fs::create_dir_all(&target).writing(&target)?;
    }
    items.reverse();
    for item in items.iter().filter(|i| !i.file_type().is_dir()) {
        let target = to.join(item.path().strip_prefix(from).unwrap_or(item.path()));
        if item.file_type().is_symlink() {
            let link = std::fs::read_link(item.path()).reading(item.path())?;
            if target.symlink_metadata().is_ok() {
                continue; // an input named twice, or inside another input: copied already
            }
            std::os::unix::fs::symlink(&link, &target).writing(&target)?;
        } else {
            copy_tree(item.path(), &target)?;
        }
    }
    Ok(())
}

fn set_other_mtime(path: &Path) -> Result<()> {
    // futimens(2) needs ownership, not write access: a read-only input copies too.
    let file = std::fs::File::open(path).writing(path)?;
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(OTHER_MTIME)).writing(path)
}

/// Runs `bake build` on `recipe` in a separate process under other conditions.
fn build_in_other_process(recipe: &Path, out: &Path, tmpdir: &Path, packages: &PackageSettings) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let exe = std::env::current_exe().map_err(|e| Error::failure(format!("cannot find the bake executable: {e}")))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.current_dir(recipe.parent().unwrap_or(Path::new("/")))
        .args(["-q", "build", "--no-cache", "-j", "1", "-o"])
        .arg(out)
        .arg(recipe.file_name().unwrap_or_default())
        .env("TZ", "Pacific/Chatham")
        .env("LC_ALL", "C.UTF-8")
        .env("TMPDIR", tmpdir)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    // SAFETY: umask(2) is async-signal-safe and only changes the child's file mode mask.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0o077);
            Ok(())
        });
    }
    // The same package cache (its files are checked by digest), and the same lock policy.
    if let Some(cache) = &packages.cache {
        cmd.arg("--cache").arg(std::path::absolute(cache).writing(cache)?);
    }
    if packages.policy == LockPolicy::Require {
        cmd.arg("--locked");
    }
    let mut child = cmd.spawn().map_err(|e| Error::failure(format!("cannot run the second build: {e}")))?;
    let messages = process::drain(child.stderr.take());
    // Wait, but pass Ctrl-C or SIGTERM on: the child is not in the terminal's way of them.
    let status = match process::wait(&mut child, "the second build", || None::<()>)? {
        Waited::Exited(status) => status,
        Waited::Interrupted | Waited::Stopped(()) => {
            // SAFETY: signals the child we started; touches no memory of ours.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ = child.wait();
            crate::base::interrupt::stop_point()?;
            return Err(Error::failure("the second build was stopped"));
        }
    };
    let messages = messages.join().unwrap_or_default();
    if !status.success() {
        return Err(Error::failure(format!("the second build failed: {}", messages.trim())));
    }
    Ok(())
}
