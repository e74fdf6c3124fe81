//! A build's outputs as one OCI artifact, and back.
//!
//! The manifest is an OCI image-spec 1.1 image manifest with `artifactType`
//! [`ARTIFACT_TYPE`], the empty config descriptor, and one layer per output file, in file-name
//! order, each with the media type of its kind (`application/vnd.bake.KIND.v1`, KIND as in
//! [`OutputKind::name`]) and its file name as `org.opencontainers.image.title`. The only other
//! annotation is `org.opencontainers.image.created`, the image's epoch: no clock and no host
//! reaches the manifest, so the same build pushed from two folders or two hosts has the same
//! manifest digest.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::path::Path;

use serde_json::json;

use sha2::{Digest as _, Sha256};

use super::client::{Actions, Blob, Client, MANIFEST_TYPE};
use super::reference::Reference;
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{digest_bytes, digest_file, hex};
use crate::base::progress::{Event, Reporter};
use crate::output::OutputKind;

/// The `artifactType` of a bake image.
pub const ARTIFACT_TYPE: &str = "application/vnd.bake.image.v1";
/// The `artifactType` of an entry of a remote build cache (`bake build --remote-cache`): the
/// outputs, each with its kind's media type, and the cache's record of them
/// ([`RECORD_TYPE`]).
pub const CACHE_TYPE: &str = "application/vnd.bake.cache.v1";
pub const RECORD_TYPE: &str = "application/vnd.bake.cache-record.v1+json";
/// The `artifactType` of a recipe's pinned inputs (`bake push --inputs`): one layer per input
/// ([`INPUT_TYPE`]), whose digest is the sha256 the lock pins, and `index.json`
/// ([`INPUTS_INDEX_TYPE`]) saying what each one is.
pub const INPUTS_TYPE: &str = "application/vnd.bake.inputs.v1";
pub const INPUT_TYPE: &str = "application/vnd.bake.input.v1";
pub const INPUTS_INDEX_TYPE: &str = "application/vnd.bake.inputs-index.v1+json";
/// The empty JSON object `{}` every artifact's config is (OCI image-spec 1.1).
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";
const EMPTY: &[u8] = b"{}";
const TITLE: &str = "org.opencontainers.image.title";
const CREATED: &str = "org.opencontainers.image.created";

/// What a push or a pull did: the reference and the manifest's digest (`sha256:...`).
#[derive(Debug)]
pub struct Transferred {
    pub reference: Reference,
    pub digest: String,
    pub files: Vec<String>,
    /// Blobs sent (a push) or files written (a pull), and those the registry or folder had.
    pub moved: usize,
    pub skipped: usize,
}

impl Transferred {
    /// `HOST/REPO:TAG@sha256:...`.
    pub fn pinned(&self) -> String {
        format!("{}@{}", self.reference.name(), self.digest)
    }
}

/// How to reach a registry: plain HTTP or not, and where docker keeps credentials.
#[derive(Debug, Clone, Copy)]
pub struct Access<'a> {
    pub plain_http: bool,
    /// A docker `config.json` (`$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`).
    pub docker_config: Option<&'a Path>,
}

impl Access<'_> {
    /// A client for `reference`'s repository, to do `actions` there.
    pub fn client<'r>(
        &self,
        reference: &Reference,
        actions: Actions,
        reporter: &'r dyn Reporter,
    ) -> Result<Client<'r>> {
        let credentials = super::credentials::lookup(self.docker_config, &reference.registry)?;
        Ok(Client::new(reference, self.plain_http, actions, credentials, reporter))
    }
}

/// The media type of an output of `kind`.
pub fn media_type(kind: OutputKind) -> String {
    format!("application/vnd.bake.{}.v1", kind.name())
}

