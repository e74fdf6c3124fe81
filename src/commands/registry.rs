//! `bake push` and `bake pull`: a build's outputs to and from an OCI registry.

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::base::error::{Error, Result};
use crate::base::hash::{digest_file, hex};
use crate::base::progress::{Event, Reporter};
use crate::output::OutputKind;
use crate::output::build::{self, Options};
use crate::output::cache::RemoteCache;
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

/// Pushes the pinned inputs of the locked recipe at `recipe` (packages, kernel and stub
/// packages, `tar` and `deb` layers) to `reference` as one artifact: each input a blob whose
/// digest is its pinned sha256, named by its file name, and `index.json` saying what each one
/// is. A team's registry then keeps what the distribution drops (`bake build --inputs-from`).
pub fn push_inputs(
    recipe: &Path,
    reference: &str,
    access: &Access<'_>,
    settings: &crate::plan::Settings,
    reporter: &dyn Reporter,
) -> Result<Transferred> {
    let reference = Reference::parse(reference)?;
    if reference.digest.is_some() {
        return Err(Error::input(format!("`{reference}`: push to a tag; the digest is what the push prints")));
    }
    if !recipe.is_file() {
        return Err(Error::input(format!("`{}`: `--inputs` pushes the pinned inputs of a recipe", recipe.display())));
    }
    let (_, items) = crate::commands::vendor::pinned(recipe, settings, reporter)?;
    // File names as titles; two inputs that share one (unlikely) are told apart by digest.
    let mut names: Vec<String> = items.iter().map(|i| i.file_name()).collect();
    let taken = names.clone();
    for (name, item) in names.iter_mut().zip(&items) {
        if taken.iter().filter(|n| *n == name).count() > 1 || name == "index.json" {
            *name = item.sha256.clone();
        }
    }
    let index = crate::commands::vendor::index(recipe, &items, |i| {
        names[items.iter().position(|x| x.sha256 == i.sha256).expect("listed")].clone()
    });
    let scratch = tempfile::Builder::new()
        .prefix(".bake-inputs-")
        .tempfile()
        .map_err(|e| Error::failure(format!("cannot make a temporary file: {e}")))?;
    std::fs::write(scratch.path(), &index).map_err(|e| Error::failure(format!("cannot write the index: {e}")))?;
    let mut files: Vec<artifact::File> = items
        .iter()
        .zip(names)
        .map(|(item, name)| artifact::File {
            name,
            path: item.host.clone(),
            sha256: item.sha256.clone(),
            size: item.size,
            media_type: artifact::INPUT_TYPE.to_string(),
        })
        .collect();
    files.push(artifact::File {
        name: "index.json".to_string(),
        path: scratch.path().to_path_buf(),
        sha256: hex(&crate::base::hash::digest_bytes(index.as_bytes())),
        size: index.len() as u64,
        media_type: artifact::INPUTS_INDEX_TYPE.to_string(),
    });
    artifact::push_files(&reference, files, artifact::INPUTS_TYPE, access, reporter)
}

/// A registry repository as a store of pinned inputs (`bake build --inputs-from REGISTRY/REPO`):
/// each fetched by its sha256 as a blob of that repository.
#[derive(Debug)]
pub struct RegistryInputs {
    repository: Reference,
    plain_http: bool,
    docker_config: Option<PathBuf>,
}

impl RegistryInputs {
    pub fn new(repository: &str, plain_http: bool, docker_config: Option<&Path>) -> Result<RegistryInputs> {
        let repository = repository_only(repository, "--inputs-from")?;
        Ok(RegistryInputs { repository, plain_http, docker_config: docker_config.map(Path::to_path_buf) })
    }
}

impl crate::source::apt::InputStore for RegistryInputs {
    fn name(&self) -> String {
        format!("`{}/{}`", self.repository.registry, self.repository.repository)
    }

    fn fetch(
        &self,
        sha256: &str,
        size: u64,
        out: &mut std::fs::File,
        path: &Path,
        reporter: &dyn Reporter,
    ) -> Result<bool> {
        let access = Access { plain_http: self.plain_http, docker_config: self.docker_config.as_deref() };
        artifact::fetch_by_digest(&self.repository, sha256, size, out, path, &access, reporter)
    }
}

/// `text` as a repository reference without a tag or digest, for `flag`.
fn repository_only(text: &str, flag: &str) -> Result<Reference> {
    let tagged = text.rsplit_once('/').is_some_and(|(_, last)| last.contains(':')) || text.contains('@');
    if tagged {
        return Err(Error::input(format!(
            "{flag} `{text}`: name a repository (HOST[:PORT]/REPO) without a tag or digest"
        )));
    }
    Reference::parse(text)
}

/// Pulls `reference` into `dir`.
pub fn pull(reference: &str, dir: &Path, access: &Access<'_>, reporter: &dyn Reporter) -> Result<Transferred> {
    let reference = Reference::parse(reference)?;
    artifact::pull(&reference, dir, access, reporter)
}

/// A build cache in a registry repository (`bake build --remote-cache REGISTRY/REPO`): the
/// entry for key `KEY` is the artifact tagged `cache-KEY` there.
#[derive(Debug)]
pub struct RegistryCache {
    repository: Reference,
    plain_http: bool,
    docker_config: Option<std::path::PathBuf>,
}

impl RegistryCache {
    /// The cache in `repository` (`HOST[:PORT]/REPO`, without a tag or digest).
    pub fn new(repository: &str, plain_http: bool, docker_config: Option<&Path>) -> Result<RegistryCache> {
        let repository = repository_only(repository, "--remote-cache")?;
        Ok(RegistryCache { repository, plain_http, docker_config: docker_config.map(Path::to_path_buf) })
    }

    fn entry(&self, key: &str) -> Reference {
        Reference { tag: Some(format!("cache-{key}")), digest: None, ..self.repository.clone() }
    }

    fn access(&self) -> Access<'_> {
        Access { plain_http: self.plain_http, docker_config: self.docker_config.as_deref() }
    }
}

impl RemoteCache for RegistryCache {
    fn name(&self) -> String {
        format!("`{}/{}`", self.repository.registry, self.repository.repository)
    }

    fn fetch(&self, key: &str, into: &Path, reporter: &dyn Reporter) -> Result<bool> {
        artifact::fetch_files(&self.entry(key), into, artifact::CACHE_TYPE, &self.access(), reporter)
    }

    fn store(&self, key: &str, files: &[(String, PathBuf, Option<OutputKind>)], reporter: &dyn Reporter) -> Result<()> {
        let mut upload = Vec::with_capacity(files.len());
        for (name, path, kind) in files {
            let (sha256, size) = digest_file(path)?;
            let media_type = kind.map_or(artifact::RECORD_TYPE.to_string(), artifact::media_type);
            upload.push(artifact::File {
                name: name.clone(),
                path: path.clone(),
                sha256: hex(&sha256),
                size,
                media_type,
            });
        }
        let pushed = artifact::push_files(&self.entry(key), upload, artifact::CACHE_TYPE, &self.access(), reporter)?;
        reporter.report(Event::Detail(format!("sent to the remote cache: {}", pushed.pinned())));
        Ok(())
    }
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
