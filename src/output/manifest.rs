//! `NAME.manifest.json`: what the image holds, what it was made from, and the digests of the
//! artifacts made from it.
//!
//! The manifest is itself an output and reproducible: entries in image order, inputs by the
//! paths exactly as the recipe wrote them (never resolved against the build folder), no timestamps but the epoch. Names that
//! are not UTF-8 are also given as hex (`path_hex`, `target_hex`) so nothing is lost.

use serde::Serialize;

use super::{Job, Output, OutputKind, Sink, Writer, Written};
use crate::base::error::Result;
use crate::base::hash::hex;
use crate::format::FileType;
use crate::plan::{Plan, PlanEntry};
use crate::source::Node;

/// `NAME.manifest.json`.
pub struct Manifest;

impl Writer for Manifest {
    fn kind(&self) -> OutputKind {
        OutputKind::Manifest
    }

    fn wanted(&self, _plan: &Plan) -> bool {
        true
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.manifest.json", plan.name)
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        job.write_text(out, &manifest_json(job.plan, &job.artifacts()))
    }
}

#[derive(Serialize)]
struct Document<'a> {
    manifest_version: u32,
    name: &'a str,
    epoch: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    kernel: Option<KernelRecord<'a>>,
    /// The dm-verity root hash of the file system, when it has a hash tree.
    #[serde(skip_serializing_if = "Option::is_none")]
    verity: Option<VerityRecord>,
    outputs: Vec<OutputRecord<'a>>,
    inputs: Vec<InputRecord<'a>>,
    entries: Vec<EntryRecord>,
}

#[derive(Serialize)]
struct KernelRecord<'a> {
    version: &'a str,
    package: &'a str,
    vmlinuz_sha256: String,
    /// Installed modules, in load order.
    modules: &'a [String],
    /// Requested modules that are built into the kernel.
    builtin: &'a [String],
}

#[derive(Serialize)]
struct VerityRecord {
    root_hash: String,
}

#[derive(Serialize)]
struct OutputRecord<'a> {
    file: &'a str,
    size: u64,
    sha256: String,
}

#[derive(Serialize)]
struct InputRecord<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    path: &'a str,
    sha256: String,
}

#[derive(Serialize)]
struct EntryRecord {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path_hex: Option<String>,
    #[serde(rename = "type")]
    kind: &'static str,
    mode: String,
    uid: u32,
    gid: u32,
    mtime: u64,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_hex: Option<String>,
    /// For the second and later names of a hard-linked file: its first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    hardlink: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    major: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    minor: Option<u32>,
}

fn hex_bytes(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn entry_record(entry: &PlanEntry, epoch: u64) -> EntryRecord {
    let utf8 = entry.path.to_utf8();
    let file_type = entry.node.file_type();
    let mut record = EntryRecord {
        path: utf8.clone().unwrap_or_else(|| entry.path.display()),
        path_hex: utf8.is_none().then(|| hex_bytes(entry.path.as_bytes())),
        kind: file_type.name(),
        mode: format!("{:04o}", entry.meta.mode),
        uid: entry.meta.uid,
        gid: entry.meta.gid,
        mtime: epoch,
        size: 0,
        sha256: None,
        target: None,
        target_hex: None,
        hardlink: None,
        major: None,
        minor: None,
    };
    match &entry.node {
        Node::Dir => {}
        Node::File { content } => {
            record.size = content.size;
            record.sha256 = Some(hex(&content.sha256));
            record.hardlink = entry.first_name.as_ref().map(|p| p.display());
        }
        Node::Symlink { target } => {
            record.size = target.len() as u64;
            let text = std::str::from_utf8(target).ok();
            record.target = Some(text.map_or_else(|| String::from_utf8_lossy(target).into_owned(), str::to_string));
            record.target_hex = text.is_none().then(|| hex_bytes(target));
        }
        Node::Device { major, minor, .. } => {
            if file_type != FileType::Fifo {
                record.major = Some(*major);
                record.minor = Some(*minor);
            }
        }
    }
    record
}

/// The manifest's text (pretty JSON with a final newline), listing `outputs`.
fn manifest_json(plan: &Plan, outputs: &[Output]) -> String {
    let manifest = Document {
        manifest_version: 1,
        name: &plan.name,
        epoch: plan.epoch,
        kernel: plan.kernel.as_ref().map(|k| KernelRecord {
            version: &k.version,
            package: &k.package,
            vmlinuz_sha256: hex(&k.vmlinuz.sha256),
            modules: &k.modules,
            builtin: &k.builtin,
        }),
        verity: outputs.iter().find_map(|o| o.root_hash).map(|root| VerityRecord { root_hash: hex(&root) }),
        outputs: outputs.iter().map(|o| OutputRecord { file: &o.file, size: o.size, sha256: hex(&o.sha256) }).collect(),
        inputs: plan
            .inputs
            .iter()
            .map(|i| InputRecord { kind: i.kind.name(), path: &i.path, sha256: hex(&i.sha256) })
            .collect(),
        entries: plan.entries.iter().map(|e| entry_record(e, plan.epoch)).collect(),
    };
    crate::base::json::pretty(&manifest)
}