/// The kind of the output file `file` of a build folder, by the names bake gives outputs.
fn kind_of(file: &str) -> Option<OutputKind> {
    let kinds = [
        (".spdx.json", OutputKind::Sbom),
        (".manifest.json", OutputKind::Manifest),
        (".erofs", OutputKind::FileSystem),
        (".img", OutputKind::Disk),
        (".verity", OutputKind::Verity),
        (".efi", OutputKind::Uki),
        (".vmlinuz", OutputKind::Kernel),
    ];
    if file == "SHA256SUMS" {
        return Some(OutputKind::Sums);
    }
    if let Some((_, kind)) = kinds.iter().find(|(suffix, _)| file.ends_with(suffix)) {
        return Some(*kind);
    }
    [".cpio", ".cpio.zst", ".cpio.gz", ".cpio.xz", ".cpio.lz4"]
        .iter()
        .any(|s| file.ends_with(s))
        .then_some(OutputKind::Initramfs)
}

/// The files `SHA256SUMS` in `dir` lists, with their digests (hex), in its order.
fn sums(dir: &Path) -> Result<Vec<(String, String)>> {
    let path = dir.join("SHA256SUMS");
    let text = std::fs::read_to_string(&path).reading(&path)?;
    text.lines()
        .filter(|l| !l.is_empty())
        .map(|line| {
            let (digest, file) = line
                .split_once("  ")
                .ok_or_else(|| Error::input(format!("`{}`: `{line}` is not `SHA256  FILE`", path.display())))?;
            if !plain_file_name(file) || digest.len() != 64 {
                return Err(Error::input(format!(
                    "`{}`: `{line}` is not `SHA256  FILE` with a plain file name",
                    path.display()
                )));
            }
            Ok((digest.to_string(), file.to_string()))
        })
        .collect()
}

/// A file name without a folder, that is not hidden, `.` or `..`.
fn plain_file_name(name: &str) -> bool {
    !name.is_empty() && !name.starts_with('.') && !name.contains(['/', '\\', '\0'])
}

/// Pushes the outputs of the build in `dir` (the files its `SHA256SUMS` lists, and that file)
/// to `reference`, a tag. Blobs the repository has already are not sent again.
pub fn push(dir: &Path, reference: &Reference, access: &Access<'_>, reporter: &dyn Reporter) -> Result<Transferred> {
    if reference.digest.is_some() {
        return Err(Error::input(format!("`{reference}`: push to a tag; the digest is what the push prints")));
    }
    let mut files = Vec::new();
    for (digest, file) in sums(dir)? {
        let path = dir.join(&file);
        let (actual, size) = digest_file(&path)?;
        if hex(&actual) != digest {
            return Err(Error::input(format!(
                "`{}` has sha256 {}, not the {digest} `SHA256SUMS` lists: the folder changed after the build",
                path.display(),
                hex(&actual)
            )));
        }
        let kind = kind_of(&file)
            .ok_or_else(|| Error::input(format!("`{file}` in `{}` is not an output bake writes", dir.display())))?;
        files.push(File { name: file, path, sha256: digest, size, media_type: media_type(kind) });
    }
    let path = dir.join("SHA256SUMS");
    let (sums_digest, size) = digest_file(&path)?;
    let media_type = media_type(OutputKind::Sums);
    files.push(File { name: "SHA256SUMS".to_string(), path, sha256: hex(&sums_digest), size, media_type });
    push_files(reference, files, ARTIFACT_TYPE, access, reporter)
}

/// One file of an artifact to push: its name (the layer's title), where it is, its sha256
/// (hex) and size, and its media type.
pub struct File {
    pub name: String,
    pub path: std::path::PathBuf,
    pub sha256: String,
    pub size: u64,
    pub media_type: String,
}

