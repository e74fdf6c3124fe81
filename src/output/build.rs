//! A whole build: recipe -> plan -> every wanted output staged -> renamed into place; or, when
//! the build cache holds the outputs of the same inputs, those.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cache::{BuildCache, RemoteCache};
use super::stage::{OutputDir, Staged};
use super::{Built, Job};
use crate::base::error::{IoContext, Result};
use crate::base::progress::{Event, Reporter};
use crate::plan::{self, Plan, Settings};
use crate::recipe::RecipeFile;
use crate::source::content::Spool;

/// How to build, beyond the recipe.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the outputs go; created when missing.
    pub out_dir: PathBuf,
    /// Threads for compression. Never changes the output bytes.
    pub threads: u32,
    pub settings: Settings,
    /// Whether to take the outputs from the build cache when they are there, and keep them
    /// there. Never changes the output bytes.
    pub use_cache: bool,
    /// A build cache shared through a registry (`--remote-cache`): looked in after the local
    /// one (unless `use_cache` is off), and given the outputs of every build made for real.
    pub remote: Option<std::sync::Arc<dyn RemoteCache + Send + Sync>>,
}

impl std::fmt::Debug for dyn RemoteCache + Send + Sync {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RemoteCache({})", self.name())
    }
}

/// Builds the recipe at `recipe_path` into `options.out_dir`.
pub fn build(recipe_path: &Path, options: &Options, reporter: &dyn Reporter) -> Result<Built> {
    let started = Instant::now();
    let recipe = RecipeFile::load(recipe_path)?;
    let out_dir = &options.out_dir;
    let created = !out_dir.exists();
    std::fs::create_dir_all(out_dir).writing(out_dir)?;
    let result = build_into(&recipe, options, reporter);
    if result.is_err() && created {
        // Leave no trace of a build that never produced anything.
        let _ = std::fs::remove_dir(out_dir);
    }
    Ok(Built { elapsed: started.elapsed(), ..result? })
}

/// The build, timed by the caller.
fn build_into(recipe: &RecipeFile, options: &Options, reporter: &dyn Reporter) -> Result<Built> {
    let out = OutputDir::new(&options.out_dir);
    let cache_root = options.settings.packages.cache.as_deref().filter(|_| options.use_cache);
    let prepared = plan::prepare(recipe, &options.settings, cache_root, reporter)?;
    // A disk that boots by itself holds a stage-1 built from another recipe: planned here, in
    // the same build, and part of the cache key.
    let stage1 = plan::stage1_recipe(recipe)?;
    let stage1_prepared = match &stage1 {
        Some(stage1) => Some(plan::prepare(stage1, &options.settings, cache_root, reporter)?),
        None => None,
    };
    let source = BuildCache::source_digest();
    let mut key = prepared.cache_key(&source);
    if let Some(stage1) = &stage1_prepared {
        key = crate::base::hash::digest_bytes(&[&key[..], &stage1.cache_key(&source)[..]].concat());
    }
    let cache = cache_root.map(BuildCache::new);
    let remote = options.remote.as_deref();
    let local_hit = cache.as_ref().and_then(|cache| cache.restore(&key, &out, reporter));
    let remote_hit = match (&local_hit, remote) {
        (None, Some(remote)) if options.use_cache => BuildCache::restore_remote(remote, &key, &out, reporter),
        _ => None,
    };
    if let Some((hit, from_remote)) = local_hit.map(|h| (h, false)).or(remote_hit.map(|h| (h, true))) {
        let outputs = out.commit(hit.staged)?;
        let out_dir = options.out_dir.clone();
        let (name, entries, data_bytes) = (hit.name, hit.entries, hit.data_bytes);
        let built = Built { name, entries, data_bytes, outputs, out_dir, elapsed: Duration::ZERO, cached: true };
        if let (true, Some(remote)) = (from_remote, remote) {
            reporter.report(Event::Info(format!("the outputs came from the remote cache {}", remote.name())));
            if let Some(cache) = &cache {
                cache.store(&key, &built, reporter);
            }
        }
        return Ok(built);
    }

    // Scratch space for archive data lives in the output folder (nothing is written elsewhere)
    // and is removed when the build ends, however it ends.
    let work = tempfile::Builder::new().prefix(".bake-work-").tempdir_in(out.path()).writing(out.path())?;
    let mut spool = Spool::new(work.path().join("spool"));
    let plan = prepared.lay(&mut spool, reporter)?;
    let stage1 = match stage1_prepared {
        Some(prepared) => Some(prepared.lay(&mut spool, reporter)?),
        None => None,
    };
    if plan.initramfs.is_none() && plan.disk.is_none() {
        reporter.report(Event::Warning(format!(
            "`{}` asks for no image (no `[initramfs]` or `[disk]`): only the manifest is written",
            recipe.path.display()
        )));
    }
    let store = cache_root.map(crate::source::store::Store::new);
    let staged = write_outputs(&plan, stage1.as_ref(), &spool, store.as_ref(), &out, options.threads, reporter)?;
    let outputs = out.commit(staged)?;
    let built = Built {
        name: plan.name.clone(),
        entries: plan.entries.len(),
        data_bytes: plan.data_bytes(),
        outputs,
        out_dir: options.out_dir.clone(),
        elapsed: Duration::ZERO,
        cached: false,
    };
    if let Some(cache) = &cache {
        cache.store(&key, &built, reporter);
    }
    if let Some(remote) = remote {
        BuildCache::store_remote(remote, &key, &built, reporter);
    }
    Ok(built)
}

/// Writes every output `plan` asks for into staged files in `out`, in the table's order, after
/// checking every one of them can hold the plan.
fn write_outputs(
    plan: &Plan,
    stage1: Option<&Plan>,
    spool: &Spool,
    store: Option<&crate::source::store::Store>,
    out: &OutputDir,
    threads: u32,
    reporter: &dyn Reporter,
) -> Result<Vec<Staged>> {
    let writers = super::wanted(plan);
    for writer in &writers {
        writer.check(plan)?;
    }
    let mut staged: Vec<Staged> = Vec::with_capacity(writers.len());
    for writer in writers {
        let file = writer.file(plan);
        let progress = writer.progress(plan);
        if let Some((entries, bytes)) = progress {
            reporter.report(Event::WriteStart { output: file.clone(), entries, bytes });
        }
        let path = out.path().join(&file);
        let job = Job { plan, stage1, spool, threads, store, reporter, earlier: &staged, path: &path };
        let output = out.stage(writer.kind(), &file, |w| writer.write(&job, w))?;
        if progress.is_some() {
            reporter.report(Event::WriteDone { output: file });
        }
        staged.push(output);
    }
    Ok(staged)
}
