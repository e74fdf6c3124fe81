//! `bake push` and `bake pull` against a real registry (distribution 2.8, `docker-registry`),
//! read back by another client (`skopeo`): round trips, the same digest from two folders,
//! rollback by digest, and refusals (a corrupted blob, a tag moved, no credentials, bad
//! references).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// Every file of `dir` with its bytes, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// `REF@sha256:...` as bake prints it: the digest.
fn digest_of(printed: &str) -> String {
    printed.trim().rsplit_once('@').unwrap().1.to_string()
}

fn build(recipe: &Path, out: &Path) -> PathBuf {
    Bake::build(recipe).out(out).ok();
    out.to_path_buf()
}

#[test]
fn a_build_round_trips_through_a_registry_and_another_client_reads_it() {
    require_tool("skopeo");
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/hello.toml");
    let built = build(&recipe, &t.path().join("a"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let pushed = Bake::new("push").arg(&built).arg(&reference).ok().stdout();
    let digest = digest_of(&pushed);
    assert_eq!(pushed.trim(), format!("{reference}@{digest}"));

    // The same build from another folder, and the recipe itself: the same manifest, nothing sent.
    let again = build(&recipe, &t.path().join("b"));
    let json = Bake::new("push").arg(&again).arg(&reference).arg("--json").ok().json();
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["transferred"], 0, "{json:#}");
    let from_recipe = Bake::new("push").arg(&recipe).arg(format!("{}/bake/hello:v2", registry.address)).ok().stdout();
    assert_eq!(digest_of(&from_recipe), digest);

    // Another client sees bake's manifest, and copies out bytes equal to the outputs.
    let raw = run_ok(
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.bake.image.v1");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.created"], "1970-01-01T00:00:00Z");
    assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), digest);
    let layout = t.path().join("oci");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:v1", layout.display())),
    );
    for layer in manifest["layers"].as_array().unwrap() {
        let file = layer["annotations"]["org.opencontainers.image.title"].as_str().unwrap();
        let blob = layout.join("blobs/sha256").join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        assert_eq!(std::fs::read(blob).unwrap(), std::fs::read(built.join(file)).unwrap(), "{file}");
    }

    // Pulled by tag and by digest: the same files as the build.
    let pulled = t.path().join("pulled");
    let said = Bake::new("pull").arg(&reference).out(&pulled).ok().stdout();
    assert_eq!(said.trim(), format!("{reference}@{digest}"));
    assert_eq!(files(&pulled), files(&built));
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&pulled));
    // Readable by everyone, as a build's outputs are.
    for (file, _) in files(&pulled) {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(pulled.join(&file)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o644, "{file}");
    }
    let by_digest = t.path().join("by-digest");
    Bake::new("pull").arg(format!("{}/bake/hello@{digest}", registry.address)).out(&by_digest).ok();
    assert_eq!(files(&by_digest), files(&built));
}

#[test]
fn a_pull_by_digest_rolls_back_and_replaces_only_the_previous_set() {
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let repository = format!("{}/bake/app", registry.address);
    let v1 = build(&repo().join("recipes/hello.toml"), &t.path().join("v1"));
    let v2 = build(&repo().join("recipes/skeleton.toml"), &t.path().join("v2"));
    let first = digest_of(&Bake::new("push").arg(&v1).arg(format!("{repository}:latest")).ok().stdout());
    let deployed = t.path().join("deployed");
    std::fs::create_dir_all(&deployed).unwrap();
    std::fs::write(deployed.join("notes.txt"), "mine\n").unwrap();
    Bake::new("pull").arg(&repository).out(&deployed).ok();
    // The tag moves on to a new version: a pull of the tag says which one arrived.
    let second = digest_of(&Bake::new("push").arg(&v2).arg(format!("{repository}:latest")).ok().stdout());
    assert_ne!(first, second);
    let said = Bake::new("pull").arg(&repository).out(&deployed).ok().stdout();
    assert_eq!(digest_of(&said), second);
    let mut want = files(&v2);
    want.push(("notes.txt".into(), b"mine\n".to_vec()));
    want.sort();
    assert_eq!(files(&deployed), want, "the first set is gone, other files stay");
    // Rollback: the earlier version by its digest.
    Bake::new("pull").arg(format!("{repository}@{first}")).out(&deployed).ok();
    let mut want = files(&v1);
    want.push(("notes.txt".into(), b"mine\n".to_vec()));
    want.sort();
    assert_eq!(files(&deployed), want);
}

