//! `bake test` end to end: every boot case in `recipes/` and `qemu-tests/` boots under QEMU with
//! Debian's cloud kernel (`scripts/fetch-kernel.sh`; `scripts/test.sh` sets BAKE_KERNEL), the
//! positive cases pass, and the cases in `qemu-tests/must-fail/` fail for the right reason.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// The kernel the boot tests use: BAKE_KERNEL, else the one `scripts/fetch-kernel.sh` caches.
fn kernel() -> PathBuf {
    let path =
        std::env::var_os("BAKE_KERNEL").map(PathBuf::from).unwrap_or_else(|| repo().join("cache/kernel/vmlinuz"));
    assert!(path.is_file(), "no kernel at `{}`: run scripts/fetch-kernel.sh (scripts/test.sh does)", path.display());
    require_tool("qemu-system-x86_64");
    path
}

/// Recipes with a `[test]` section in `dir` (not below it).
fn boot_cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| std::fs::read_to_string(p).unwrap().lines().any(|l| l.trim() == "[test]"))
        .collect();
    cases.sort();
    cases.iter().map(|c| usable(c)).collect()
}

/// Runs `bake test --json` on `recipes` and returns the exit status and the parsed results.
fn bake_test(args: &[&str], recipes: &[PathBuf]) -> (i32, serde_json::Value, String) {
    let out = Bake::new("test").arg("--json").args(args).args(recipes).env("BAKE_KERNEL", kernel()).run();
    (out.code().unwrap_or(-1), out.json(), out.stderr())
}

fn cases(json: &serde_json::Value) -> &Vec<serde_json::Value> {
    json["cases"].as_array().unwrap()
}

#[test]
fn every_positive_boot_case_passes() {
    let mut recipes = boot_cases(&repo().join("recipes"));
    recipes.extend(boot_cases(&repo().join("qemu-tests")));
    assert!(recipes.len() >= 3, "{recipes:?}");
    let (code, json, stderr) = bake_test(&[], &recipes);
    for case in cases(&json) {
        assert_eq!(
            case["result"], "pass",
            "{} failed: {}\n{:#}",
            case["recipe"], case["reason"], case["boots"][0]["console_tail"]
        );
    }
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(cases(&json).len(), recipes.len());
}

