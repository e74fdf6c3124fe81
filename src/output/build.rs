//! `bake build`: recipe -> plan -> writers -> staged outputs -> renamed into place.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::base::error::{Error, IoContext, Result};
use crate::base::progress::{Event, Reporter};
use crate::output::cache::BuildCache;
use crate::output::manifest::{self, Output};
use crate::output::stage::OutputDir;
use crate::plan::{self, Environment};
use crate::recipe::{PartitionTable, RecipeFile};
use crate::source::content::Spool;

/// How to build, beyond the recipe.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where the outputs go; created when missing.
    pub out_dir: PathBuf,
    /// Threads for compression. Never changes the output bytes.
    pub jobs: u32,
    pub env: Environment,
    /// Whether to take the outputs from the build cache when they are there, and keep them
    /// there. Never changes the output bytes.
    pub use_cache: bool,
}

/// What a build made.
#[derive(Debug)]
pub struct Built {
    pub name: String,
    pub entries: usize,
    /// Every output: images first, then the SBOM, the manifest and `SHA256SUMS`.
    pub outputs: Vec<Output>,
    pub out_dir: PathBuf,
    pub elapsed: Duration,
    /// Whether the outputs came from the build cache.
    pub cached: bool,
}

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
    let (name, entries, outputs, cached) = result?;
    Ok(Built { name, entries, outputs, out_dir: out_dir.clone(), elapsed: started.elapsed(), cached })
}

type Made = (String, usize, Vec<Output>, bool);

fn build_into(recipe: &RecipeFile, options: &Options, reporter: &dyn Reporter) -> Result<Made> {
    let out = OutputDir::new(&options.out_dir);
    let cache_root = options.env.packages.cache.as_deref().filter(|_| options.use_cache);
    let prepared = plan::prepare(recipe, &options.env, cache_root, reporter)?;
    let cache = match cache_root {
        Some(root) => match BuildCache::program_digest() {
            Ok(program) => Some((BuildCache::new(root), prepared.cache_key(&program))),
            Err(e) => {
                reporter.report(Event::Warning(format!("build cache not used: cannot read the bake program: {e}")));
                None
            }
        },
        None => None,
    };
    if let Some((cache, key)) = &cache
        && let Some(hit) = cache.restore(key, &out, reporter)
    {
        let outputs = out.commit(hit.staged)?;
        return Ok((hit.name, hit.entries, outputs, true));
    }

    // Scratch space for archive data lives in the output folder (nothing is written elsewhere)
    // and is removed when the build ends, however it ends.
    let work = tempfile::Builder::new().prefix(".bake-work-").tempdir_in(out.path()).writing(out.path())?;
    let mut spool = Spool::new(work.path().join("spool"));
    let plan = prepared.lay(&mut spool, reporter)?;

    let mut staged = Vec::new();
    if let Some(settings) = plan.initramfs {
        crate::output::initramfs::check(&plan)?;
        let file = format!("{}.cpio{}", plan.name, settings.compression.suffix());
        reporter.report(Event::WriteStart {
            output: file.clone(),
            entries: plan.entries.len() as u64,
            bytes: crate::output::initramfs::data_bytes(&plan),
        });
        staged.push(
            out.stage(&file, |w| crate::output::initramfs::write(&plan, settings, &spool, w, options.jobs, reporter))?,
        );
        reporter.report(Event::WriteDone { output: file });
    }
    if let Some(disk) = plan.disk {
        let file = format!("{}.erofs", plan.name);
        // Laid out first: an image the format cannot hold is refused before anything is written.
        crate::format::erofs::image_size(&plan)?;
        let bytes = crate::output::initramfs::data_bytes(&plan);
        reporter.report(Event::WriteStart { output: file.clone(), entries: plan.entries.len() as u64, bytes });
        let fs = out.stage(&file, |w| crate::format::erofs::write(&plan, &spool, w, reporter))?;
        reporter.report(Event::WriteDone { output: file });
        if disk.partition_table == PartitionTable::Gpt {
            let file = format!("{}.img", plan.name);
            let (size, sha256) = (fs.output().size, fs.output().sha256);
            let disk = out.stage(&file, |w| {
                let mut data = std::io::BufReader::with_capacity(1 << 20, fs.reopen()?);
                crate::format::gpt::write(&plan.name, &mut data, size, &sha256, w)
            })?;
            staged.push(fs);
            staged.push(disk);
        } else {
            staged.push(fs);
        }
    }
    if plan.initramfs.is_none() && plan.disk.is_none() {
        reporter.report(Event::Warning(format!(
            "`{}` asks for no image (no `[initramfs]` or `[disk]`): only the manifest is written",
            recipe.path.display()
        )));
    }

    if let Some(kernel) = &plan.kernel {
        let file = format!("{}.vmlinuz", plan.name);
        staged.push(out.stage(&file, |mut w| {
            let mut data = kernel.vmlinuz.open(&spool)?;
            std::io::copy(&mut data, &mut w).writing(&out.path().join(&file))?;
            Ok(w)
        })?);
    }

    let images: Vec<Output> = staged.iter().map(|s| s.output().clone()).collect();
    if !plan.packages.is_empty() {
        let file = format!("{}.spdx.json", plan.name);
        let sbom = crate::output::sbom::spdx_json(&plan.name, plan.epoch, &plan.packages, &images);
        staged.push(out.stage_bytes(&file, sbom.as_bytes())?);
    }
    let manifest_file = format!("{}.manifest.json", plan.name);
    staged.push(out.stage_bytes(&manifest_file, manifest::manifest_json(&plan, &images).as_bytes())?);
    let summed: Vec<Output> = staged.iter().map(|s| s.output().clone()).collect();
    staged.push(out.stage_bytes("SHA256SUMS", manifest::sha256sums(&summed).as_bytes())?);
    let outputs = out.commit(staged)?;
    if let Some((cache, key)) = &cache {
        cache.store(key, &plan.name, plan.entries.len(), out.path(), &outputs, reporter);
    }
    Ok((plan.name, plan.entries.len(), outputs, false))
}

/// The `bake build` summary as JSON (for `--json`).
pub fn summary_json(built: &Built) -> String {
    let outputs: Vec<serde_json::Value> = built
        .outputs
        .iter()
        .map(|o| {
            serde_json::json!({
                "path": built.out_dir.join(&o.file).display().to_string(),
                "size": o.size,
                "sha256": crate::base::hash::hex(&o.sha256),
            })
        })
        .collect();
    let value = serde_json::json!({
        "name": built.name,
        "entries": built.entries,
        "outputs": outputs,
        "seconds": built.elapsed.as_secs_f64(),
        "cached": built.cached,
    });
    let mut text = serde_json::to_string_pretty(&value).expect("plain data");
    text.push('\n');
    text
}

/// Writes `text` to standard output, reporting a closed pipe as an error rather than a panic.
pub fn print(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
        .map_err(|e| Error::failure(format!("cannot write to standard output: {e}")))
}
