//! `bake vendor`: every pinned input of a locked recipe copied into one folder, by sha256, so
//! that `bake build --inputs DIR` needs neither network nor apt's lists, whatever the
//! distribution has done since. The folder is what a team commits or archives beside a release:
//!
//! ```text
//! vendor/
//!   sha256/<64 hex digits>   each input, named by its sha256
//!   index.json               what each one is (package name, version, architecture, or path)
//!   SHA256SUMS               `sha256sum -c SHA256SUMS` checks them all
//! ```

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::base::error::{Error, IoContext, Result};
use crate::base::file;
use crate::base::hash::{digest_file, hex};
use crate::base::progress::{Event, Reporter};
use crate::lockfile::LockedPackage;
use crate::plan::Settings;
use crate::recipe::{InputKind, RecipeFile};
use crate::source::apt::{self, Lists};
use crate::source::packages::LockState;

/// What `bake vendor` did.
#[derive(Debug)]
pub struct Vendored {
    pub dir: PathBuf,
    /// Inputs in the folder, and how many of them were copied now (the rest were there).
    pub inputs: usize,
    pub copied: usize,
    pub bytes: u64,
}

impl Vendored {
    pub fn summary(&self) -> String {
        format!(
            "{}: {} pinned inputs ({:.1} MiB), {} copied now; build with `bake build --inputs {}`\n",
            self.dir.display(),
            self.inputs,
            self.bytes as f64 / (1 << 20) as f64,
            self.copied,
            self.dir.display()
        )
    }
}

/// One pinned input: where it is now, its sha256, its size, and what it is (for the index).
pub struct Item {
    pub host: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub what: serde_json::Value,
}

impl Item {
    /// A file name for it: the package's own (`jq_1.6-2.1_amd64.deb`) or the input's.
    pub fn file_name(&self) -> String {
        let from = self.what["filename"].as_str().or(self.what["path"].as_str()).unwrap_or_default();
        let name = from.rsplit('/').next().unwrap_or_default().replace(':', "%3a");
        if name.is_empty() || name.starts_with('.') { self.sha256.clone() } else { name }
    }
}

/// Copies every pinned input of the recipe at `recipe_path` (its packages, kernel and stub
/// packages, and its `tar` and `deb` layers) into `dir` (default `vendor/` beside the recipe).
pub fn vendor(
    recipe_path: &Path,
    dir: Option<&Path>,
    settings: &Settings,
    reporter: &dyn Reporter,
) -> Result<Vendored> {
    let (recipe, items) = pinned(recipe_path, settings, reporter)?;
    let dir = dir.map(Path::to_path_buf).unwrap_or_else(|| recipe.base.join("vendor"));
    let store = dir.join("sha256");
    std::fs::create_dir_all(&store).writing(&store)?;
    let (mut copied, mut bytes) = (0, 0);
    for item in &items {
        let dest = apt::vendored_path(&dir, &item.sha256);
        let have = dest.is_file() && hex(&digest_file(&dest)?.0) == item.sha256;
        if !have {
            reporter.report(Event::Info(format!("copying {} into {}", item.host.display(), dest.display())));
            let mut part = file::staged_in(&store, ".part-")?;
            let mut from = std::fs::File::open(&item.host).reading(&item.host)?;
            std::io::copy(&mut from, part.as_file_mut()).writing(part.path())?;
            if hex(&digest_file(part.path())?.0) != item.sha256 {
                return Err(Error::input(format!("`{}` changed while it was copied", item.host.display())));
            }
            file::put_in_place(part, &dest)?;
            copied += 1;
        }
        bytes += std::fs::metadata(&dest).reading(&dest)?.len();
    }
    let sums: String = items.iter().map(|i| format!("{}  sha256/{}\n", i.sha256, i.sha256)).collect();
    file::replace(&dir.join("index.json"), index(recipe_path, &items, |i| format!("sha256/{}", i.sha256)).as_bytes())?;
    file::replace(&dir.join("SHA256SUMS"), sums.as_bytes())?;
    Ok(Vendored { dir, inputs: items.len(), copied, bytes })
}

/// `index.json`: what each input is, with its sha256 and where it is (`file_of`).
pub fn index(recipe_path: &Path, items: &[Item], file_of: impl Fn(&Item) -> String) -> String {
    let index: Vec<serde_json::Value> = items
        .iter()
        .map(|i| {
            let mut entry = i.what.clone();
            entry["sha256"] = json!(i.sha256);
            entry["file"] = json!(file_of(i));
            entry
        })
        .collect();
    serde_json::to_string_pretty(
        &json!({ "recipe": recipe_path.file_name().map(|n| n.to_string_lossy()), "inputs": index }),
    )
    .expect("plain data")
        + "\n"
}

/// Every pinned input of the locked recipe at `recipe_path`, each once, in sha256 order, from
/// wherever bake finds it (packages from the usual sources, checked against the lock).
pub fn pinned(recipe_path: &Path, settings: &Settings, reporter: &dyn Reporter) -> Result<(RecipeFile, Vec<Item>)> {
    let recipe = RecipeFile::load(recipe_path)?;
    let lock_path = crate::lockfile::path_for(recipe_path);
    let lock = crate::lockfile::read(&lock_path)?.ok_or_else(|| {
        Error::input(format!(
            "`{}` has no lock file `{}`: run `bake lock {}` first; vendoring copies what the lock pins",
            recipe_path.display(),
            lock_path.display(),
            recipe_path.display()
        ))
    })?;
    let hint = LockState { path: lock_path, lock: None, policy: settings.packages.policy }.hint(&recipe);
    let mut lists = Lists::default();
    let mut items = Vec::new();
    let packages = lock
        .layers
        .iter()
        .flat_map(|l| l.resolved.iter().map(|p| ("package", p)))
        .chain(lock.kernel.as_ref().map(|k| ("kernel package", &k.package)))
        .chain(lock.stub.as_ref().map(|k| ("EFI stub package", &k.package)));
    let sources = settings.packages.sources()?;
    for (kind, package) in packages {
        let (host, _) = apt::fetch(package, &sources, &mut lists, &hint, reporter)?;
        let (sha256, size) = (package.sha256.clone(), package.size);
        items.push(Item { host, sha256, size, what: package_json(kind, package) });
    }
    for input in lock.inputs.iter().filter(|i| matches!(i.kind, InputKind::Tar | InputKind::Deb | InputKind::Kernel)) {
        let host = recipe.host_path(&input.path);
        let (digest, size) = digest_file(&host)?;
        if hex(&digest) != input.sha256 {
            return Err(Error::input(format!(
                "`{}` has sha256 {}, but the lock pins {}: run `bake lock {}` if the change is meant",
                host.display(),
                hex(&digest),
                input.sha256,
                recipe_path.display()
            )));
        }
        let what = json!({ "kind": input.kind.name(), "path": input.path });
        items.push(Item { host, sha256: input.sha256.clone(), size, what });
    }
    items.sort_by(|a, b| a.sha256.cmp(&b.sha256));
    items.dedup_by(|a, b| a.sha256 == b.sha256);
    Ok((recipe, items))
}

fn package_json(kind: &str, p: &LockedPackage) -> serde_json::Value {
    json!({
        "kind": kind,
        "name": p.name,
        "version": p.version,
        "architecture": p.architecture,
        "filename": p.filename,
    })
}
