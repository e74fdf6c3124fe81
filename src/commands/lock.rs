//! `bake lock`: every input of a recipe resolved, read and pinned in its lock file.

use std::path::{Path, PathBuf};

use crate::base::error::{Error, Result};
use crate::base::hash::hex;
use crate::base::progress::Reporter;
use crate::lockfile::{LOCK_VERSION, Lock, LockedInput};
use crate::plan::Settings;
use crate::recipe::{InputKind, RecipeFile};
use crate::source::content::Spool;
use crate::source::packages::LockPolicy;

/// What `bake lock` did.
#[derive(Debug)]
pub struct Locked {
    pub path: PathBuf,
    /// Whether the file's bytes changed (it is not rewritten when they would not).
    pub changed: bool,
    pub packages: usize,
    pub inputs: usize,
}

impl Locked {
    /// `recipes/jq.lock: written: 7 packages, 1 other inputs pinned`.
    pub fn summary(&self) -> String {
        let state = if self.changed { "written" } else { "unchanged" };
        format!("{}: {state}: {} packages, {} other inputs pinned\n", self.path.display(), self.packages, self.inputs)
    }
}

/// Resolves and reads every input of the recipe at `recipe_path` (no image is written) and pins
/// them in its lock file. With `update`, packages are resolved afresh from apt's lists;
/// otherwise what the lock already pins for an unchanged request is kept.
pub fn lock(recipe_path: &Path, update: bool, settings: &Settings, reporter: &dyn Reporter) -> Result<Locked> {
    let recipe = RecipeFile::load(recipe_path)?;
    let mut settings = settings.clone();
    settings.packages.policy = if update { LockPolicy::Update } else { LockPolicy::Relock };
    let scratch = tempfile::Builder::new()
        .prefix("bake-lock-")
        .tempdir()
        .map_err(|e| Error::failure(format!("cannot make a temporary folder: {e}")))?;
    let mut spool = Spool::new(scratch.path().join("spool"));
    let plan = crate::plan::plan(&recipe, &settings, &mut spool, reporter)?;
    let lock = Lock {
        version: LOCK_VERSION,
        layers: plan.package_layers,
        kernel: plan.kernel_package,
        stub: plan.boot.and_then(|b| b.stub_package),
        inputs: plan
            .inputs
            .iter()
            .filter(|i| i.kind != InputKind::Package)
            .map(|i| LockedInput { kind: i.kind, path: i.path.clone(), sha256: hex(&i.sha256) })
            .collect(),
    };
    let name = recipe_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let path = crate::lockfile::path_for(recipe_path);
    let changed = crate::lockfile::write(&path, &lock, &name)?;
    let packages = lock.layers.iter().map(|l| l.resolved.len()).sum::<usize>()
        + usize::from(lock.kernel.is_some())
        + usize::from(lock.stub.is_some());
    Ok(Locked { path, changed, packages, inputs: lock.inputs.len() })
}
