//! `bake build`: the summary of what a build made, as a line for people or as JSON.

use super::human_size;
use crate::base::hash::{Digest, hex};
use crate::output::{Built, OutputKind};

/// `hello: 10 entries -> out/hello.cpio.zst (902.2 KiB, sha256 a595e1…) in 0.25 s`, or, for a
/// recipe that asks for no image, where its manifest went.
pub fn summary(built: &Built) -> String {
    let images: Vec<String> = built
        .outputs
        .iter()
        .filter(|o| o.kind.is_image() || matches!(o.kind, OutputKind::Verity | OutputKind::Uki))
        .map(|o| {
            let path = built.out_dir.join(&o.file);
            format!("{} ({}, sha256 {})", path.display(), human_size(o.size), hex(&o.sha256))
        })
        .collect();
    if images.is_empty() {
        return format!(
            "{}: {} entries, no image asked for -> {}\n",
            built.name,
            built.entries,
            built.out_dir.join(&built.outputs[0].file).display()
        );
    }
    let verity = root_hash(built).map(|root| format!("; dm-verity root hash {}", hex(&root))).unwrap_or_default();
    format!(
        "{}: {} entries -> {} in {:.2} s{}{verity}\n",
        built.name,
        built.entries,
        images.join(", "),
        built.elapsed.as_secs_f64(),
        if built.cached { " (unchanged: from the build cache)" } else { "" }
    )
}

/// The dm-verity root hash of the build's file system, when it has a hash tree.
fn root_hash(built: &Built) -> Option<Digest> {
    built.outputs.iter().find_map(|o| o.root_hash)
}

/// One line per output, `  SHA256  PATH`, for `--verbose`.
pub fn details(built: &Built) -> Vec<String> {
    built.outputs.iter().map(|o| format!("  {}  {}", hex(&o.sha256), built.out_dir.join(&o.file).display())).collect()
}

/// The summary as JSON (for `--json`).
pub fn summary_json(built: &Built) -> String {
    let outputs: Vec<serde_json::Value> = built
        .outputs
        .iter()
        .map(|o| {
            serde_json::json!({
                "path": built.out_dir.join(&o.file).display().to_string(),
                "size": o.size,
                "sha256": hex(&o.sha256),
            })
        })
        .collect();
    let mut value = serde_json::json!({
        "name": built.name,
        "entries": built.entries,
        "outputs": outputs,
        "seconds": built.elapsed.as_secs_f64(),
        "cached": built.cached,
    });
    if let Some(root) = root_hash(built) {
        value["root_hash"] = serde_json::json!(hex(&root));
    }
    crate::base::json::pretty(&value)
}