/// Pushes `files` to `reference` as one artifact of `artifact_type`, in file-name order, with
/// the epoch of the `.manifest.json` among them as its creation time. Blobs the repository has
/// already are not sent again.
pub fn push_files(
    reference: &Reference,
    mut files: Vec<File>,
    artifact_type: &str,
    access: &Access<'_>,
    reporter: &dyn Reporter,
) -> Result<Transferred> {
    files.sort_by(|a, b| a.name.cmp(&b.name));
    let epoch = match files.iter().find(|f| f.name.ends_with(".manifest.json")) {
        Some(manifest) => epoch(&manifest.path)?,
        None => 0,
    };
    let client = access.client(reference, Actions::Push, reporter)?;
    let empty = format!("sha256:{}", hex(&digest_bytes(EMPTY)));
    let (mut moved, mut skipped) = (0, 0);
    if client.has_blob(&empty)? {
        skipped += 1;
    } else {
        client.put_blob(&empty, EMPTY.len() as u64, Blob::Bytes(EMPTY))?;
        moved += 1;
    }
    let mut layers = Vec::new();
    for file in &files {
        let (name, size) = (&file.name, file.size);
        let digest = format!("sha256:{}", file.sha256);
        if client.has_blob(&digest)? {
            reporter.report(Event::Detail(format!("{name}: the registry has it already")));
            skipped += 1;
        } else {
            reporter.report(Event::Info(format!("sending {name} ({size} bytes)")));
            client.put_blob(&digest, size, Blob::File(&file.path))?;
            moved += 1;
        }
        layers.push(
            json!({ "mediaType": file.media_type, "digest": digest, "size": size, "annotations": { TITLE: name } }),
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": artifact_type,
        "config": { "mediaType": EMPTY_TYPE, "digest": empty, "size": EMPTY.len(), "data": "e30=" },
        "layers": layers,
        "annotations": { CREATED: crate::base::time::iso8601(epoch) },
    });
    let bytes = serde_json::to_vec(&manifest).expect("plain data");
    let digest = format!("sha256:{}", hex(&digest_bytes(&bytes)));
    client.put_manifest(reference.target(), &bytes)?;
    Ok(Transferred {
        reference: reference.clone(),
        digest,
        files: files.into_iter().map(|f| f.name).collect(),
        moved,
        skipped,
    })
}

/// The image's epoch, from the build's manifest `path` (`NAME.manifest.json`).
fn epoch(path: &Path) -> Result<u64> {
    let text = std::fs::read_to_string(path).reading(path)?;
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::input(format!("`{}`: {e}", path.display())))?;
    Ok(value["epoch"].as_u64().unwrap_or(0))
}

/// One layer of a pulled manifest.
struct Layer {
    file: String,
    digest: String,
    size: u64,
}

