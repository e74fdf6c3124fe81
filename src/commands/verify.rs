//! `bake verify`: the report of two builds of one recipe, and the `bake diff` of every image
//! that differs.

use std::path::Path;

use crate::base::error::{Error, Result};
use crate::base::hash::hex;
use crate::base::progress::Reporter;
use crate::check::diff::{self, Report};
use crate::check::verify::{self, Twice};
use crate::plan::Settings;

/// Two builds, and how each image that differs differs.
pub struct Verified {
    pub twice: Twice,
    /// For each image whose two builds differ: its file name and the diff.
    pub diffs: Vec<(String, Report)>,
    /// Compression threads of the first build.
    pub threads: u32,
}

impl Verified {
    /// The exit status: 0 when every output is identical, 1 otherwise.
    pub fn code(&self) -> i32 {
        if self.twice.identical() { 0 } else { 1 }
    }
}

/// Builds `recipe` twice (the first time with `threads` threads) and compares the outputs.
pub fn verify(recipe: &Path, threads: u32, settings: &Settings, reporter: &dyn Reporter) -> Result<Verified> {
    let scratch = tempfile::Builder::new()
        .prefix("bake-verify-")
        .tempdir()
        .map_err(|e| Error::failure(format!("cannot make a temporary folder: {e}")))?;
    let twice = verify::build_twice(recipe, scratch.path(), threads, settings, reporter)?;
    let mut diffs = Vec::new();
    for (output, second) in &twice.outputs {
        if second.is_some_and(|d| d != output.sha256) && output.kind.is_image() {
            let (a, b) = (twice.first_dir.join(&output.file), twice.second_dir.join(&output.file));
            diffs.push((output.file.clone(), diff::compare_files(&a, &b)?));
        }
    }
    Ok(Verified { twice, diffs, threads })
}

/// The report as JSON: every output's two digests, and the diff of the images that differ.
pub fn json(verified: &Verified) -> String {
    let twice = &verified.twice;
    let outputs: Vec<serde_json::Value> = twice
        .outputs
        .iter()
        .map(|(o, second)| {
            serde_json::json!({
                "file": o.file,
                "first_sha256": hex(&o.sha256),
                "second_sha256": second.map(|d| hex(&d)),
                "identical": *second == Some(o.sha256),
            })
        })
        .collect();
    let diffs: serde_json::Map<String, serde_json::Value> =
        verified.diffs.iter().map(|(file, report)| (file.clone(), diff::json_value(report))).collect();
    crate::base::json::pretty(&serde_json::json!({
        "name": twice.name,
        "reproducible": twice.identical(),
        "outputs": outputs,
        "diffs": diffs,
    }))
}

/// The report for people: the two builds' conditions, a line per output, and the diffs.
pub fn text(verified: &Verified) -> String {
    let twice = &verified.twice;
    let mut text = format!(
        "first build:  {} workers, here\nsecond build: 1 worker, from a copy of the inputs made in reverse \
         order with other mtimes, umask 077, TZ=Pacific/Chatham, LC_ALL=C.UTF-8, another TMPDIR\n",
        verified.threads
    );
    let width = twice.outputs.iter().map(|(o, _)| o.file.len()).max().unwrap_or(0);
    for (output, second) in &twice.outputs {
        let verdict = match second {
            Some(d) if *d == output.sha256 => "identical".to_string(),
            Some(d) => format!("DIFFERENT: second build {}", hex(d)),
            None => "MISSING from the second build".to_string(),
        };
        text.push_str(&format!("  {:<width$}  {}  {verdict}\n", output.file, hex(&output.sha256)));
    }
    if twice.identical() {
        text.push_str(&format!("reproducible: {}, {} outputs identical\n", twice.name, twice.outputs.len()));
        return text;
    }
    for (file, report) in &verified.diffs {
        text.push_str(&format!("bake diff of the two `{file}`:\n"));
        text.push_str(&diff::text(report, "first", "second"));
    }
    let differ = twice.outputs.iter().filter(|(o, d)| *d != Some(o.sha256)).count();
    text.push_str(&format!("not reproducible: {}, {differ} of {} outputs differ\n", twice.name, twice.outputs.len()));
    text
}
