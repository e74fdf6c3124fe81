//! JSON as bake writes it everywhere (manifests, SBOMs, every `--json`): pretty, two spaces,
//! fields in the order their types give, and a final newline.

use serde::Serialize;

/// `value` as pretty JSON with a final newline. `value` is plain data (no maps with non-string
/// keys, no failing `Serialize`), so this cannot fail.
pub fn pretty(value: &impl Serialize) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("plain data serializes");
    text.push('\n');
    text
}
