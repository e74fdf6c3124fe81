//! `bake push` and `bake pull`: a build's outputs to and from an OCI registry.

use std::path::Path;

use serde_json::json;

use crate::base::error::{Error, Result};
use crate::base::progress::Reporter;
use crate::output::build::{self, Options};
use crate::registry::Reference;
use crate::registry::artifact::{self, Access, Transferred};

/// Pushes `source` (a folder `bake build` wrote, or a recipe, built first with `options` into a
/// temporary folder) to `reference`.
pub fn push(
    source: &Path,
    reference: &str,
    access: &Access<'_>,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<Transferred> {
    let reference = Reference::parse(reference)?;
    if source.is_dir() {
        return artifact::push(source, &reference, access, reporter);
    }
    if !source.is_file() {
        return Err(Error::input(format!("`{}` is neither a build's output folder nor a recipe", source.display())));
    }
    let scratch = tempfile::Builder::new()
        .prefix("bake-push-")
        .tempdir()
        .map_err(|e| Error::failure(format!("cannot make a temporary folder: {e}")))?;
    let options = Options { out_dir: scratch.path().join("out"), ..options.clone() };
    build::build(source, &options, reporter)?;
    artifact::push(&options.out_dir, &reference, access, reporter)
}

/// Pulls `reference` into `dir`.
pub fn pull(reference: &str, dir: &Path, access: &Access<'_>, reporter: &dyn Reporter) -> Result<Transferred> {
    let reference = Reference::parse(reference)?;
    artifact::pull(&reference, dir, access, reporter)
}

/// The one line both print: `HOST/REPO:TAG@sha256:...`.
pub fn text(done: &Transferred) -> String {
    format!("{}\n", done.pinned())
}

pub fn json(done: &Transferred) -> String {
    let value = json!({
        "reference": done.pinned(),
        "digest": done.digest,
        "files": done.files,
        "transferred": done.moved,
        "already_there": done.skipped,
    });
    serde_json::to_string_pretty(&value).expect("plain data") + "\n"
}
