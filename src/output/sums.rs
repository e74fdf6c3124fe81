//! `SHA256SUMS`: the digest of every other output, in the format `sha256sum -c` reads.

use super::{Job, Output, OutputKind, Sink, Writer, Written};
use crate::base::error::Result;
use crate::base::hash::hex;
use crate::plan::Plan;

/// `SHA256SUMS`.
pub struct Sums;

impl Writer for Sums {
    fn kind(&self) -> OutputKind {
        OutputKind::Sums
    }

    fn wanted(&self, _plan: &Plan) -> bool {
        true
    }

    fn file(&self, _plan: &Plan) -> String {
        "SHA256SUMS".to_string()
    }

    fn write(&self, job: &Job<'_>, out: Sink) -> Result<Written> {
        let outputs: Vec<Output> = job.earlier.iter().map(|s| s.output().clone()).collect();
        job.write_text(out, &sha256sums(&outputs))
    }
}

/// `SHA256SUMS` in the format `sha256sum -c` reads, sorted by file name.
fn sha256sums(outputs: &[Output]) -> String {
    let mut sorted: Vec<&Output> = outputs.iter().collect();
    sorted.sort_by(|a, b| a.file.cmp(&b.file));
    sorted.iter().map(|o| format!("{}  {}\n", hex(&o.sha256), o.file)).collect()
}
