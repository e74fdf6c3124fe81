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

use super::client::{Client, MANIFEST_TYPE};
use super::reference::Reference;
use crate::base::error::{Error, IoContext, Result};
use crate::base::hash::{digest_bytes, digest_file, hex};
use crate::base::progress::{Event, Reporter};
use crate::output::OutputKind;

/// The `artifactType` of a bake image.
pub const ARTIFACT_TYPE: &str = "application/vnd.bake.image.v1";
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
    fn client(&self, reference: &Reference) -> Result<Client> {
        let credentials = super::credentials::lookup(self.docker_config, &reference.registry)?;
        Ok(Client::new(reference, self.plain_http, credentials))
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
        files.push((file, digest, size));
    }
    let sums_path = dir.join("SHA256SUMS");
    let (sums_digest, sums_size) = digest_file(&sums_path)?;
    files.push(("SHA256SUMS".to_string(), hex(&sums_digest), sums_size));
    files.sort();
    let epoch = epoch(dir, &files)?;

    let client = access.client(reference)?;
    let empty = format!("sha256:{}", hex(&digest_bytes(EMPTY)));
    let (mut moved, mut skipped) = (0, 0);
    if client.has_blob(&empty)? {
        skipped += 1;
    } else {
        client.put_blob(&empty, EMPTY.len() as u64, &mut &EMPTY[..])?;
        moved += 1;
    }
    let mut layers = Vec::new();
    for (file, digest, size) in &files {
        let kind = kind_of(file)
            .ok_or_else(|| Error::input(format!("`{file}` in `{}` is not an output bake writes", dir.display())))?;
        let digest = format!("sha256:{digest}");
        if client.has_blob(&digest)? {
            reporter.report(Event::Detail(format!("{file}: the registry has it already")));
            skipped += 1;
        } else {
            reporter.report(Event::Info(format!("sending {file} ({size} bytes)")));
            let path = dir.join(file);
            let mut reader = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(&path).reading(&path)?);
            client.put_blob(&digest, *size, &mut reader)?;
            moved += 1;
        }
        layers.push(
            json!({ "mediaType": media_type(kind), "digest": digest, "size": size, "annotations": { TITLE: file } }),
        );
    }
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "artifactType": ARTIFACT_TYPE,
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
        files: files.into_iter().map(|f| f.0).collect(),
        moved,
        skipped,
    })
}

/// The image's epoch, from the build's `NAME.manifest.json` (0 without one).
fn epoch(dir: &Path, files: &[(String, String, u64)]) -> Result<u64> {
    let Some((file, _, _)) = files.iter().find(|(f, _, _)| f.ends_with(".manifest.json")) else { return Ok(0) };
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).reading(&path)?;
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
    let client = access.client(reference)?;
    let bytes = client.get_manifest(reference.target())?.ok_or_else(|| {
        Error::input(format!(
            "registry `{}` has no `{}` in `{}`",
            reference.registry,
            reference.target(),
            reference.repository
        ))
    })?;
    let digest = format!("sha256:{}", hex(&digest_bytes(&bytes)));
    if let Some(asked) = &reference.digest
        && *asked != digest
    {
        return Err(Error::failure(format!(
            "`{reference}`: the registry sent a manifest whose digest is {digest}: refusing it"
        )));
    }
    let layers = layers(&bytes, reference)?;
    std::fs::create_dir_all(dir).writing(dir)?;
    // Each blob into a scratch file in the folder, checked as it streams.
    let mut staged: Vec<(tempfile::NamedTempFile, &Layer)> = Vec::new();
    for layer in &layers {
        reporter.report(Event::Info(format!("fetching {} ({} bytes)", layer.file, layer.size)));
        let mut part = crate::base::file::staged_in(dir, ".bake-pull-")?;
        let mut blob = client.get_blob(&layer.digest)?.take(layer.size + 1);
        let mut hashing = crate::base::hash::HashingReader::new(&mut blob);
        let copied = {
            let mut out = std::io::BufWriter::with_capacity(1 << 20, part.as_file_mut());
            let n = std::io::copy(&mut hashing, &mut out)
                .map_err(|e| Error::failure(format!("fetching `{}`: {e}", layer.file)))?;
            out.flush().writing(dir)?;
            n
        };
        let got = format!("sha256:{}", hex(&hashing.finish().writing(dir)?));
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
fn layers(bytes: &[u8], reference: &Reference) -> Result<Vec<Layer>> {
    let bad = |what: String| Error::input(format!("`{reference}` is not a bake image: {what}"));
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("its manifest is not JSON: {e}")))?;
    if value["artifactType"] != ARTIFACT_TYPE {
        return Err(bad(format!("its artifactType is {}, not `{ARTIFACT_TYPE}`", value["artifactType"])));
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
