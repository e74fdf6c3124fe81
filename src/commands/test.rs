//! `bake test`: the results of every case, as lines for people or as JSON.

use crate::vm::boot_test::CaseResult;
use crate::vm::qemu::Verdict;

/// The exit status: 0 when every case passed, 1 otherwise.
pub fn code(results: &[CaseResult]) -> i32 {
    if results.iter().all(|r| r.passed) { 0 } else { 1 }
}

/// `PASS hello (recipes/hello.toml) in 7.4 s (5.8 s booting, tcg)` per case, with the reason
/// and the last console lines of a failure, then the count.
pub fn text(results: &[CaseResult]) -> String {
    let mut text = String::new();
    for r in results {
        let boot: f64 = r.boots.iter().map(|b| b.seconds).sum();
        let verdict = if r.passed { "PASS" } else { "FAIL" };
        let head = format!(
            "{verdict} {} ({}) in {:.1} s ({boot:.1} s booting, {})",
            r.name,
            r.recipe.display(),
            r.seconds,
            r.accel
        );
        if r.passed {
            text.push_str(&format!("{head}\n"));
        } else {
            // The boot that failed (with `--twice` the first may fail and the second pass).
            let failed = r.boots.iter().find(|b| b.verdict != Verdict::Pass).or(r.boots.last());
            let tail = failed.map(|b| b.console_tail.join("\n    ")).unwrap_or_default();
            text.push_str(&format!("{head}: {}\n  last console lines:\n    {tail}\n", r.reason));
            if let Some(file) = failed.and_then(|b| b.console_file.as_ref()) {
                text.push_str(&format!("  the whole console: {}\n", file.display()));
            }
        }
    }
    let passed = results.iter().filter(|r| r.passed).count();
    text.push_str(&format!("{passed} passed, {} failed\n", results.len() - passed));
    text
}

/// The results as JSON (for `--json`).
pub fn json(results: &[CaseResult]) -> String {
    let cases: Vec<serde_json::Value> = results
        .iter()
        .map(|r| {
            serde_json::json!({
                "recipe": r.recipe.display().to_string(),
                "name": r.name,
                "result": if r.passed { "pass" } else { "fail" },
                "reason": r.reason,
                "accel": r.accel,
                "seconds": r.seconds,
                "command": r.command,
                "boots": r.boots.iter().map(|b| serde_json::json!({
                    "image_sha256": b.image_sha256,
                    "seconds": b.seconds,
                    "transcript": b.transcript,
                    "console_tail": b.console_tail,
                    "console_file": b.console_file.as_ref().map(|f| f.display().to_string()),
                    "http": b.probes.iter().map(|p| serde_json::json!({
                        "check": p.probe.describe(),
                        "port": p.probe.port,
                        "path": p.probe.path,
                        "expect": p.probe.expect,
                        "result": if p.passed() { "pass" } else { "fail" },
                        "seconds": p.passed_at,
                        "tries": p.tries,
                        "last": p.last,
                    })).collect::<Vec<_>>(),
                    "power_button": b.power_button,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    crate::base::json::pretty(&serde_json::json!({ "cases": cases }))
}
