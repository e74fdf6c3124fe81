//! The file system output, `NAME.erofs`: the plan as EROFS entries, with a UUID derived from
//! everything the image holds.

use std::io::Read;

use sha2::{Digest as _, Sha256};

use super::{Job, OutputKind, Sink, Writer, Written};
use crate::base::error::Result;
use crate::base::hash::uuid_v8;
use crate::format::erofs::{self, Node as ErofsNode, Options};
use crate::plan::{Plan, PlanEntry};
use crate::source::Node;
use crate::source::content::{Content, Spool};

/// `NAME.erofs`.
pub struct FileSystem;

impl Writer for FileSystem {
    fn kind(&self) -> OutputKind {
        OutputKind::FileSystem
    }

    fn wanted(&self, plan: &Plan) -> bool {
        plan.disk.is_some()
    }

    fn file(&self, plan: &Plan) -> String {
        format!("{}.erofs", plan.name)
    }

    /// Laid out first: an image the format cannot hold is refused before anything is written.
    fn check(&self, plan: &Plan) -> Result<()> {
        erofs::image_size(&nodes(plan)).map(|_| ())
    }

    fn progress(&self, plan: &Plan) -> Option<(u64, u64)> {
        Some((plan.entries.len() as u64, plan.data_bytes()))
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let nodes = nodes(job.plan);
        let options = Options { epoch: job.plan.epoch, uuid: uuid(job.plan) };
        erofs::write(&nodes, options, &opener(job.spool), out, job.reporter).map(Written::from)
    }
}

/// Opens a file's content, from `spool` where it is kept there.
fn opener<'a>(spool: &'a Spool) -> impl Fn(&'a Content) -> Result<Box<dyn Read + 'a>> + 'a {
    move |content| content.open(spool)
}

/// The plan's entries as the EROFS writer takes them.
fn nodes(plan: &Plan) -> Vec<ErofsNode<'_, Content>> {
    plan.entries
        .iter()
        .map(|entry| {
            let (file, target, rdev) = match &entry.node {
                Node::File { content } => (Some((content.size, content)), &[][..], (0, 0)),
                Node::Symlink { target } => (None, &target[..], (0, 0)),
                Node::Device { major, minor, .. } => (None, &[][..], (*major, *minor)),
                Node::Dir => (None, &[][..], (0, 0)),
            };
            ErofsNode {
                path: entry.path.as_bytes(),
                file_type: entry.node.file_type(),
                mode: entry.meta.mode,
                uid: entry.meta.uid,
                gid: entry.meta.gid,
                ino: entry.ino,
                nlink: entry.nlink,
                file,
                target,
                rdev,
            }
        })
        .collect()
}

/// The volume UUID: the first 128 bits of a SHA-256 over every entry (path, type, owner, mode,
/// links, contents' digests, targets, device numbers) and the epoch, shaped as an RFC 9562
/// version-8 UUID. A one-byte change anywhere gives another UUID; nothing random or
/// host-dependent goes in.
fn uuid(plan: &Plan) -> [u8; 16] {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(b"bake erofs uuid 1");
    field(&plan.epoch.to_le_bytes());
    for entry in &plan.entries {
        let PlanEntry { path, node, meta, ino, nlink, .. } = entry;
        field(path.as_bytes());
        field(node.file_type().name().as_bytes());
        for number in [meta.mode, meta.uid, meta.gid, *ino, *nlink] {
            field(&number.to_le_bytes());
        }
        match node {
            Node::Dir => {}
            Node::File { content } => {
                field(&content.size.to_le_bytes());
                field(&content.sha256);
            }
            Node::Symlink { target } => field(target),
            Node::Device { major, minor, .. } => {
                field(&major.to_le_bytes());
                field(&minor.to_le_bytes());
            }
        }
    }
    uuid_v8(&hasher.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::base::path::ImagePath;
    use crate::source::Meta;

    fn plan(bytes: &[u8]) -> Plan {
        let entry = PlanEntry {
            path: ImagePath::from_recipe("/f").unwrap(),
            node: Node::File { content: Content::inline(bytes) },
            meta: Meta::root(0o644),
            ino: 1,
            nlink: 1,
            first_name: None,
            carries_data: true,
            archived: false,
        };
        Plan {
            name: "t".into(),
            epoch: 1_700_000_000,
            initramfs: None,
            disk: None,
            boot: None,
            kernel: None,
            entries: vec![entry],
            inputs: Vec::new(),
            package_layers: Vec::new(),
            kernel_package: None,
            packages: Vec::new(),
        }
    }

    #[test]
    fn the_uuid_follows_every_byte_of_the_content() {
        assert_eq!(uuid(&plan(b"same")), uuid(&plan(b"same")));
        assert_ne!(uuid(&plan(b"same")), uuid(&plan(b"sane")));
        let mut later = plan(b"same");
        later.epoch += 1;
        assert_ne!(uuid(&later), uuid(&plan(b"same")));
        let id = uuid(&plan(b"same"));
        assert_eq!((id[6] >> 4, id[8] >> 6), (8, 0b10), "an RFC 9562 version-8 UUID");
    }
}