/// Pulls the artifact at `reference` into `dir`: every blob checked against its digest as it
/// streams, the files against the artifact's `SHA256SUMS`, then renamed into place together;
/// the outputs of the set that was there before and are not in this one are removed. Nothing
/// in `dir` changes when any check fails.
pub fn pull(reference: &Reference, dir: &Path, access: &Access<'_>, reporter: &dyn Reporter) -> Result<Transferred> {
    let client = access.client(reference, Actions::Pull, reporter)?;
    let (digest, layers) = manifest(&client, reference, ARTIFACT_TYPE)?.ok_or_else(|| {
        Error::input(format!(
            "registry `{}` has no `{}` in `{}`",
            reference.registry,
            reference.target(),
            reference.repository
        ))
    })?;
    std::fs::create_dir_all(dir).writing(dir)?;
    let mut staged = fetch_layers(&client, &layers, dir, reporter)?;
    // The files against the artifact's own SHA256SUMS: every one listed, every digest the same.
    let sums_layer = staged
        .iter()
        .find(|(_, l)| l.file == "SHA256SUMS")
        .ok_or_else(|| Error::input(format!("`{reference}` has no `SHA256SUMS`: not a bake image")))?;
    let text = std::fs::read_to_string(sums_layer.0.path()).writing(dir)?;
    let mut listed = BTreeSet::new();
    for line in text.lines().filter(|l| !l.is_empty()) {
        let (hex_digest, file) = line.split_once("  ").unwrap_or(("", line));
        let layer = layers.iter().find(|l| l.file == file);
        if layer.is_none_or(|l| l.digest != format!("sha256:{hex_digest}")) {
            return Err(Error::failure(format!(
                "`{reference}`: `{file}` does not match the artifact's SHA256SUMS: refusing it"
            )));
        }
        listed.insert(file.to_string());
    }
    let before = previous_set(dir);
    // Into place, SHA256SUMS last: it says the set is complete.
    staged.sort_by_key(|(_, l)| l.file == "SHA256SUMS");
    let mut files = Vec::new();
    for (part, layer) in staged {
        let dest = dir.join(&layer.file);
        crate::base::file::put_in_place(part, &dest)?;
        files.push(layer.file.clone());
    }
    for old in before.iter().filter(|f| !files.contains(f)) {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let moved = files.len();
    Ok(Transferred { reference: reference.clone(), digest, files, moved, skipped: 0 })
}

/// The manifest at `reference` (its digest, checked against the reference's, and its layers,
/// checked to be an artifact of `artifact_type`); `None` when there is none.
fn manifest(client: &Client<'_>, reference: &Reference, artifact_type: &str) -> Result<Option<(String, Vec<Layer>)>> {
    let Some(bytes) = client.get_manifest(reference.target())? else { return Ok(None) };
    let digest = format!("sha256:{}", hex(&digest_bytes(&bytes)));
    if let Some(asked) = &reference.digest
        && *asked != digest
    {
        return Err(Error::failure(format!(
            "`{reference}`: the registry sent a manifest whose digest is {digest}: refusing it"
        )));
    }
    Ok(Some((digest, layers(&bytes, reference, artifact_type)?)))
}

/// Every blob of `layers` into a scratch file in `dir`, checked as it streams.
fn fetch_layers<'l>(
    client: &Client<'_>,
    layers: &'l [Layer],
    dir: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<(tempfile::NamedTempFile, &'l Layer)>> {
    let mut staged = Vec::new();
    for layer in layers {
        reporter.report(Event::Info(format!("fetching {} ({} bytes)", layer.file, layer.size)));
        let mut part = crate::base::file::staged_in(dir, ".bake-pull-")?;
        let (got, copied) = fetch_blob(client, layer, part.as_file_mut(), dir)?.ok_or_else(|| {
            Error::failure(format!(
                "`{}`: the registry has no blob {}, though the manifest names it",
                layer.file, layer.digest
            ))
        })?;
        if got != layer.digest || copied != layer.size {
            return Err(Error::failure(format!(
                "`{}`: the registry sent {copied} bytes with digest {got} for blob {} ({} bytes): refusing it; nothing in `{}` was changed",
                layer.file,
                layer.digest,
                layer.size,
                dir.display()
            )));
        }
        staged.push((part, layer));
    }
    Ok(staged)
}

/// Fetches the artifact of `artifact_type` at `reference` into the folder `into`, every file
/// checked against its digest; `false` when the registry has nothing there.
pub fn fetch_files(
    reference: &Reference,
    into: &Path,
    artifact_type: &str,
    access: &Access<'_>,
    reporter: &dyn Reporter,
) -> Result<bool> {
    let client = access.client(reference, Actions::Pull, reporter)?;
    let Some((_, layers)) = manifest(&client, reference, artifact_type)? else { return Ok(false) };
    for (part, layer) in fetch_layers(&client, &layers, into, reporter)? {
        crate::base::file::put_in_place(part, &into.join(&layer.file))?;
    }
    Ok(true)
}

/// Fetches the blob `sha256:HEX` (`size` bytes) of the repository `reference` names into `out`,
/// checked against its digest and size as it streams; `false` when the repository lacks it.
pub fn fetch_by_digest(
    reference: &Reference,
    sha256: &str,
    size: u64,
    out: &mut std::fs::File,
    path: &Path,
    access: &Access<'_>,
    reporter: &dyn Reporter,
) -> Result<bool> {
    let client = access.client(reference, Actions::Pull, reporter)?;
    let layer = Layer { file: sha256.to_string(), digest: format!("sha256:{sha256}"), size };
    let Some((got, copied)) = fetch_blob(&client, &layer, out, path)? else {
        return Ok(false);
    };
    if got != layer.digest || copied != size {
        return Err(Error::failure(format!(
            "registry `{}` sent {copied} bytes with digest {got} for blob {} ({size} bytes): refusing it",
            reference.registry, layer.digest
        )));
    }
    Ok(true)
}

/// Streams the blob of `layer` into `out` (a scratch file in `dir`), hashing it on the way;
/// after a dropped connection the read goes on from the bytes that arrived (`Range`), or from
/// the start when the registry ignores that. Returns the digest (`sha256:...`) and the size of
/// what came, at most one byte more than the layer says; `None` when the repository has no such
/// blob. `dir` (or the file) names where it goes in an error.
fn fetch_blob(
    client: &Client<'_>,
    layer: &Layer,
    out: &mut std::fs::File,
    dir: &Path,
) -> Result<Option<(String, u64)>> {
    use std::io::{Seek, SeekFrom};
    let what = format!("fetch `{}`", layer.file);
    let (mut hasher, mut copied, mut tries) = (Sha256::new(), 0u64, 0);
    let mut buffer = vec![0u8; 1 << 20];
    'fetch: loop {
        let Some((stream, resumed)) = client.get_blob(&layer.digest, copied)? else {
            return Ok(None);
        };
        if copied > 0 && !resumed {
            (hasher, copied) = (Sha256::new(), 0);
            out.set_len(0).writing(dir)?;
            out.seek(SeekFrom::Start(0)).writing(dir)?;
        }
        let mut stream = stream.take(layer.size + 1 - copied);
        loop {
            let n = match stream.read(&mut buffer) {
                Ok(0) => break 'fetch,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    client.wait_after(&what, &mut tries, e)?;
                    continue 'fetch;
                }
            };
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n]).writing(dir)?;
            copied += n as u64;
        }
    }
    Ok(Some((format!("sha256:{}", hex(&hasher.finalize().into())), copied)))
}