#[test]
fn damage_moved_tags_missing_credentials_and_bad_references_are_refused() {
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let built = build(&repo().join("recipes/hello.toml"), &t.path().join("built"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let digest = digest_of(&Bake::new("push").arg(&built).arg(&reference).ok().stdout());

    // A blob changed in the registry's storage: the pull names the file and writes nothing.
    let image = std::fs::read_to_string(built.join("SHA256SUMS")).unwrap();
    let cpio =
        image.lines().find(|l| l.ends_with("hello.cpio.zst")).unwrap().split_whitespace().next().unwrap().to_string();
    let blob = registry.blob_file(&cpio);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let stderr = Bake::new("pull").arg(&reference).out(&out).fails(1).stderr();
    assert!(stderr.contains("`hello.cpio.zst`") && stderr.contains("refusing it"), "{stderr}");
    assert!(std::fs::read_dir(&out).unwrap().next().is_none(), "nothing is written");

    // A digest the repository does not have, and one the tag does not name.
    let other = format!("sha256:{}", "0".repeat(64));
    let stderr = Bake::new("pull").arg(format!("{}/bake/hello@{other}", registry.address)).out(&out).fails(2).stderr();
    assert!(stderr.contains("has no"), "{stderr}");
    let stderr = Bake::new("pull").arg(format!("{reference}@{other}")).out(&out).fails(2).stderr();
    assert!(stderr.contains("has no"), "{stderr}");
    assert_ne!(digest, other);

    // Bad references: exit 2 before anything is asked.
    for bad in ["hello", "localhost/Upper", "localhost/app:-x", "localhost/app@sha256:12"] {
        let stderr = Bake::new("pull").arg(bad).out(&out).fails(2).stderr();
        assert!(stderr.contains("is not a registry reference"), "{bad}: {stderr}");
    }
    let stderr = Bake::new("push").arg(&built).arg(format!("{reference}@{digest}")).fails(2).stderr();
    assert!(stderr.contains("push to a tag"), "{stderr}");
}

#[test]
fn credentials_come_from_dockers_config_and_its_helpers_and_are_never_printed() {
    let registry = Registry::start(true);
    let t = tempfile::tempdir().unwrap();
    let built = build(&repo().join("recipes/hello.toml"), &t.path().join("built"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let docker = t.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let push = || Bake::new("push").arg(&built).arg(&reference).env("DOCKER_CONFIG", &docker);

    // None: a clear message naming the registry and where credentials go.
    let stderr = push().fails(2).stderr();
    assert!(
        stderr.contains(&format!("registry `{}`", registry.address)) && stderr.contains("docker login"),
        "{stderr}"
    );

    // A wrong password: refused for that user, and the secret is not printed.
    let write_auth = |user_password: &str| {
        let auth = run_ok(Command::new("base64").arg("-w0").arg(write_tmp(&t, user_password)));
        let auth = String::from_utf8(auth.stdout).unwrap();
        std::fs::write(
            docker.join("config.json"),
            format!(r#"{{"auths": {{"http://{}": {{"auth": "{}"}}}}}}"#, registry.address, auth.trim()),
        )
        .unwrap();
    };
    write_auth("bake:wrong-password-42");
    let stderr = push().fails(2).stderr();
    assert!(stderr.contains("for user `bake`") && !stderr.contains("wrong-password-42"), "{stderr}");

    // `auths`, as `docker login` writes them: push and pull.
    write_auth("bake:secret");
    let digest = digest_of(&push().ok().stdout());
    let pulled = t.path().join("pulled");
    Bake::new("pull").arg(&reference).out(&pulled).env("DOCKER_CONFIG", &docker).ok();
    assert_eq!(files(&pulled), files(&built));

    // A credential helper named for this registry (`docker-credential-NAME get`).
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-baketest");
    std::fs::write(&helper, "#!/bin/sh\nread registry\necho \"{\\\"ServerURL\\\": \\\"$registry\\\", \\\"Username\\\": \\\"bake\\\", \\\"Secret\\\": \\\"secret\\\"}\"\n").unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&helper));
    std::fs::write(docker.join("config.json"), format!(r#"{{"credHelpers": {{"{}": "baketest"}}}}"#, registry.address))
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let said =
        Bake::new("push").arg(&built).arg(&reference).env("DOCKER_CONFIG", &docker).env("PATH", &path).ok().stdout();
    assert_eq!(digest_of(&said), digest);
}

/// Writes `text` to a file in `t` and returns its path.
fn write_tmp(t: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = t.path().join("scratch.txt");
    std::fs::write(&path, text).unwrap();
    path
}