#[test]
fn the_guest_hashes_every_file_as_the_manifest_says() {
    let recipe = repo().join("qemu-tests/manifest.toml");
    let (code, json, stderr) = bake_test(&[], std::slice::from_ref(&recipe));
    assert_eq!(code, 0, "{stderr}\n{json:#}");
    // The guest wrote `SHA256  /path` for every regular file to its transcript channel.
    let transcript = cases(&json)[0]["boots"][0]["transcript"].as_array().unwrap();
    let mut seen: Vec<(String, String)> = transcript
        .iter()
        .filter_map(|l| l.as_str().unwrap().split_once("  "))
        .map(|(sha, path)| (path.to_string(), sha.to_string()))
        .collect();
    seen.sort();
    // The same recipe built again gives the same manifest (the build is reproducible).
    let tmp = tempfile::tempdir().unwrap();
    Bake::build(&recipe).out(tmp.path()).ok();
    let manifest = manifest(tmp.path(), "manifest");
    let mut expected: Vec<(String, String)> = manifest["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "file")
        .map(|e| (e["path"].as_str().unwrap().to_string(), e["sha256"].as_str().unwrap().to_string()))
        .collect();
    expected.sort();
    assert!(expected.len() > 1000, "the image should hold the kernel's modules");
    let bytes: u64 = manifest["entries"].as_array().unwrap().iter().filter_map(|e| e["size"].as_u64()).sum();
    assert!(bytes > 50 << 20, "the image should hold at least 50 MB, not {bytes} bytes");
    assert_eq!(seen.len(), expected.len(), "files hashed in the guest vs files in the manifest");
    for (guest, manifest) in seen.iter().zip(&expected) {
        assert_eq!(guest, manifest);
    }
}

#[test]
fn the_must_fail_cases_fail_for_the_right_reason() {
    let recipes = boot_cases(&repo().join("qemu-tests/must-fail"));
    assert_eq!(recipes.len(), 10, "{recipes:?}");
    let consoles = tempfile::tempdir().unwrap();
    let keep = consoles.path().to_str().unwrap();
    let (code, json, stderr) = bake_test(&["--console", keep], &recipes);
    assert_eq!(code, 1, "{stderr}");
    for case in cases(&json) {
        let reason = case["reason"].as_str().unwrap();
        assert_eq!(case["result"], "fail", "{}", case["name"]);
        match case["name"].as_str().unwrap() {
            "panic" => {
                assert!(
                    reason.starts_with("kernel panic: Kernel panic - not syncing: Attempted to kill init!"),
                    "{reason}"
                );
                // Stopped at the panic, not at the 60 s timeout.
                assert!(case["seconds"].as_f64().unwrap() < 40.0, "{case:#}");
            }
            "silent" => assert_eq!(reason, "expected line 1 `hello from bake` never appeared"),
            "hang" => {
                // Its timeout leaves room for a slow boot on a loaded machine under TCG: the
                // line must appear, so the hang is in user space, where the timeout catches it.
                assert_eq!(reason, "timed out after 30 s");
                let seconds = case["seconds"].as_f64().unwrap();
                assert!(seconds < 30.0 + 10.0, "killed {seconds} s after a 30 s timeout");
            }
            "tampered" => {
                // The guest read every file of a verified root on a copy of the disk with the
                // first byte of /srv/payload changed: the kernel refused that file's block with
                // an I/O error, and every other file still read.
                assert_eq!(reason, "expected line 1 `tampered: every file reads` never appeared");
                assert!(stderr.contains("tampered: changed the first byte of `/srv/payload`"), "{stderr}");
                let console: Vec<&str> =
                    case["boots"][0]["console_tail"].as_array().unwrap().iter().map(|l| l.as_str().unwrap()).collect();
                let refused: Vec<&&str> = console.iter().filter(|l| l.starts_with("tampered: cannot read ")).collect();
                assert_eq!(
                    refused,
                    [&"tampered: cannot read /srv/payload: cat: read error: Input/output error"],
                    "{console:#?}"
                );
                assert!(console.iter().any(|l| l.contains("device-mapper: verity") && l.contains("is corrupted")));
                let counts = console.iter().find_map(|l| l.strip_prefix("tampered: ")?.strip_suffix(" files read"));
                let (read, all) = counts.and_then(|c| c.split_once(" of ")).expect("the guest counted the files");
                let (read, all): (u32, u32) = (read.parse().unwrap(), all.parse().unwrap());
                assert!(all >= 4 && read == all - 1, "{console:#?}");
            }
            "unverifiable" => {
                // A stage-1 that cannot set up dm-verity stops the boot: it never mounts the root
                // unverified, so the root's init (which prints the expected line) never runs.
                assert_eq!(reason, "expected line 1 `unverifiable: the root is mounted` never appeared");
                let console = case["boots"][0]["console_tail"].to_string();
                assert!(console.contains("stage1: cannot set up dm-verity on /dev/vda1"), "{console}");
            }
            "uefi-silent" => {
                // OVMF started the disk's unified kernel image, whose command line asks for no
                // serial console: the report says so, and what to add.
                assert!(
                    reason.contains("expected line 1 `uefi-silent: the root is mounted` never appeared"),
                    "{reason}"
                );
                assert!(reason.contains("needs `console=ttyS0`"), "{reason}");
                let console = case["boots"][0]["console_tail"].to_string();
                assert!(console.contains("BdsDxe: starting Boot0001"), "{console}");
                assert!(!console.contains("\\u001b"), "terminal escapes are removed: {console}");
            }
            "degraded" => {
                // A systemd system with a failed unit: reported by the guest, ended by its own
                // power-off, well before the timeout.
                assert_eq!(reason, "expected line 2 `system: running` never appeared");
                let transcript = case["boots"][0]["transcript"].to_string();
                assert!(transcript.contains("system: degraded"), "{transcript}");
                assert!(transcript.contains("broken.service loaded failed failed"), "{transcript}");
                assert!(case["seconds"].as_f64().unwrap() < 420.0, "{case:#}");
                // systemd colours its status lines: the escapes are kept in the console bake
                // keeps (`--console`), and gone from every line it shows.
                let kept = case["boots"][0]["console_file"].as_str().unwrap();
                assert_eq!(kept, consoles.path().join("degraded.console").to_str().unwrap());
                let raw = std::fs::read(kept).unwrap();
                assert!(raw.windows(2).any(|w| w == b"\x1b["), "no escape sequence kept");
                assert!(!case["boots"][0].to_string().contains("\\u001b"), "{case:#}");
            }
            "wrong-body" => {
                // The service answered, with another body: the report names the check and
                // shows what it got, and the power button was never pressed.
                assert!(
                    reason.starts_with(
                        "GET /health on port 8080 expecting `ok` failed (" // tries vary
                    ),
                    "{reason}"
                );
                assert!(
                    reason.contains("; the last: status 200, body `starting\\n`; timed out after 30 s"),
                    "{reason}"
                );
                let check = &case["boots"][0]["http"][0];
                assert_eq!(check["result"], "fail", "{check:#}");
                assert!(check["tries"].as_u64().unwrap() > 5, "tried again and again: {check:#}");
                assert_eq!(case["boots"][0]["power_button"], serde_json::Value::Null);
            }
            "unanswered" => {
                // Nothing listens on the guest's port 8081: QEMU takes the connection on the
                // host side and drops it.
                assert!(reason.starts_with("GET /health on port 8081 expecting `ok` failed ("), "{reason}");
                assert!(reason.ends_with("; timed out after 30 s"), "{reason}");
                assert!(!reason.contains("body"), "{reason}");
            }
            "deaf" => {
                // The check passed and bake pressed the power button, which nothing handles:
                // a hang, not a pass.
                assert!(
                    reason.starts_with(
                        "timed out after 30 s: the guest did not power off after the ACPI power button was pressed at "
                    ),
                    "{reason}"
                );
                assert_eq!(case["boots"][0]["http"][0]["result"], "pass", "{case:#}");
                assert!(case["boots"][0]["power_button"].as_f64().unwrap() < 30.0, "{case:#}");
                let seconds = case["seconds"].as_f64().unwrap();
                assert!(seconds < 30.0 + 10.0, "killed {seconds} s after a 30 s timeout");
            }
            other => panic!("unexpected case `{other}`"),
        }
    }
}

#[test]
fn twice_builds_identically_and_boots_the_same() {
    let recipe = repo().join("recipes/hello.toml");
    let out = Bake::new("test").arg("--twice").arg(&recipe).env("BAKE_KERNEL", kernel()).ok();
    let (stdout, stderr) = (out.stdout(), out.stderr());
    assert!(stdout.starts_with("PASS hello"), "{stdout}");
    assert!(stdout.contains("1 passed, 0 failed"), "{stdout}");
    let digests: Vec<&str> = stderr
        .lines()
        .find_map(|l| l.strip_prefix("hello: first build sha256 "))
        .expect("both digests are printed")
        .split(", second build sha256 ")
        .collect();
    assert_eq!(digests.len(), 2);
    assert_eq!(digests[0], digests[1]);
    assert!(stderr.contains("hello: the two boots' transcripts are identical (2 lines)"), "{stderr}");
}

#[test]
fn a_checked_service_answers_and_the_power_button_powers_the_guest_off() {
    let recipe = repo().join("qemu-tests/http.toml");
    let (code, json, stderr) = bake_test(&[], std::slice::from_ref(&recipe));
    assert_eq!(code, 0, "{stderr}\n{json:#}");
    let boot = &cases(&json)[0]["boots"][0];
    let check = &boot["http"][0];
    assert_eq!(check["check"], "GET /health on port 8080 expecting `ok`");
    assert_eq!(check["result"], "pass");
    assert_eq!(check["last"], "status 200, body `ok\\n`");
    // The button was pressed after the check passed, and the guest's handler ran.
    let (passed, pressed) = (check["seconds"].as_f64().unwrap(), boot["power_button"].as_f64().unwrap());
    assert!(passed <= pressed, "{boot:#}");
    assert_eq!(boot["transcript"], serde_json::json!(["http: listening", "http: power button"]));
}

#[test]
fn missing_kernel_and_missing_test_section_are_bad_input() {
    let stderr =
        Bake::new("test").arg("recipes/hello.toml").current_dir(repo()).env_remove("BAKE_KERNEL").fails(2).stderr();
    assert!(stderr.contains("no kernel to boot"), "{stderr}");
    let stderr = Bake::new("test")
        .arg("recipes/skeleton.toml")
        .current_dir(repo())
        .env("BAKE_KERNEL", kernel())
        .fails(2)
        .stderr();
    assert!(stderr.contains("has no `[test]` section"), "{stderr}");
}

#[test]
fn the_disk_root_is_read_only_and_what_its_manifest_says() {
    let recipe = repo().join("qemu-tests/disk.toml");
    let (code, json, stderr) = bake_test(&[], std::slice::from_ref(&usable(&recipe)));
    assert_eq!(code, 0, "{stderr}\n{json:#}");
    // The guest described every entry of its root on the transcript channel.
    let transcript = cases(&json)[0]["boots"][0]["transcript"].as_array().unwrap();
    let seen: Vec<&str> = transcript.iter().map(|l| l.as_str().unwrap()).filter(|l| l.starts_with('/')).collect();
    // What the manifest of the same recipe, built again, says the guest must see.
    let tmp = tempfile::tempdir().unwrap();
    Bake::build(&recipe).out(tmp.path()).ok();
    let manifest = manifest(tmp.path(), "disk");
    let entries = manifest["entries"].as_array().unwrap();
    let group_of = |e: &serde_json::Value| e["hardlink"].as_str().or(e["path"].as_str()).unwrap().to_string();
    let mut expected: Vec<String> = entries
        .iter()
        .filter(|e| e["path"] != "/proc")
        .map(|e| {
            let mode = u32::from_str_radix(e["mode"].as_str().unwrap(), 8).unwrap();
            let kind = e["type"].as_str().unwrap();
            let head =
                format!("{} {kind} {mode:o} {} {} {}", e["path"].as_str().unwrap(), e["uid"], e["gid"], e["mtime"]);
            match kind {
                "file" => {
                    let links = entries.iter().filter(|o| o["type"] == "file" && group_of(o) == group_of(e)).count();
                    format!("{head} {links} {}", e["sha256"].as_str().unwrap())
                }
                "symlink" => format!("{head} {}", e["target"].as_str().unwrap()),
                "char" | "block" => format!("{head} {},{}", e["major"], e["minor"]),
                _ => format!("{head} -"),
            }
        })
        .collect();
    expected.sort();
    assert!(expected.len() > 20, "{expected:?}");
    assert_eq!(seen, expected, "the guest's view of its root differs from the manifest");
    let disk_image = tmp.path().join("disk.img");
    assert!(disk_image.is_file() && tmp.path().join("disk.erofs").is_file());
}