/// The outputs a pull or build left in `dir` before: what its `SHA256SUMS` lists, and that file.
fn previous_set(dir: &Path) -> Vec<String> {
    let mut files: Vec<String> = sums(dir).map(|s| s.into_iter().map(|(_, f)| f).collect()).unwrap_or_default();
    if !files.is_empty() {
        files.push("SHA256SUMS".to_string());
    }
    files
}

/// The layers of a bake artifact's manifest, checked: bake's artifact type, plain file names,
/// each once, sha256 digests.
fn layers(bytes: &[u8], reference: &Reference, artifact_type: &str) -> Result<Vec<Layer>> {
    let bad = |what: String| Error::input(format!("`{reference}` is not a bake image: {what}"));
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("its manifest is not JSON: {e}")))?;
    if value["artifactType"] != artifact_type {
        return Err(bad(format!("its artifactType is {}, not `{artifact_type}`", value["artifactType"])));
    }
    let mut out: Vec<Layer> = Vec::new();
    for layer in value["layers"].as_array().ok_or_else(|| bad("it has no layers".into()))? {
        let file = layer["annotations"][TITLE].as_str().unwrap_or_default().to_string();
        let digest = layer["digest"].as_str().unwrap_or_default().to_string();
        let size = layer["size"].as_u64().ok_or_else(|| bad(format!("layer `{file}` has no size")))?;
        let hex_ok =
            digest.strip_prefix("sha256:").is_some_and(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if !plain_file_name(&file) || !hex_ok {
            return Err(bad(format!("layer `{file}` ({digest}) needs a plain file name and a sha256 digest")));
        }
        if out.iter().any(|l| l.file == file) {
            return Err(bad(format!("`{file}` is in it twice")));
        }
        out.push(Layer { file, digest, size });
    }
    Ok(out)
}
